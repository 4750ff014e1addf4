//! The POS's omni-channel routes besides the actions (those are documents:
//! `writes::omni_action`): the store's orders as it sees them now (the
//! central's view plus this store's actions not reflected yet), an order by
//! the number the customer quotes, and a register's claim of a pickup it
//! redeems.

use axum::body::Bytes;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use loja_protocol::omni::Order;
use loja_replica::omni_local::{Claim, ClaimRefused, OrderView};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::error::{ApiError, json_response};
use super::reads::{ErrorSchema, only_params};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Orders {
    pub items: Vec<OrderView>,
}

/// `GET /v1/omni-orders` query (documented; read by hand so a bad value is
/// a 422 naming it).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    /// Also the concluded and cancelled ones (`true` or `false`).
    pub all: Option<bool>,
}

/// The store's omni-channel orders (its own lines), oldest first: open
/// ones unless `all=true`. Each with its status derived from its lines and
/// the register redeeming it, if any.
#[utoipa::path(get, path = "/v1/omni-orders", tag = "omni", security(("bearer" = [])),
    params(OrdersQuery),
    responses((status = 200, description = "The orders", body = Orders),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 422, description = "An unknown query parameter, or `all` not `true`/`false`", body = ErrorSchema)))]
pub async fn orders(
    State(st): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    only_params(&params, &["all"])?;
    let all = match params.get("all").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::field("all", "all: must be true or false")),
    };
    let items = st.readers.run(move |r| r.omni_orders(!all)).await?;
    Ok(json_response(StatusCode::OK, &Orders { items }))
}

/// One order by id.
#[utoipa::path(get, path = "/v1/omni-orders/{id}", tag = "omni", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order id")),
    responses((status = 200, description = "The order", body = OrderView),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 404, description = "No order of this store has this id", body = ErrorSchema)))]
pub async fn order(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = st.readers.run(move |r| r.omni_order(&id)).await?;
    answer(found)
}

/// The order a customer quotes at the counter (pre-sale redeem).
#[utoipa::path(get, path = "/v1/omni-orders/by-number/{number}", tag = "omni", security(("bearer" = [])),
    params(("number" = String, Path, description = "The number the customer quotes")),
    responses((status = 200, description = "The order", body = OrderView),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 404, description = "No order of this store has this number", body = ErrorSchema)))]
pub async fn order_by_number(
    State(st): State<ApiState>,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    let found = st
        .readers
        .run(move |r| r.omni_order_by_number(&number))
        .await?;
    answer(found)
}

/// A code as the schema says (`loja_protocol::schema::code`): not blank, at
/// most `CODE_MAX` characters.
fn code(field: &str, v: &str) -> Result<(), ApiError> {
    use loja_protocol::limits;
    if limits::is_blank(v) {
        return Err(ApiError::field(
            field,
            format!("{field}: must not be empty"),
        ));
    }
    if limits::char_len(v) > limits::CODE_MAX {
        return Err(ApiError::field(
            field,
            format!("{field}: must be at most {} characters", limits::CODE_MAX),
        ));
    }
    Ok(())
}

fn answer(found: Option<OrderView>) -> Result<Response, ApiError> {
    match found {
        Some(v) => Ok(json_response(StatusCode::OK, &v)),
        None => Err(ApiError::not_found("no omni order of this store has it")),
    }
}

/// `PUT /v1/omni-orders/{id}/claim` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    #[schema(schema_with = loja_protocol::schema::code)]
    pub register: String,
    /// The register's open cash session (its cash_open document id).
    #[schema(schema_with = loja_protocol::schema::code)]
    pub session_id: String,
}

/// Gives a pickup order to the register redeeming it. The same register
/// again keeps its claim (200). Another register holding it: 409 naming
/// that register. The claim ends with the sale naming the order
/// (`order_id`), a release, or the holder's cash close.
#[utoipa::path(put, path = "/v1/omni-orders/{id}/claim", tag = "omni", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order id")),
    request_body(content = ClaimRequest, example = json!({"register": "PDV01", "session_id": "01940000-0000-7000-8000-000000000001"})),
    responses((status = 200, description = "Claimed by this register", body = Claim),
              (status = 400, description = "Not JSON (`malformed_json`)", body = ErrorSchema),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 409, description = "Another register holds it (`claimed`, the message names it)", body = ErrorSchema),
              (status = 422, description = "Not an open session of the register, or no line ready for pickup", body = ErrorSchema)))]
