//! Write routes: each takes one store document with a client-chosen UUID
//! `id`, validates it, and answers only once the outbox has it on disk
//! (201; 200 with `"duplicate": true` for an id already taken).
//!
//! The body is the protocol's document body (`loja_protocol::document`)
//! with `id` beside its fields. serde's `flatten` and `deny_unknown_fields`
//! do not combine, so `id` is taken out of the JSON object and the rest is
//! validated by the protocol type itself, which refuses unknown fields.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use loja_protocol::DocumentKind;
use loja_protocol::document::{self, CustomerSignup, json_field_error};
use loja_replica::{Accepted, NewDocument};
use serde_json::Value;
use uuid::Uuid;

use super::ApiState;
use super::auth::Terminal;
use super::error::{ApiError, code_for, json_response};
use super::reads::ErrorSchema;
use crate::signups;

/// Parses and validates a write body; `from_path` are fields the route's
/// path sets (`sale_id`, `order_id`): the body may repeat them, equal.
pub fn parse_document(
    kind: DocumentKind,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    from_path: &[(&str, Value)],
    terminal: Option<&str>,
) -> Result<NewDocument, ApiError> {
    let body = body.map_err(|rej| {
        let status = rej.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the body is larger than [pos] max_body_bytes allows".to_owned()
        } else {
            rej.body_text()
        };
        ApiError::new(status, code_for(status), message)
    })?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        let status = if e.is_data() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        let fe = json_field_error(&e.to_string());
        ApiError::new(
            status,
            if e.is_data() {
                "invalid_field"
            } else {
                "malformed_json"
            },
            fe.message,
        )
        .with_field(&fe.field)
    })?;
    let Value::Object(mut obj) = value else {
        return Err(ApiError::field("body", "the body must be a JSON object"));
    };
    let id = match obj.remove("id") {
        None | Some(Value::Null) => {
            return Err(ApiError::field(
                "id",
                "id: is required (a UUID chosen by the POS)",
            ));
        }
        Some(Value::String(s)) => Uuid::parse_str(&s)
            .map_err(|_| ApiError::field("id", "id: must be a UUID, e.g. 0194b3a2-…"))?,
        Some(_) => return Err(ApiError::field("id", "id: must be a UUID string")),
    };
    for (name, value) in from_path {
        match obj.get(*name) {
            Some(v) if v != value => {
                return Err(ApiError::field(
                    name,
                    format!("{name}: differs from the one in the path"),
                ));
            }
            _ => {
                obj.insert((*name).to_owned(), value.clone());
            }
        }
    }
    if let Some(t) = terminal
        && matches!(kind, DocumentKind::Customer | DocumentKind::OmniOrderStatus)
        && !obj.contains_key("register")
    {
        obj.insert("register".into(), Value::String(t.to_owned()));
    }
    let body = Value::Object(obj);
    // Checked here too, not only in the outbox, so a bad body is answered
    // without queueing behind the writer thread's group commit.
    kind.validate_body(&body)?;
    Ok(NewDocument { id, kind, body })
}

/// Puts a parsed document into the outbox and answers.
async fn submit(st: &ApiState, doc: NewDocument) -> Result<(Accepted, Response), ApiError> {
    let accepted = st
        .app
        .intake
        .submit(doc)
        .await
        .map_err(|e| ApiError::intake(&e))?;
    if !accepted.duplicate {
        st.app.upload_wake.notify_one();
    }
    let status = if accepted.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let response = json_response(status, &accepted);
    Ok((accepted, response))
}

async fn write(
    st: &ApiState,
    kind: DocumentKind,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    from_path: &[(&str, Value)],
    terminal: &Terminal,
) -> Result<Response, ApiError> {
    let doc = parse_document(kind, headers, body, from_path, Some(&terminal.0))?;
    Ok(submit(st, doc).await?.1)
}

fn path_uuid(field: &str, s: &str) -> Result<Value, ApiError> {
    Uuid::parse_str(s)
        .map(|u| Value::String(u.to_string()))
        .map_err(|_| ApiError::field(field, format!("{field}: the path must carry a UUID")))
}