pub async fn claim(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: ClaimRequest =
        loja_protocol::document::from_json_slice(&body).map_err(|e| match e {
            loja_protocol::document::JsonBodyError::Invalid(f) => ApiError::from(&f),
            loja_protocol::document::JsonBodyError::Malformed(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", m)
            }
        })?;
    code("register", &req.register)?;
    code("session_id", &req.session_id)?;
    let out = st
        .app
        .intake
        .with_outbox(move |o| o.claim_order(&id, &req.register, &req.session_id))
        .await
        .map_err(|e| ApiError::intake(&e))?
        .map_err(|e| ApiError::intake(&crate::intake::IntakeError::Replica(e)))?;
    match out {
        Ok(c) => Ok(json_response(StatusCode::OK, &c)),
        Err(ClaimRefused::Held(c)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "claimed",
            format!(
                "order {} is claimed by register {} (since {})",
                c.order_id, c.register, c.claimed_at
            ),
        )
        .with_field("register")),
        Err(ClaimRefused::Invalid(f)) => Err(ApiError::from(&f)),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReleaseQuery {
    /// The register holding the claim.
    pub register: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Released {
    pub released: bool,
}

/// Ends a register's claim of an order (the customer left without it).
#[utoipa::path(delete, path = "/v1/omni-orders/{id}/claim", tag = "omni", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order id"), ReleaseQuery),
    responses((status = 200, description = "`released`: whether the register held it", body = Released),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 422, description = "`register` missing, blank or too long, or an unknown query parameter", body = ErrorSchema)))]
pub async fn release(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    only_params(&params, &["register"])?;
    let register = params.get("register").cloned().unwrap_or_default();
    code("register", &register)?;
    let released = st
        .app
        .intake
        .with_outbox(move |o| o.release_claim(&id, &register))
        .await
        .map_err(|e| ApiError::intake(&e))?
        .map_err(|e| ApiError::intake(&crate::intake::IntakeError::Replica(e)))?;
    Ok(json_response(StatusCode::OK, &Released { released }))
}

/// How long a return at the counter waits for the central's copy of an order.
const CENTRAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The chain's orders under `key` (`id` or `number`) as the central holds
/// them (whole, every store's lines), or why it could not be asked.
async fn from_central(st: &ApiState, key: &'static str, value: &str) -> Result<Vec<Order>, String> {
    let central = crate::central::Central::new(&st.app.config).map_err(|e| e.to_string())?;
    match tokio::time::timeout(CENTRAL_WAIT, central.omni_orders(key, value)).await {
        Ok(Ok(orders)) => Ok(orders),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CENTRAL_WAIT.as_secs())),
    }
}

fn central_unreachable(what: &str, why: &str) -> ApiError {
    tracing::warn!(
        order = what,
        error = why,
        "omni return: the central could not be asked"
    );
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "central_unreachable",
        format!(
            "order {what} is not this store's and the central that holds it could not be asked ({why}): take the return when the central answers"
        ),
    )
}

/// Keeps `fetched` (the central's whole order `id`, when it answered) and
/// answers the order a return taken here is checked against (`None`:
/// neither this store's nor known to the central).
async fn returnable_order(
    st: &ApiState,
    id: String,
    fetched: Option<Order>,
) -> Result<Option<Order>, ApiError> {
    st.app
        .intake
        .with_outbox(move |o| o.omni_returnable(&id, fetched.as_ref()))
        .await
        .map_err(|e| ApiError::intake(&e))?
        .map_err(|e| ApiError::intake(&crate::intake::IntakeError::Replica(e)))
}