/// A code from the path (`order_id`), as sent: not blank.
fn path_code(field: &str, s: &str) -> Result<Value, ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::field(
            field,
            format!("{field}: must not be empty"),
        ));
    }
    Ok(Value::String(s.to_owned()))
}

/// What every POS write answers, for the OpenAPI document (one list: every
/// write goes through `parse_document` and `submit`).
#[derive(utoipa::IntoResponses)]
pub enum WriteResponses {
    #[response(status = 201, description = "Stored durably in the outbox")]
    Created(Accepted),
    #[response(
        status = 200,
        description = "This id was taken already: the first document stands"
    )]
    Duplicate(Accepted),
    #[response(status = 400, description = "Malformed JSON")]
    Malformed(ErrorSchema),
    #[response(status = 401, description = "No or unknown token")]
    Unauthorized(ErrorSchema),
    #[response(
        status = 409,
        description = "This id is taken by a different document (`field`: `id`): NOT stored; a retry must send the same body, a new document needs a new id"
    )]
    IdConflict(ErrorSchema),
    #[response(status = 413, description = "Body over [pos] max_body_bytes")]
    TooLarge(ErrorSchema),
    #[response(status = 415, description = "Not `application/json`")]
    NotJson(ErrorSchema),
    #[response(status = 422, description = "Invalid: `field` names it")]
    Invalid(ErrorSchema),
    #[response(
        status = 503,
        description = "Outbox read-only or stopped: NOT accepted, retry"
    )]
    Unavailable(ErrorSchema),
    #[response(status = 507, description = "Disk full: NOT accepted, retry")]
    DiskFull(ErrorSchema),
}

/// The OpenAPI schema of a write's body: `id` (the document's UUID, chosen
/// by the POS) plus the fields of the protocol's document type, minus those
/// the route's path sets. Built from the type's own schema (not an `allOf`:
/// with `additionalProperties: false` on the document, an `allOf` adding `id`
/// would refuse every body).
fn with_id<T: utoipa::PartialSchema>(
    from_path: &[&str],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
    let RefOr::T(Schema::Object(doc)) = T::schema() else {
        return T::schema();
    };
    let id = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .description(Some(
            "The document's id, chosen by the POS: a retry sends the same id and body",
        ))
        .build();
    let mut body = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(doc.description.clone())
        .property("id", id)
        .required("id");
    for (name, schema) in &doc.properties {
        if !from_path.contains(&name.as_str()) {
            body = body.property(name.clone(), schema.clone());
        }
    }
    for name in &doc.required {
        if !from_path.contains(&name.as_str()) {
            body = body.required(name.clone());
        }
    }
    let mut body = body.build();
    body.additional_properties = doc.additional_properties.clone();
    RefOr::T(Schema::Object(body))
}

/// Request-body schemas of the writes: `<Document>Request` = `id` + the
/// document's fields (see [`with_id`]).
macro_rules! request_schema {
    ($name:ident, $doc:ty, [$($from_path:literal),*]) => {
        pub struct $name;
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                with_id::<$doc>(&[$($from_path),*])
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

request_schema!(CashOpenRequest, document::CashOpen, []);
request_schema!(CashMovementRequest, document::CashMovement, []);
request_schema!(CashCloseRequest, document::CashClose, []);
request_schema!(SaleRequest, document::Sale, []);
request_schema!(ReducaoZRequest, document::ReducaoZ, []);
request_schema!(CustomerRequest, document::CustomerSignup, []);
request_schema!(SalePaymentRequest, document::SalePayment, ["sale_id"]);
request_schema!(SaleXmlRequest, document::SaleXml, ["sale_id"]);
request_schema!(
    OmniActionRequest,
    loja_protocol::omni::OmniAction,
    ["order_id"]
);
request_schema!(
    OmniReturnRequest,
    loja_protocol::omni::OmniReturn,
    ["order_id"]
);
request_schema!(
    SaleCancellationRequest,
    document::SaleCancellation,
    ["sale_id"]
);
request_schema!(ReturnRequest, document::Return, ["sale_id"]);
request_schema!(
    ReturnCancellationRequest,
    document::ReturnCancellation,
    ["return_id"]
);
request_schema!(StockMovementRequest, document::StockMovement, []);
request_schema!(InventoryCountRequest, document::InventoryCount, []);

/// The POST handler of a document kind and its OpenAPI entry.
///
/// `doc_route!(name, path, kind, Request, example, doc)`: the document is the
/// whole body (tag `documents`).
///
/// With a tag: `doc_route!(/// doc… name, path, tag, kind, Request, example,
/// "body's description")`.
///
/// The path-id arm, for a document whose parent's id is in the path
/// (`/…/{id}/…`): `doc_route!(/// doc… name, path, tag, kind, Request,
/// example, path_id(IdType, "id's description") => "field" via check
/// [then pre], "body's description")`. `check(field, id)` turns the path's id
/// into the body's `field` (or refuses it); the body may repeat `field`,
/// equal. `pre(&st, &doc)`, when given, is an async check of the parsed
/// document against the replica before it is submitted (a 422 refuses it).
macro_rules! doc_route {
    (
        $(#[doc = $doc:tt])+
        $name:ident, $path:tt, $tag:tt, $kind:expr, $request:ty, $example:ident,
        path_id($id_type:ident, $id_doc:tt) => $field:tt via $check:ident $(then $pre:ident)?,
        $body_doc:tt
    ) => {
        $(#[doc = $doc])+
        #[utoipa::path(post, path = $path, tag = $tag, security(("bearer" = [])),
            params(("id" = $id_type, Path, description = $id_doc)),
            request_body(content = $request, description = $body_doc, example = examples::$example),
            responses(WriteResponses))]
        pub async fn $name(
            State(st): State<ApiState>,
            Extension(terminal): Extension<Terminal>,
            Path(id): Path<String>,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Response, ApiError> {
            let id = $check($field, &id)?;
            let doc = parse_document($kind, &headers, body, &[($field, id)], Some(&terminal.0))?;
            $($pre(&st, &doc).await?;)?
            Ok(submit(&st, doc).await?.1)
        }
    };
    (
        $(#[doc = $doc:tt])+
        $name:ident, $path:tt, $tag:tt, $kind:expr, $request:ty, $example:ident,
        $body_doc:tt
    ) => {
        $(#[doc = $doc])+
        #[utoipa::path(post, path = $path, tag = $tag, security(("bearer" = [])),
            request_body(content = $request, description = $body_doc, example = examples::$example),
            responses(WriteResponses))]
        pub async fn $name(
            State(st): State<ApiState>,
            Extension(terminal): Extension<Terminal>,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Response, ApiError> {
            write(&st, $kind, &headers, body, &[], &terminal).await
        }
    };
    ($name:ident, $path:tt, $kind:expr, $request:ty, $example:ident, $doc:tt) => {
        doc_route!(
            #[doc = $doc]
            $name, $path, "documents", $kind, $request, $example,
            "`id` (UUID) + the document's fields"
        );
    };
}

doc_route!(
    cash_open,
    "/v1/cash/open",
    DocumentKind::CashOpen,
    CashOpenRequest,
    cash_open,
    "Opens a cash session (abertura de caixa); its `id` is the session id later documents name. Beyond the schema (state): refused (422 `register`) while the register has a session open."
);
doc_route!(
    cash_movement,
    "/v1/cash/movements",
    DocumentKind::CashMovement,
    CashMovementRequest,
    cash_movement,
    "Cash put into (suprimento) or taken out of (sangria) the drawer. Beyond the schema (state): `session_id` must name an open cash session of `register` (422 `session_id`)."
);
doc_route!(
    cash_close,
    "/v1/cash/close",
    DocumentKind::CashClose,
    CashCloseRequest,
    cash_close,
    "Closes a cash session (fechamento de caixa). Beyond the schema (state): `session_id` must name an open cash session of `register` (422 `session_id`)."
);
doc_route!(
    sale,
    "/v1/sales",
    DocumentKind::Sale,
    SaleRequest,
    sale,
    "A sale. Beyond the schema (cross-field rules, each a 422 naming the field): an item's `discount` ≤ round(qty × unit_price / 1000) and its `total` = that − discount + addition; the sale's `discount` ≤ Σ item totals; `total` = Σ items − discount + addition; `change` ≤ Σ payments and Σ payments − change = `total`; `barcode` and `customer_document` need valid check digits; `session_id` must name an open cash session of `register` (state)."
);
doc_route!(
    reducao_z,
    "/v1/fiscal/reducao-z",
    DocumentKind::ReducaoZ,
    ReducaoZRequest,
    reducao_z,
    "The day's Redução Z of a register. Beyond the schema (cross-field rules, 422 naming the field): `coo_end` ≥ `coo_start`; `net_total` = gross_total − cancellations − discounts."
);

/// A customer sign-up (or update). Stored in the outbox as a `customer`
/// document and written into the replica before the answer, so the lookup
/// by CPF/CNPJ finds the customer before the central has it: a 201 or 200
/// means it is readable at this store now (and after any crash: see
/// `crate::signups`). A retry (200 duplicate) writes the row if a crash
/// kept it from being written. When the replica's writer stays busy past
/// [`LOCAL_ROW_WAIT`], the answer is 202 with `"readable": false`: stored and
/// to be sent, readable in a moment (the write goes on).
#[utoipa::path(post, path = "/v1/customers", tag = "customers", security(("bearer" = [])),
    request_body(content = CustomerRequest, description = "`id` (UUID) + loja_protocol::document::CustomerSignup; `register` defaults to the terminal's name. Beyond the schema: `document` needs valid CPF/CNPJ check digits (422 `document`)", example = examples::customer),
    responses(WriteResponses, CustomerNotYetReadable))]
pub async fn customer(
    State(st): State<ApiState>,
    Extension(terminal): Extension<Terminal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let doc = parse_document(
        DocumentKind::Customer,
        &headers,
        body,
        &[],
        Some(&terminal.0),
    )?;
    let signup: CustomerSignup = serde_json::from_value(doc.body.clone())
        .map_err(|e| ApiError::field("body", format!("not a customer sign-up: {e}")))?;
    let row = signups::customer_row(&signup, &loja_protocol::time::now_rfc3339());
    // Refused before anything is stored if the replica would refuse the row:
    // an acknowledged sign-up must be readable here.
    let entity = loja_protocol::entity_named("customers").ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the registry has no customers entity",
        )
    })?;
    entity.validate_row(&row)?;
    let (accepted, _) = submit(&st, doc).await?;
    // A new sign-up replaces the row (the POS's data is the newest); a
    // retry only fills a missing one. A download may hold the replica
    // writer for a moment: wait a bounded time; past it the write goes on
    // on its own and the answer says the row is not readable yet.
    let how = if accepted.duplicate {
        signups::Write::IfMissing
    } else {
        signups::Write::Replace
    };
    let catalog = st.app.catalog.clone();
    let id = accepted.id;
    let task = tokio::task::spawn_blocking(move || {
        let written = signups::write_local(&catalog, &id, &row, how);
        if let Err(e) = &written {
            tracing::warn!(id = %id, error = %e, "customer sign-up not written to the replica (it is in the outbox; the next start writes it)");
        }
        written
    });
    let readable = match tokio::time::timeout(LOCAL_ROW_WAIT, task).await {
        Ok(Ok(Ok(_))) => true,
        Ok(Ok(Err(_))) => false,
        Ok(Err(e)) => {
            tracing::warn!(id = %id, error = %e, "customer sign-up: the replica write task failed (it is in the outbox; the next start writes it)");
            false
        }
        Err(_) => {
            tracing::warn!(id = %id, wait_ms = LOCAL_ROW_WAIT.as_millis() as u64, "customer sign-up: the replica writer stayed busy; answered 202 not readable yet (the write goes on)");
            false
        }
    };
    let status = match (readable, accepted.duplicate) {
        (false, _) => StatusCode::ACCEPTED,
        (true, true) => StatusCode::OK,
        (true, false) => StatusCode::CREATED,
    };
    Ok(json_response(
        status,
        &CustomerAccepted { accepted, readable },
    ))
}