/// Before an omni return is taken (`writes::omni_return`): the order it
/// names is fetched from the central and kept, so the outbox checks the
/// return against every line of the chain, not only this store's. The
/// central down: a return of this store's own order goes on against its
/// copy; another store's is refused (503), since nothing here could tell
/// what was delivered or returned already.
pub(crate) async fn prepare_return(st: &ApiState, order_id: &str) -> Result<(), ApiError> {
    let fetched = from_central(st, "id", order_id).await;
    let whole = fetched
        .as_ref()
        .ok()
        .and_then(|orders| orders.iter().find(|o| o.id == order_id).cloned());
    match (
        returnable_order(st, order_id.to_owned(), whole).await?,
        fetched,
    ) {
        (Some(_), _) => Ok(()),
        (None, Ok(_)) => Err(ApiError::field(
            "order_id",
            format!("order_id: the chain has no order {order_id}"),
        )),
        (None, Err(why)) => Err(central_unreachable(order_id, &why)),
    }
}

/// A delivered line as a return at the counter sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReturnableLine {
    pub line_id: String,
    /// What was delivered (the substitute's code, when there was one): the
    /// `product_code` a return names.
    pub product_code: String,
    /// Centavos per unit delivered: a line's refund is at most qty × this.
    pub unit_price: i64,
    /// Thousandths.
    pub delivered_qty: i64,
    pub returned_qty: i64,
    pub returnable_qty: i64,
    /// The store that delivered it.
    pub store: Option<String>,
}

/// `GET /v1/omni-orders/by-number/{number}/returnable` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Returnable {
    /// `central`: the central's order, fetched now, with this store's
    /// returns not counted there yet; `store`: this store's own copy (the
    /// central did not answer).
    pub source: String,
    pub order_id: String,
    pub number: String,
    pub channel: String,
    pub delivery: loja_protocol::omni::Delivery,
    pub customer_document: Option<String>,
    /// The delivered lines (handed over or shipped), at any store.
    pub lines: Vec<ReturnableLine>,
}

/// What of an order may come back at this store (devolução omni): the
/// customer quotes the number; the order may have been delivered by any
/// store of the chain, so the central is asked (at most 5 s). Post the
/// return to `/v1/omni-orders/{order_id}/returns`.
#[utoipa::path(get, path = "/v1/omni-orders/by-number/{number}/returnable", tag = "omni", security(("bearer" = [])),
    params(("number" = String, Path, description = "The number the customer quotes")),
    responses((status = 200, description = "The delivered lines and what is left to return", body = Returnable),
              (status = 401, description = "No or unknown token", body = ErrorSchema),
              (status = 404, description = "No order of the chain has this number", body = ErrorSchema),
              (status = 503, description = "Not this store's order and the central could not be asked (`central_unreachable`)", body = ErrorSchema)))]
pub async fn returnable(
    State(st): State<ApiState>,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    let fetched = from_central(&st, "number", &number).await;
    let (id, whole, source) = match &fetched {
        Ok(orders) if !orders.is_empty() => {
            (orders[0].id.clone(), Some(orders[0].clone()), "central")
        }
        _ => {
            let n = number.clone();
            let Some(mine) = st.readers.run(move |r| r.omni_order_by_number(&n)).await? else {
                return Err(match fetched {
                    Err(why) => central_unreachable(&number, &why),
                    Ok(_) => ApiError::not_found(format!(
                        "no omni order of the chain has number {number}"
                    )),
                });
            };
            let source = if fetched.is_ok() { "central" } else { "store" };
            (mine.order.id, None, source)
        }
    };
    let Some(order) = returnable_order(&st, id, whole).await? else {
        return Err(ApiError::not_found(format!(
            "no omni order of the chain has number {number}"
        )));
    };
    let lines = order
        .lines
        .iter()
        .filter(|l| {
            matches!(
                l.state,
                loja_protocol::omni::LineState::HandedOver
                    | loja_protocol::omni::LineState::Shipped
            )
        })
        .map(|l| ReturnableLine {
            line_id: l.line_id.clone(),
            product_code: l.goods().0.to_owned(),
            unit_price: l.goods_unit_price(),
            delivered_qty: l.delivered_qty,
            returned_qty: l.returned_qty(),
            returnable_qty: l.returnable_qty(),
            store: l.store.clone(),
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &Returnable {
            source: source.to_owned(),
            order_id: order.id,
            number: order.number,
            channel: order.channel,
            delivery: order.delivery,
            customer_document: order.customer_document,
            lines,
        },
    ))
}