/// How long a sign-up's answer waits for its replica row.
pub const LOCAL_ROW_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The answer to `POST /v1/customers`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CustomerAccepted {
    #[serde(flatten)]
    pub accepted: Accepted,
    /// The customer can be read at this store now
    /// (`GET /v1/customers/by-document/{document}`): true with 201 and 200,
    /// false with 202.
    pub readable: bool,
}

/// The answer a sign-up gets when its replica row is not written in time.
#[derive(utoipa::IntoResponses)]
pub enum CustomerNotYetReadable {
    #[response(
        status = 202,
        description = "Stored durably in the outbox and to be sent, but not readable at this store yet (`readable`: false): the replica was busy; the row is written in a moment, or at the next start. A retry with the same id and body answers 200 once it is"
    )]
    Pending(CustomerAccepted),
}

doc_route!(
    /// A payment added to a sale after it was posted (e.g. a TEF approval that
    /// came late). `sale_id` comes from the path. Beyond the schema (state): the
    /// sale must be in this store's outbox (422 `sale_id`).
    sale_payment,
    "/v1/sales/{id}/payments",
    "documents",
    DocumentKind::SalePayment,
    SalePaymentRequest,
    sale_payment,
    path_id(Uuid, "The sale's document id") => "sale_id" via path_uuid,
    "`id` (UUID of this payment document) + loja_protocol::document::SalePayment without `sale_id` (the path's)"
);
doc_route!(
    /// The signed NFC-e/SAT XML of a sale, kept byte-for-byte. `sale_id` comes
    /// from the path. Beyond the schema (state): the sale must be in this
    /// store's outbox (422 `sale_id`).
    sale_xml,
    "/v1/sales/{id}/xml",
    "documents",
    DocumentKind::SaleXml,
    SaleXmlRequest,
    sale_xml,
    path_id(Uuid, "The sale's document id") => "sale_id" via path_uuid,
    "`id` (UUID of this XML document) + `register`, `access_key` (44 digits), `xml` (the signed XML as a JSON string)"
);
doc_route!(
    /// A store's action on an omni order's lines (loja_protocol::omni): accept,
    /// reject (`reason_code`), start_picking, pick (`lines[i].qty` for a cut,
    /// `lines[i].substitute`), pack, ready (pickup), hand_over (pickup), ship
    /// (ship from store, with the `invoice`), put_back. `expects` is the state
    /// the lines leave; no `lines`: every line of this store in that state.
    /// `order_id` comes from the path. The order changes at once for every
    /// register; beyond the schema (state, 422 naming the field with the
    /// line's real state): the order must be this store's, and each line in
    /// `expects` (a second click is refused here). The central refuses an
    /// action a line outran meanwhile (the channel cancelled it): the
    /// document is parked with its reason (`lojad status`).
    omni_action,
    "/v1/omni-orders/{id}/actions",
    "omni",
    DocumentKind::OmniAction,
    OmniActionRequest,
    omni_action,
    path_id(String, "The order id (a code: not blank, at most 60 characters)") => "order_id" via path_code,
    "`id` (UUID of this action, chosen by the POS: a retry sends the same) + loja_protocol::omni::OmniAction without `order_id` (the path's); `register` defaults to the terminal's name"
);

doc_route!(
    /// An omni order's delivered goods coming back (devolução omni), at any
    /// store of the chain: the order may have been handed over or shipped
    /// by another store (look it up with
    /// `GET /v1/omni-orders/by-number/{number}/returnable`). `order_id`
    /// comes from the path. `refunds` paid at the counter (Σ = Σ line
    /// refunds), or none: the channel refunds the customer. lojad fetches
    /// the order from the central first (at most 5 s): the central down, a
    /// return of this store's own order goes on against its copy; another
    /// store's is refused (503 `central_unreachable`). Beyond the schema
    /// (each a 422 naming the field): `reason_code` must be an omni return
    /// reason of the store's `return_reasons` (`omni: true`, once the list
    /// has one); each line must be delivered (`items[i].line_id`), of the
    /// product it delivered (`items[i].product_code`), with no more coming
    /// back than it delivered less earlier returns (`items[i].qty`), and a
    /// refund of at most qty × its unit price (`items[i].refund`). The
    /// central checks the same when the return arrives (two stores taking
    /// the last unit back at once: the second is parked with the reason).
    omni_return,
    "/v1/omni-orders/{id}/returns",
    "omni",
    DocumentKind::OmniReturn,
    OmniReturnRequest,
    omni_return,
    path_id(String, "The order id (a code: not blank, at most 60 characters)") => "order_id" via path_code then omni_return_ready,
    "`id` (UUID of this return document) + loja_protocol::omni::OmniReturn without `order_id` (the path's)"
);

doc_route!(
    /// A sale of this store cancelled (the NFC-e cancellation event XML kept
    /// byte-for-byte when the POS has it). `sale_id` comes from the path.
    /// Beyond the schema (state, 422 `sale_id`): the sale must be in this
    /// store's outbox, not cancelled already, and without a return that
    /// stands (cancel the return first).
    sale_cancellation,
    "/v1/sales/{id}/cancellation",
    "sales",
    DocumentKind::SaleCancellation,
    SaleCancellationRequest,
    sale_cancellation,
    path_id(Uuid, "The sale's document id") => "sale_id" via path_uuid,
    "`id` (UUID of this cancellation document) + loja_protocol::document::SaleCancellation without `sale_id` (the path's)"
);
doc_route!(
    /// A return (devolução) or exchange (troca: `exchange: true`, no
    /// `refunds`; the refund pays the new sale, a document of its own) of
    /// products of a sale of this store. `sale_id` comes from the path.
    /// Beyond the schema (each a 422 naming the field): Σ `refunds` = Σ line
    /// refunds (`refunds`); `reason_code` must be a row of the store's
    /// `return_reasons` (any code until that list's first sync brings a
    /// row; `reason_code`); state: the sale must be in this store's outbox
    /// and not cancelled (`sale_id`), each product must be in the sale
    /// (`items[i].product_code`), and no more may come back than was sold
    /// less earlier returns that stand (`items[i].qty`).
    sale_return,
    "/v1/sales/{id}/returns",
    "sales",
    DocumentKind::Return,
    ReturnRequest,
    sale_return,
    path_id(Uuid, "The sale's document id") => "sale_id" via path_uuid then known_return_reason,
    "`id` (UUID of this return document, the `return_id` a cancellation names) + loja_protocol::document::Return without `sale_id` (the path's)"
);
doc_route!(
    /// A return undone: its restocked products leave the stock again.
    /// `return_id` comes from the path. Beyond the schema (state, 422
    /// `return_id`): the return must be in this store's outbox and not
    /// cancelled already.
    return_cancellation,
    "/v1/returns/{id}/cancellation",
    "sales",
    DocumentKind::ReturnCancellation,
    ReturnCancellationRequest,
    return_cancellation,
    path_id(Uuid, "The return's document id") => "return_id" via path_uuid,
    "`id` (UUID of this cancellation document) + loja_protocol::document::ReturnCancellation without `return_id` (the path's)"
);
doc_route!(
    /// Goods in, out, between stores, or corrected: `receipt` (stock up),
    /// `transfer_out` (down at once), `transfer_in` (up), `adjustment` (signed
    /// `qty`). Beyond the schema (cross-field rules, each a 422 naming the
    /// field): a receipt needs `nfe_key` and has no `to_store`/`from_store`;
    /// a transfer out needs `to_store` and has no `from_store`; a transfer in
    /// needs `from_store` and `transfer_id` and has no `to_store`; an
    /// adjustment needs `reason_code`; `items[i].qty` is positive, except an
    /// adjustment's, which is signed and not zero.
    stock_movement,
    "/v1/stock/movements",
    "stock",
    DocumentKind::StockMovement,
    StockMovementRequest,
    stock_movement,
    "`id` (UUID) + loja_protocol::document::StockMovement"
);
doc_route!(
    /// Counted quantities: each product's stock becomes its `counted_qty` (a
    /// partial count names only the products counted). Beyond the schema
    /// (cross-field rule, 422 naming the field): a product is counted once
    /// per count (`items[i].product_code`).
    inventory_count,
    "/v1/stock/counts",
    "stock",
    DocumentKind::InventoryCount,
    InventoryCountRequest,
    inventory_count,
    "`id` (UUID) + loja_protocol::document::InventoryCount"
);

/// The registry entity a return's `reason_code` must name a row of.
const RETURN_REASONS: &str = "return_reasons";

/// A return's `reason_code` must be a row of the replica's `return_reasons`
/// (422 `reason_code`), except:
/// - while that table has no row at all (its first sync not done: lojad
///   cannot tell an unknown code from one not downloaded yet), any code goes;
/// - a document the outbox holds already is not refused here: a retry is
///   answered as one (200 duplicate, or 409 for another body) even if the
///   reason has left the list since.
async fn known_return_reason(st: &ApiState, doc: &NewDocument) -> Result<(), ApiError> {
    if stored(st, doc).await? {
        return Ok(());
    }
    return_reason(st, doc, false).await
}

/// An omni return: its reason is one of the omni return reasons (the
/// domain's "Devolução Pedido OMS" motives: `return_reasons` rows with
/// `omni: true`, once the list has one; the same exceptions as
/// [`known_return_reason`]), and the order it names is fetched from the
/// central (`omni::prepare_return`). A retry of a stored document skips both.
async fn omni_return_ready(st: &ApiState, doc: &NewDocument) -> Result<(), ApiError> {
    if stored(st, doc).await? {
        return Ok(());
    }
    return_reason(st, doc, true).await?;
    let order_id = doc
        .body
        .get("order_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    super::omni::prepare_return(st, order_id).await
}

/// `reason_code` (required and a string: `parse_document` validated the
/// body) is a row of `return_reasons`, and with `omni` one marked omni when
/// any is.
async fn return_reason(st: &ApiState, doc: &NewDocument, omni: bool) -> Result<(), ApiError> {
    let Some(code) = doc.body.get("reason_code").and_then(Value::as_str) else {
        return Ok(());
    };
    let lookup = code.to_owned();
    let is_omni = |row: &serde_json::Map<String, Value>| {
        row.get("omni")
            .is_some_and(|v| v.as_bool() == Some(true) || v.as_i64() == Some(1))
    };
    let (listed, any, omni_codes) = st
        .readers
        .run(move |r| {
            let listed = r.list(RETURN_REASONS, Some(("code", lookup.as_str())), 1)?;
            let all = r.list(RETURN_REASONS, None, 0)?;
            let omni_codes: Vec<String> = all
                .iter()
                .filter(|row| is_omni(row))
                .filter_map(|row| row.get("code").and_then(Value::as_str).map(str::to_owned))
                .collect();
            Ok((listed.first().cloned(), !all.is_empty(), omni_codes))
        })
        .await?;
    match listed {
        None if any => Err(ApiError::field(
            "reason_code",
            format!("reason_code: {code:?} is not a return reason of this store (return_reasons)"),
        )),
        Some(row) if omni && !omni_codes.is_empty() && !is_omni(&row) => Err(ApiError::field(
            "reason_code",
            format!(
                "reason_code: {code:?} is not an omni return reason (return_reasons with omni: {})",
                omni_codes.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// Does the outbox hold `doc` already (a retry)?
async fn stored(st: &ApiState, doc: &NewDocument) -> Result<bool, ApiError> {
    let id = doc.id;
    let stored = st
        .app
        .intake
        .with_outbox(move |o| o.get(id).map(|d| d.is_some()))
        .await
        .map_err(|e| ApiError::intake(&e))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "outbox_error",
                format!("reading the outbox failed: {e}"),
            )
        })?;
    Ok(stored)
}

/// Example bodies: shown in the OpenAPI document and posted by the tests,
/// so the examples are known to be accepted.
pub mod examples {
    use serde_json::{Value, json};

    pub const SESSION: &str = "01940000-0000-7000-8000-000000000001";
    pub const SALE: &str = "01940000-0000-7000-8000-000000000002";
    /// The return of [`sale_return`], which [`return_cancellation`] names.
    pub const RETURN: &str = "01940000-0000-7000-8000-00000000000b";

    pub fn cash_open() -> Value {
        json!({"id": SESSION, "register": "PDV01", "operator": "001", "opening_amount": 10000,
               "opened_at": "2026-11-26T08:00:00Z"})
    }
    pub fn cash_movement() -> Value {
        json!({"id": "01940000-0000-7000-8000-000000000003", "register": "PDV01", "session_id": SESSION,
               "kind": "withdrawal", "amount": 5000, "reason": "sangria", "at": "2026-11-26T12:00:00Z"})
    }
    pub fn sale() -> Value {
        json!({"id": SALE, "register": "PDV01", "session_id": SESSION, "number": 1, "operator": "001",
               "items": [
                   {"product_code": "1", "barcode": "7891000315507", "qty": 1500, "unit_price": 999, "total": 1499},
                   {"product_code": "2", "qty": 1000, "unit_price": 500, "discount": 50, "total": 450}
               ],
               "discount": 49, "total": 1900,
               "payments": [{"method": "CASH", "amount": 2000}], "change": 100,
               "sold_at": "2026-11-26T12:00:00Z"})
    }
    pub fn sale_payment() -> Value {
        json!({"id": "01940000-0000-7000-8000-000000000004", "register": "PDV01",
               "payment": {"method": "TEF", "amount": 1900, "authorization": "123456"},
               "at": "2026-11-26T12:01:00Z"})
    }
    pub fn sale_xml() -> Value {
        json!({"id": "01940000-0000-7000-8000-000000000005", "register": "PDV01",
               "access_key": "35261112345678000190650010000000011000000010",
               "xml": "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<nfeProc versao=\"4.00\"><NFe>…</NFe></nfeProc>\r\n"})
    }
    pub fn cash_close() -> Value {
        json!({"id": "01940000-0000-7000-8000-000000000006", "register": "PDV01", "session_id": SESSION,
               "operator": "001", "counted_amount": 7000,
               "totals": [{"method": "CASH", "amount": 2000}], "closed_at": "2026-11-26T20:00:00Z"})
    }
    pub fn reducao_z() -> Value {
        json!({"id": "01940000-0000-7000-8000-000000000007", "register": "PDV01", "date": "2026-11-26",
               "crz": 1, "coo_start": 1, "coo_end": 1, "gross_total": 1949, "discounts": 49,
               "net_total": 1900, "totals": [{"method": "CASH", "amount": 1900}]})
    }
    pub fn customer() -> Value {
        json!({"id": "01940000-0000-7000-8000-000000000008", "document": "52998224725",
               "name": "Maria da Silva", "email": "maria@example.com", "uf": "SP",
               "lgpd_consent": true, "lgpd_letter_version": 1, "register": "PDV01"})
    }
    pub fn omni_action() -> Value {
        json!({"id": "01940000-0000-7000-8000-000000000009", "action": "accept",
               "expects": "assigned", "operator": "001", "at": "2026-11-26T12:30:00Z",
               "register": "PDV01"})
    }
    /// A return of the fixture's order O2 (its line 1 handed over).
    pub fn omni_return() -> Value {
        json!({"id": "01940000-0000-7000-8000-00000000000f", "register": "PDV01",
               "reason_code": "03", "operator": "001",
               "items": [{"line_id": "1", "product_code": "1", "qty": 1000, "refund": 1000, "restock": true}],
               "returned_at": "2026-11-28T10:00:00Z"})
    }
    pub fn sale_cancellation() -> Value {
        json!({"id": "01940000-0000-7000-8000-00000000000a", "register": "PDV01",
               "reason_code": "1", "operator": "001", "cancelled_at": "2026-11-27T11:00:00Z"})
    }
    pub fn sale_return() -> Value {
        json!({"id": RETURN, "register": "PDV01", "reason_code": "02", "operator": "001",
               "items": [{"product_code": "1", "qty": 1000, "refund": 950, "restock": true}],
               "refunds": [{"method": "CASH", "amount": 950}],
               "returned_at": "2026-11-27T10:00:00Z"})
    }
    pub fn return_cancellation() -> Value {
        json!({"id": "01940000-0000-7000-8000-00000000000c", "register": "PDV01",
               "reason_code": "9", "operator": "001", "cancelled_at": "2026-11-27T10:05:00Z"})
    }
    pub fn stock_movement() -> Value {
        json!({"id": "01940000-0000-7000-8000-00000000000d", "movement": "receipt",
               "register": "PDV01", "operator": "001",
               "nfe_key": "35261112345678000190550010000000011000000010",
               "items": [{"product_code": "1", "qty": 24000}], "moved_at": "2026-11-27T08:00:00Z"})
    }
    pub fn inventory_count() -> Value {
        json!({"id": "01940000-0000-7000-8000-00000000000e", "register": "PDV01", "operator": "001",
               "items": [{"product_code": "1", "counted_qty": 7000}],
               "counted_at": "2026-11-27T21:00:00Z"})
    }
}
