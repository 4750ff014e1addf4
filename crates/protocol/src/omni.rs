//! Omni-channel orders: an order paid online that a store accepts, picks,
//! packs and hands over (pickup in store) or ships with its NF-e (ship from
//! store, endless aisle). One state machine per line (`LineState`), the
//! order's status derived from its lines (`OrderStatus`), the same rules at
//! the store (the POS sees an action's effect at once, and a second click
//! is refused there) and at the central (a stale action is refused with the
//! line's real state). Pure data and rules: no I/O. docs/omni.md is the
//! prose of this module, with the mapping to the domain's, Shopify's and
//! VTEX's statuses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::{
    Payment, Validate, count, document, int, line_gross, money, opt_text, refunded, text, timestamp,
};
use crate::error::FieldError;
use crate::limits::{self, CODE_MAX};

/// How the order reaches the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Retira Loja: the customer collects it at the store.
    Pickup,
    /// Envio pela Loja: the store ships it with an NF-e.
    ShipFromStore,
    /// Endless aisle: sold at one store, shipped by another (as ship from store).
    EndlessAisle,
}

impl Delivery {
    pub fn ships(self) -> bool {
        self != Delivery::Pickup
    }
}

/// Where one line stands. The order: assigned → accepted → picking →
/// picked → packed → ready (pickup) → handed_over, or packed → shipped
/// (ship from store). Off the path: rejected (by the store, before picked),
/// to_put_back (cancelled by the channel after picked: the goods go back to
/// the shelf), cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineState {
    Assigned,
    Accepted,
    Picking,
    Picked,
    Packed,
    Ready,
    HandedOver,
    Shipped,
    Rejected,
    ToPutBack,
    Cancelled,
}

impl LineState {
    pub const ALL: [LineState; 11] = [
        LineState::Assigned,
        LineState::Accepted,
        LineState::Picking,
        LineState::Picked,
        LineState::Packed,
        LineState::Ready,
        LineState::HandedOver,
        LineState::Shipped,
        LineState::Rejected,
        LineState::ToPutBack,
        LineState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LineState::Assigned => "assigned",
            LineState::Accepted => "accepted",
            LineState::Picking => "picking",
            LineState::Picked => "picked",
            LineState::Packed => "packed",
            LineState::Ready => "ready",
            LineState::HandedOver => "handed_over",
            LineState::Shipped => "shipped",
            LineState::Rejected => "rejected",
            LineState::ToPutBack => "to_put_back",
            LineState::Cancelled => "cancelled",
        }
    }

    /// No action of the store changes it any more.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            LineState::HandedOver | LineState::Shipped | LineState::Rejected | LineState::Cancelled
        )
    }

    /// The store holds stock for it (accepted, not yet gone or released).
    pub fn reserves(self) -> bool {
        matches!(
            self,
            LineState::Accepted
                | LineState::Picking
                | LineState::Picked
                | LineState::Packed
                | LineState::Ready
        )
    }

    /// The domain's status (TOTVS "Pedido de Venda Omni") of a line here.
    pub fn domain_status(self, delivery: Delivery) -> &'static str {
        match self {
            LineState::Assigned | LineState::Rejected => "Em aberto",
            LineState::Accepted => "Pedido Recebido",
            LineState::Picking | LineState::Picked => "Em separação",
            LineState::Packed if delivery.ships() => "Envio pela Loja",
            LineState::Packed => "Em separação",
            LineState::Ready => "Confirmado Loja",
            LineState::HandedOver | LineState::Shipped => "Faturado",
            LineState::ToPutBack | LineState::Cancelled => "Cancelado",
        }
    }

    /// Shopify's fulfillment order status.
    pub fn shopify_status(self) -> &'static str {
        match self {
            LineState::Assigned => "open",
            LineState::Accepted
            | LineState::Picking
            | LineState::Picked
            | LineState::Packed
            | LineState::Ready => "in_progress",
            LineState::HandedOver | LineState::Shipped => "closed",
            LineState::Rejected => "incomplete",
            LineState::ToPutBack | LineState::Cancelled => "cancelled",
        }
    }

    /// VTEX's order status.
    pub fn vtex_status(self) -> &'static str {
        match self {
            LineState::Assigned | LineState::Rejected => "ready-for-handling",
            LineState::Accepted => "start-handling",
            LineState::Picking | LineState::Picked | LineState::Packed | LineState::Ready => {
                "handling"
            }
            LineState::HandedOver | LineState::Shipped => "invoiced",
            LineState::ToPutBack => "cancellation-requested",
            LineState::Cancelled => "canceled",
        }
    }
}

/// An item given in place of the ordered one (invoicing with changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Substitute {
    #[schema(schema_with = crate::schema::code)]
    pub product_code: String,
    /// Thousandths.
    #[schema(schema_with = crate::schema::qty)]
    pub qty: i64,
    #[schema(schema_with = crate::schema::money)]
    pub unit_price: i64,
}

impl Substitute {
    fn validate(&self) -> Result<(), FieldError> {
        text("product_code", &self.product_code, CODE_MAX)?;
        int("qty", self.qty, 1, limits::QTY_MAX)?;
        money("unit_price", self.unit_price)
    }
}

/// The NF-e a ship-from-store line goes out with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    #[schema(schema_with = crate::schema::number)]
    pub number: i64,
    #[schema(schema_with = crate::schema::number)]
    pub series: i64,
    #[schema(schema_with = crate::schema::access_key)]
    pub key: String,
    /// Centavos.
    #[schema(schema_with = crate::schema::money)]
    pub value: i64,
}

impl Invoice {
    fn validate(&self) -> Result<(), FieldError> {
        int("number", self.number, 1, limits::NUMBER_MAX)?;
        int("series", self.series, 0, 999)?;
        if self.key.len() != 44 || !self.key.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("key", "must be 44 digits"));
        }
        money("value", self.value)
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub line_id: String,
    pub product_code: String,
    /// Ordered, thousandths.
    pub qty: i64,
    /// Centavos.
    pub unit_price: i64,
    /// round(qty × unit_price / 1000), centavos.
    pub total: i64,
    /// The store it is assigned to; none: back at the channel.
    #[serde(default)]
    pub store: Option<String>,
    pub state: LineState,
    /// When it entered `state` (RFC 3339).
    pub state_since: String,
    #[serde(default)]
    pub picked_qty: i64,
    #[serde(default)]
    pub packed_qty: i64,
    /// Handed over or shipped.
    #[serde(default)]
    pub delivered_qty: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute: Option<Substitute>,
    /// Why it was rejected or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// The NF-e it was shipped with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Invoice>,
    /// What came back of it, at any store of the chain (`omni_return`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returns: Vec<LineReturn>,
}

/// Part of a delivered line that came back: the `omni_return` document
/// that took it, so a return is counted once wherever the order is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineReturn {
    /// The `omni_return` document's id.
    pub id: String,
    /// The store that took it back.
    pub store: String,
    /// Thousandths.
    pub qty: i64,
    /// Centavos.
    pub refund: i64,
}

impl OrderLine {
    /// The quantity it takes from the shelf once delivered: what was picked
    /// (a cut is less than ordered), of the substitute when there is one.
    pub fn goods(&self) -> (&str, i64) {
        match &self.substitute {
            Some(s) => (&s.product_code, s.qty),
            None => (
                &self.product_code,
                if self.picked_qty > 0 {
                    self.picked_qty
                } else {
                    self.qty
                },
            ),
        }
    }

    /// The unit price of what was delivered (the substitute's, when there is one).
    pub fn goods_unit_price(&self) -> i64 {
        self.substitute
            .as_ref()
            .map_or(self.unit_price, |s| s.unit_price)
    }

    /// Thousandths returned so far.
    pub fn returned_qty(&self) -> i64 {
        self.returns.iter().map(|r| r.qty).sum()
    }

    /// Thousandths that may still come back: delivered less returned.
    pub fn returnable_qty(&self) -> i64 {
        if matches!(self.state, LineState::HandedOver | LineState::Shipped) {
            (self.delivered_qty - self.returned_qty()).max(0)
        } else {
            0
        }
    }

    /// Delivered otherwise than ordered: a cut or a substitute.
    pub fn changed(&self) -> bool {
        self.substitute.is_some() || (self.picked_qty > 0 && self.picked_qty != self.qty)
    }
}

/// An order as the channel sends it and the central keeps it. A store's
/// feed carries the order with that store's lines only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: String,
    /// The number the customer quotes at the counter.
    pub number: String,
    /// Sales channel code (site, app, marketplace).
    pub channel: String,
    #[serde(default)]
    pub customer_document: Option<String>,
    pub delivery: Delivery,
    pub paid: bool,
    #[serde(default)]
    pub payments: Vec<Payment>,
    /// Centavos.
    #[serde(default)]
    pub freight: i64,
    pub created_at: String,
    pub lines: Vec<OrderLine>,
}

/// What a channel posts to the central to create an order: lines without
/// state (they start `assigned` to `store`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub id: String,
    pub number: String,
    pub channel: String,
    #[serde(default)]
    pub customer_document: Option<String>,
    pub delivery: Delivery,
    pub paid: bool,
    #[serde(default)]
    pub payments: Vec<Payment>,
    #[serde(default)]
    pub freight: i64,
    pub created_at: String,
    /// The store every line is assigned to.
    pub store: String,
    pub lines: Vec<NewLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    pub line_id: String,
    pub product_code: String,
    pub qty: i64,
    pub unit_price: i64,
    pub total: i64,
}

impl NewOrder {
    pub fn validate(&self) -> Result<(), FieldError> {
        text("id", &self.id, CODE_MAX)?;
        text("number", &self.number, CODE_MAX)?;
        text("channel", &self.channel, CODE_MAX)?;
        if let Some(d) = &self.customer_document {
            document("customer_document", d)?;
        }
        for (i, p) in self.payments.iter().enumerate() {
            text("method", &p.method, CODE_MAX).map_err(|e| e.within(format!("payments[{i}]")))?;
            int("amount", p.amount, 1, limits::MONEY_MAX)
                .map_err(|e| e.within(format!("payments[{i}]")))?;
        }
        money("freight", self.freight)?;
        timestamp("created_at", &self.created_at)?;
        text("store", &self.store, CODE_MAX)?;
        count("lines", self.lines.len(), 1, limits::ITEMS_MAX, "lines")?;
        let mut ids = std::collections::HashSet::new();
        for (i, l) in self.lines.iter().enumerate() {
            let at = |e: FieldError| e.within(format!("lines[{i}]"));
            text("line_id", &l.line_id, CODE_MAX).map_err(at)?;
            if !ids.insert(l.line_id.as_str()) {
                return Err(at(FieldError::new(
                    "line_id",
                    format!("{} appears twice", l.line_id),
                )));
            }
            text("product_code", &l.product_code, CODE_MAX).map_err(at)?;
            int("qty", l.qty, 1, limits::QTY_MAX).map_err(at)?;
            money("unit_price", l.unit_price).map_err(at)?;
            let gross = line_gross(l.qty, l.unit_price)
                .ok_or_else(|| at(FieldError::new("qty", "too large")))?;
            if l.total != gross {
                return Err(at(FieldError::new(
                    "total",
                    format!("is {} but qty × unit_price = {gross}", l.total),
                )));
            }
        }
        Ok(())
    }

    /// The order, every line assigned to the store.
    pub fn into_order(self) -> Order {
        let at = self.created_at.clone();
        let store = self.store;
        Order {
            id: self.id,
            number: self.number,
            channel: self.channel,
            customer_document: self.customer_document,
            delivery: self.delivery,
            paid: self.paid,
            payments: self.payments,
            freight: self.freight,
            created_at: self.created_at,
            lines: self
                .lines
                .into_iter()
                .map(|l| OrderLine {
                    line_id: l.line_id,
                    product_code: l.product_code,
                    qty: l.qty,
                    unit_price: l.unit_price,
                    total: l.total,
                    store: Some(store.clone()),
                    state: LineState::Assigned,
                    state_since: at.clone(),
                    picked_qty: 0,
                    packed_qty: 0,
                    delivered_qty: 0,
                    substitute: None,
                    reason_code: None,
                    invoice: None,
                    returns: Vec::new(),
                })
                .collect(),
        }
    }
}

/// The order's status, from its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// A line waits for a store (assigned, or rejected and not reassigned yet).
    Open,
    /// Every open line accepted.
    Accepted,
    /// Being picked or packed.
    InSeparation,
    /// Every open line ready at the counter.
    ReadyForPickup,
    /// Cancelled after picking: goods to put back on the shelf.
    PutBackPending,
    /// Every line delivered (handed over or shipped) or cancelled.
    Concluded,
    /// Every line cancelled.
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Accepted => "accepted",
            OrderStatus::InSeparation => "in_separation",
            OrderStatus::ReadyForPickup => "ready_for_pickup",
            OrderStatus::PutBackPending => "put_back_pending",
            OrderStatus::Concluded => "concluded",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Nothing is left for a store to do.
    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Concluded | OrderStatus::Cancelled)
    }
}

/// The status of `lines` (all of an order's, or one store's).
pub fn status_of(lines: &[OrderLine]) -> OrderStatus {
    use LineState as L;
    let has = |f: &dyn Fn(L) -> bool| lines.iter().any(|l| f(l.state));
    if lines.iter().all(|l| l.state == L::Cancelled) {
        return OrderStatus::Cancelled;
    }
    if has(&|s| s == L::ToPutBack) {
        return OrderStatus::PutBackPending;
    }
    if has(&|s| matches!(s, L::Assigned | L::Rejected)) {
        return OrderStatus::Open;
    }
    if has(&|s| s == L::Accepted) {
        return OrderStatus::Accepted;
    }
    if has(&|s| matches!(s, L::Picking | L::Picked | L::Packed)) {
        return OrderStatus::InSeparation;
    }
    if has(&|s| s == L::Ready) {
        return OrderStatus::ReadyForPickup;
    }
    OrderStatus::Concluded
}

/// What a store does to an order's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Accept,
    /// Needs `reason_code`; only before picked.
    Reject,
    StartPicking,
    /// Quantities per line (a cut is less than ordered), or a substitute.
    Pick,
    Pack,
    /// Pickup only: at the counter.
    Ready,
    /// Pickup only. A sale naming the order (`order_id`) does the same.
    HandOver,
    /// Ship from store only, with the `invoice`.
    Ship,
    /// A line the channel cancelled after it was picked is back on the shelf.
    PutBack,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Accept => "accept",
            ActionKind::Reject => "reject",
            ActionKind::StartPicking => "start_picking",
            ActionKind::Pick => "pick",
            ActionKind::Pack => "pack",
            ActionKind::Ready => "ready",
            ActionKind::HandOver => "hand_over",
            ActionKind::Ship => "ship",
            ActionKind::PutBack => "put_back",
        }
    }

    /// The states a line may leave by this action, and where it goes.
    fn transition(self, from: LineState, delivery: Delivery) -> Option<LineState> {
        use LineState as L;
        Some(match (self, from) {
            (ActionKind::Accept, L::Assigned) => L::Accepted,
            (ActionKind::Reject, L::Assigned | L::Accepted | L::Picking) => L::Rejected,
            (ActionKind::StartPicking, L::Accepted) => L::Picking,
            (ActionKind::Pick, L::Accepted | L::Picking) => L::Picked,
            (ActionKind::Pack, L::Picked) => L::Packed,
            (ActionKind::Ready, L::Picked | L::Packed) if !delivery.ships() => L::Ready,
            (ActionKind::HandOver, L::Ready) if !delivery.ships() => L::HandedOver,
            (ActionKind::Ship, L::Packed) if delivery.ships() => L::Shipped,
            (ActionKind::PutBack, L::ToPutBack) => L::Cancelled,
            _ => return None,
        })
    }
}

/// One line an action names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionLine {
    #[schema(schema_with = crate::schema::code)]
    pub line_id: String,
    /// Picked quantity (pick only; default: as ordered). Thousandths.
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_qty)]
    pub qty: Option<i64>,
    /// Given in place of the ordered item (pick only).
    #[serde(default)]
    pub substitute: Option<Substitute>,
}

/// `omni_action` document: a store's action on an order's lines. It names
/// the state the lines leave (`expects`), so the central refuses it when a
/// line moved meanwhile (the channel cancelled it, another store took it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OmniAction {
    #[schema(schema_with = crate::schema::code)]
    pub order_id: String,
    pub action: ActionKind,
    /// The state the lines are in before the action.
    pub expects: LineState,
    /// The lines; none: every line of this store in `expects`.
    #[serde(default)]
    pub lines: Vec<ActionLine>,
    /// A rejection's reason (a return reason code of the store's list).
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_code)]
    pub reason_code: Option<String>,
    /// Ship only.
    #[serde(default)]
    pub invoice: Option<Invoice>,
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    #[schema(schema_with = crate::schema::timestamp)]
    pub at: String,
}

impl Validate for OmniAction {
    fn validate(&self) -> Result<(), FieldError> {
        text("order_id", &self.order_id, CODE_MAX)?;
        text("register", &self.register, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        timestamp("at", &self.at)?;
        count("lines", self.lines.len(), 0, limits::ITEMS_MAX, "lines")?;
        for (i, l) in self.lines.iter().enumerate() {
            let at = |e: FieldError| e.within(format!("lines[{i}]"));
            text("line_id", &l.line_id, CODE_MAX).map_err(at)?;
            if let Some(q) = l.qty {
                int("qty", q, 1, limits::QTY_MAX).map_err(at)?;
            }
            if let Some(s) = &l.substitute {
                s.validate()
                    .map_err(|e| at(e.within("substitute".to_owned())))?;
            }
            if (l.qty.is_some() || l.substitute.is_some()) && self.action != ActionKind::Pick {
                return Err(at(FieldError::new(
                    "qty",
                    "quantities and substitutes go with a pick only",
                )));
            }
        }
        opt_text("reason_code", &self.reason_code, CODE_MAX)?;
        if self.action == ActionKind::Reject
            && self.reason_code.as_deref().is_none_or(limits::is_blank)
        {
            return Err(FieldError::new("reason_code", "a rejection needs a reason"));
        }
        match (&self.invoice, self.action) {
            (Some(i), ActionKind::Ship) => i.validate().map_err(|e| e.within("invoice"))?,
            (None, ActionKind::Ship) => {
                return Err(FieldError::new("invoice", "a shipment needs its NF-e"));
            }
            (Some(_), _) => {
                return Err(FieldError::new("invoice", "goes with a shipment only"));
            }
            (None, _) => {}
        }
        Ok(())
    }
    fn register(&self) -> &str {
        &self.register
    }
}

/// Applies a store's action to `order` (the lines of `store`). On success
/// answers the ids of the lines it moved; on refusal nothing changed and the
/// error names the field (`expects`, `lines[i].line_id`, …) with the line's
/// real state.
pub fn apply(order: &mut Order, store: &str, a: &OmniAction) -> Result<Vec<String>, FieldError> {
    if a.order_id != order.id {
        return Err(FieldError::new(
            "order_id",
            format!("is {} but the order is {}", a.order_id, order.id),
        ));
    }
    let delivery = order.delivery;
    let Some(to) = a.action.transition(a.expects, delivery) else {
        let why = match a.action {
            ActionKind::Ready | ActionKind::HandOver if delivery.ships() => {
                "the order is shipped, not picked up".to_owned()
            }
            ActionKind::Ship if !delivery.ships() => {
                "the order is picked up, not shipped".to_owned()
            }
            _ => format!(
                "{} does not leave {}",
                a.action.as_str(),
                a.expects.as_str()
            ),
        };
        return Err(FieldError::new("expects", why));
    };
    // The lines: named, or every line of the store in `expects`.
    let mut targets: Vec<(usize, Option<&ActionLine>)> = Vec::new();
    if a.lines.is_empty() {
        for (i, l) in order.lines.iter().enumerate() {
            if l.store.as_deref() == Some(store) && l.state == a.expects {
                targets.push((i, None));
            }
        }
        if targets.is_empty() {
            let states: Vec<String> = order
                .lines
                .iter()
                .filter(|l| l.store.as_deref() == Some(store))
                .map(|l| format!("{} {}", l.line_id, l.state.as_str()))
                .collect();
            return Err(FieldError::new(
                "expects",
                format!(
                    "no line of order {} is {} at this store (lines: {})",
                    order.id,
                    a.expects.as_str(),
                    if states.is_empty() {
                        "none".to_owned()
                    } else {
                        states.join(", ")
                    }
                ),
            ));
        }
    } else {
        for (n, al) in a.lines.iter().enumerate() {
            let field = format!("lines[{n}].line_id");
            let Some(i) = order.lines.iter().position(|l| l.line_id == al.line_id) else {
                return Err(FieldError::new(
                    field,
                    format!("order {} has no line {}", order.id, al.line_id),
                ));
            };
            let l = &order.lines[i];
            if l.store.as_deref() != Some(store) {
                return Err(FieldError::new(
                    field,
                    format!("line {} is not assigned to this store", l.line_id),
                ));
            }
            if l.state != a.expects {
                return Err(FieldError::new(
                    field,
                    format!(
                        "line {} is {}, not {}",
                        l.line_id,
                        l.state.as_str(),
                        a.expects.as_str()
                    ),
                ));
            }
            if targets.iter().any(|(j, _)| *j == i) {
                return Err(FieldError::new(
                    field,
                    format!("line {} is named twice", l.line_id),
                ));
            }
            if let Some(q) = al.qty
                && q > l.qty
            {
                return Err(FieldError::new(
                    format!("lines[{n}].qty"),
                    format!("picks {q} but {} were ordered", l.qty),
                ));
            }
            targets.push((i, Some(al)));
        }
    }
    let mut moved = Vec::with_capacity(targets.len());
    for (i, al) in targets {
        let l = &mut order.lines[i];
        match a.action {
            ActionKind::Pick => {
                l.picked_qty = al.and_then(|x| x.qty).unwrap_or(l.qty);
                l.substitute = al.and_then(|x| x.substitute.clone());
            }
            ActionKind::Pack => l.packed_qty = l.picked_qty,
            ActionKind::HandOver => l.delivered_qty = l.goods().1,
            ActionKind::Ship => {
                l.delivered_qty = l.goods().1;
                l.invoice = a.invoice.clone();
            }
            ActionKind::Reject => l.reason_code = a.reason_code.clone(),
            _ => {}
        }
        l.state = to;
        l.state_since = a.at.clone();
        moved.push(l.line_id.clone());
    }
    Ok(moved)
}

/// One line of an omni return: how much of a delivered line comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OmniReturnItem {
    #[schema(schema_with = crate::schema::code)]
    pub line_id: String,
    /// What the line delivered (its substitute's code, when it had one).
    #[schema(schema_with = crate::schema::code)]
    pub product_code: String,
    /// Thousandths; never above what the line delivered less earlier returns.
    #[schema(schema_with = crate::schema::qty)]
    pub qty: i64,
    /// Centavos refunded for this line; at most qty × the delivered unit price.
    #[schema(schema_with = crate::schema::money)]
    pub refund: i64,
    /// Back to this store's shelf (stock goes up) or not (damaged).
    pub restock: bool,
}

/// `omni_return` document: goods of an omni order's delivered lines coming
/// back at any store of the chain, with an omni return reason (a
/// `return_reasons` row with `omni: true`, the domain's "Devolução Pedido
/// OMS"). The refund is paid at the counter (`refunds`, Σ = Σ line
/// refunds) or, with no `refunds`, by the channel the order was paid on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OmniReturn {
    #[schema(schema_with = crate::schema::code)]
    pub order_id: String,
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    /// A `return_reasons` code marked `omni`.
    #[schema(schema_with = crate::schema::code)]
    pub reason_code: String,
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    #[schema(min_items = 1, max_items = 990)]
    pub items: Vec<OmniReturnItem>,
    /// How the counter pays the refund back; empty: the channel refunds it.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub refunds: Vec<Payment>,
    #[schema(schema_with = crate::schema::timestamp)]
    pub returned_at: String,
}

impl Validate for OmniReturn {
    fn validate(&self) -> Result<(), FieldError> {
        text("order_id", &self.order_id, CODE_MAX)?;
        text("register", &self.register, CODE_MAX)?;
        text("reason_code", &self.reason_code, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        count("items", self.items.len(), 1, limits::ITEMS_MAX, "items")?;
        let mut refund: i64 = 0;
        let mut lines = std::collections::HashSet::new();
        for (i, item) in self.items.iter().enumerate() {
            let at = |e: FieldError| e.within(format!("items[{i}]"));
            text("line_id", &item.line_id, CODE_MAX).map_err(at)?;
            if !lines.insert(item.line_id.as_str()) {
                return Err(at(FieldError::new(
                    "line_id",
                    format!("line {} appears twice", item.line_id),
                )));
            }
            text("product_code", &item.product_code, CODE_MAX).map_err(at)?;
            int("qty", item.qty, 1, limits::QTY_MAX).map_err(at)?;
            money("refund", item.refund).map_err(at)?;
            refund = refund
                .checked_add(item.refund)
                .ok_or_else(|| FieldError::new("items", "refunds overflow"))?;
        }
        let paid = refunded("refunds", &self.refunds)?;
        if !self.refunds.is_empty() && paid != refund {
            return Err(FieldError::new(
                "refunds",
                format!("Σ refunds = {paid} but the lines refund {refund}"),
            ));
        }
        timestamp("returned_at", &self.returned_at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

/// Counts return `id` (taken at `store`) in `order`'s lines; every store
/// and the central check the same way. Each item's line must be delivered
/// (handed over or shipped: a line not delivered yet is cancelled, not
/// returned), of the product it delivered, with no more coming back than it
/// delivered less the returns counted so far, and a refund of at most its
/// quantity at the delivered unit price. A return counted already (its id
/// on a line) changes nothing. On refusal nothing changed and the error
/// names the field (`items[i].qty`…).
pub fn apply_return(
    order: &mut Order,
    store: &str,
    id: &str,
    r: &OmniReturn,
) -> Result<(), FieldError> {
    if r.order_id != order.id {
        return Err(FieldError::new(
            "order_id",
            format!("is {} but the order is {}", r.order_id, order.id),
        ));
    }
    if order
        .lines
        .iter()
        .any(|l| l.returns.iter().any(|x| x.id == id))
    {
        return Ok(());
    }
    let mut at = Vec::with_capacity(r.items.len());
    for (n, item) in r.items.iter().enumerate() {
        let field = |f: &str| format!("items[{n}].{f}");
        let Some(i) = order.lines.iter().position(|l| l.line_id == item.line_id) else {
            return Err(FieldError::new(
                field("line_id"),
                format!("order {} has no line {}", order.id, item.line_id),
            ));
        };
        let l = &order.lines[i];
        if !matches!(l.state, LineState::HandedOver | LineState::Shipped) {
            return Err(FieldError::new(
                field("line_id"),
                format!(
                    "line {} is {}: only a delivered line comes back",
                    l.line_id,
                    l.state.as_str()
                ),
            ));
        }
        let (goods, _) = l.goods();
        if goods != item.product_code {
            return Err(FieldError::new(
                field("product_code"),
                format!("line {} delivered product {goods}", l.line_id),
            ));
        }
        let left = l.returnable_qty();
        if item.qty > left {
            return Err(FieldError::new(
                field("qty"),
                format!(
                    "returns {} of line {} but {left} are left to return (delivered {}, returned {})",
                    item.qty,
                    l.line_id,
                    l.delivered_qty,
                    l.returned_qty()
                ),
            ));
        }
        let most = line_gross(item.qty, l.goods_unit_price()).unwrap_or(i64::MAX);
        if item.refund > most {
            return Err(FieldError::new(
                field("refund"),
                format!(
                    "refunds {} but {} of line {} are worth {most}",
                    item.refund, item.qty, l.line_id
                ),
            ));
        }
        at.push(i);
    }
    for (item, i) in r.items.iter().zip(at) {
        order.lines[i].returns.push(LineReturn {
            id: id.to_owned(),
            store: store.to_owned(),
            qty: item.qty,
            refund: item.refund,
        });
    }
    Ok(())
}

/// The markdown table of docs/omni.md: each line state, the actions that
/// leave it and where they go, and its domain, Shopify and VTEX statuses
/// (a test holds the committed file to it).
pub fn mapping_table() -> String {
    let actions = [
        ActionKind::Accept,
        ActionKind::Reject,
        ActionKind::StartPicking,
        ActionKind::Pick,
        ActionKind::Pack,
        ActionKind::Ready,
        ActionKind::HandOver,
        ActionKind::Ship,
        ActionKind::PutBack,
    ];
    let mut out = String::from(
        "| line state | store actions → next state | TOTVS (Pedido de Venda Omni) | Shopify fulfillment order | VTEX |\n\
         |---|---|---|---|---|\n",
    );
    for s in LineState::ALL {
        let mut moves: Vec<String> = Vec::new();
        for a in actions {
            let pickup = a.transition(s, Delivery::Pickup);
            let ships = a.transition(s, Delivery::ShipFromStore);
            let to = match (pickup, ships) {
                (Some(p), Some(q)) if p == q => format!("`{}` → {}", a.as_str(), p.as_str()),
                (Some(p), None) => format!("`{}` → {} (pickup)", a.as_str(), p.as_str()),
                (None, Some(q)) => format!("`{}` → {} (ship)", a.as_str(), q.as_str()),
                _ => continue,
            };
            moves.push(to);
        }
        let domain = match (
            s.domain_status(Delivery::Pickup),
            s.domain_status(Delivery::ShipFromStore),
        ) {
            (p, q) if p == q => p.to_owned(),
            (p, q) => format!("{p} (pickup), {q} (ship)"),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | `{}` | `{}` |\n",
            s.as_str(),
            if moves.is_empty() {
                "—".to_owned()
            } else {
                moves.join("; ")
            },
            domain,
            s.shopify_status(),
            s.vtex_status()
        ));
    }
    out
}

/// What the lines an action moved take from the store's stock: what was
/// delivered (handed over without a sale, or shipped), of the substitute
/// when there is one. A pickup redeemed by a sale (`order_id`) takes it
/// through the sale's own items instead.
pub fn stock_effects(
    after: &Order,
    action: ActionKind,
    moved: &[String],
) -> Vec<crate::stock::StockEffect> {
    if !matches!(action, ActionKind::HandOver | ActionKind::Ship) {
        return Vec::new();
    }
    let mut out: Vec<crate::stock::StockEffect> = Vec::new();
    for l in after.lines.iter().filter(|l| moved.contains(&l.line_id)) {
        let (code, qty) = l.goods();
        match out.iter_mut().find(|e| e.product_code == code) {
            Some(crate::stock::StockEffect {
                change: crate::stock::Change::Delta(d),
                ..
            }) => *d = d.saturating_sub(qty),
            _ => out.push(crate::stock::StockEffect {
                product_code: code.to_owned(),
                change: crate::stock::Change::Delta(-qty),
            }),
        }
    }
    out
}

/// A sale redeeming the order (`order_id`) hands over this store's ready
/// lines; answers their ids (none: nothing was ready).
pub fn redeem(order: &mut Order, store: &str, at: &str) -> Vec<String> {
    let mut moved = Vec::new();
    for l in &mut order.lines {
        if l.store.as_deref() == Some(store) && l.state == LineState::Ready {
            l.delivered_qty = l.goods().1;
            l.state = LineState::HandedOver;
            l.state_since = at.to_owned();
            moved.push(l.line_id.clone());
        }
    }
    moved
}

/// What the channel does to a line at the central: cancel it (before picked:
/// cancelled; after: to put back), or assign it to a store (`None`: back to
/// the channel). Answers the new state, or why not.
pub fn cancel_line(line: &mut OrderLine, reason: Option<&str>, at: &str) -> Result<(), String> {
    use LineState as L;
    line.state = match line.state {
        L::Assigned | L::Accepted | L::Picking | L::Rejected => L::Cancelled,
        L::Picked | L::Packed | L::Ready => L::ToPutBack,
        s @ (L::HandedOver | L::Shipped) => {
            return Err(format!(
                "line {} is {}: too late to cancel, it takes a return",
                line.line_id,
                s.as_str()
            ));
        }
        L::ToPutBack | L::Cancelled => return Ok(()),
    };
    line.reason_code = reason.map(str::to_owned);
    line.state_since = at.to_owned();
    Ok(())
}

/// Assigns a line that waits for a store (assigned elsewhere and not yet
/// accepted, or rejected) to `store`, or back to the channel.
pub fn assign_line(line: &mut OrderLine, store: Option<&str>, at: &str) -> Result<(), String> {
    if !matches!(line.state, LineState::Assigned | LineState::Rejected) {
        return Err(format!(
            "line {} is {}: only an assigned or rejected line moves to another store",
            line.line_id,
            line.state.as_str()
        ));
    }
    line.store = store.map(str::to_owned);
    line.state = if store.is_some() {
        LineState::Assigned
    } else {
        LineState::Rejected
    };
    line.reason_code = None;
    line.state_since = at.to_owned();
    Ok(())
}

/// The order as one store sees it: its lines only (`None` when it has none).
pub fn view_for(order: &Order, store: &str) -> Option<Order> {
    let lines: Vec<OrderLine> = order
        .lines
        .iter()
        .filter(|l| l.store.as_deref() == Some(store))
        .cloned()
        .collect();
    if lines.is_empty() {
        return None;
    }
    Some(Order {
        lines,
        ..order.clone()
    })
}

/// The `omni_orders` row of a store's view: the typed order in columns, with
/// its derived status and up to which of the store's documents it reflects.
pub fn to_row(view: &Order, reflects_store_seq: u64, updated_at: &str) -> Value {
    serde_json::json!({
        "id": view.id,
        "number": view.number,
        "channel": view.channel,
        "customer_document": view.customer_document,
        "delivery": view.delivery,
        "paid": view.paid,
        "payments": view.payments,
        "freight": view.freight,
        "created_at": view.created_at,
        "status": status_of(&view.lines).as_str(),
        "lines": view.lines,
        "reflects_store_seq": reflects_store_seq,
        "updated_at": updated_at,
    })
}

/// The typed order of an `omni_orders` row (`lines` and `payments` may come
/// as JSON text, as the replica stores them).
pub fn from_row(row: &serde_json::Map<String, Value>) -> Result<Order, FieldError> {
    let mut clean = serde_json::Map::new();
    for key in [
        "id",
        "number",
        "channel",
        "customer_document",
        "delivery",
        "paid",
        "payments",
        "freight",
        "created_at",
        "lines",
    ] {
        let v = row.get(key).cloned().unwrap_or(Value::Null);
        let v = match (key, v) {
            ("lines" | "payments", Value::String(s)) => {
                serde_json::from_str(&s).map_err(|e| FieldError::new(key, e.to_string()))?
            }
            ("payments", Value::Null) => Value::Array(Vec::new()),
            ("freight", Value::Null) => Value::from(0),
            ("paid", Value::Number(n)) => Value::Bool(n.as_i64() != Some(0)),
            (_, v) => v,
        };
        clean.insert(key.to_owned(), v);
    }
    crate::document::from_json_value(&Value::Object(clean))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(delivery: Delivery) -> Order {
        NewOrder {
            id: "o1".into(),
            number: "1001".into(),
            channel: "site".into(),
            customer_document: None,
            delivery,
            paid: true,
            payments: vec![],
            freight: 0,
            created_at: "2026-11-30T10:00:00Z".into(),
            store: "a".into(),
            lines: vec![
                NewLine {
                    line_id: "1".into(),
                    product_code: "1".into(),
                    qty: 2000,
                    unit_price: 500,
                    total: 1000,
                },
                NewLine {
                    line_id: "2".into(),
                    product_code: "2".into(),
                    qty: 1000,
                    unit_price: 300,
                    total: 300,
                },
            ],
        }
        .into_order()
    }

    fn act(action: ActionKind, expects: LineState) -> OmniAction {
        OmniAction {
            order_id: "o1".into(),
            action,
            expects,
            lines: vec![],
            reason_code: None,
            invoice: None,
            register: "PDV01".into(),
            operator: "001".into(),
            at: "2026-11-30T11:00:00Z".into(),
        }
    }

    #[test]
    fn a_pickup_order_goes_from_assigned_to_handed_over() {
        use ActionKind as A;
        use LineState as L;
        let mut o = order(Delivery::Pickup);
        assert_eq!(status_of(&o.lines), OrderStatus::Open);
        for (a, from, status) in [
            (A::Accept, L::Assigned, OrderStatus::Accepted),
            (A::StartPicking, L::Accepted, OrderStatus::InSeparation),
            (A::Pick, L::Picking, OrderStatus::InSeparation),
            (A::Ready, L::Picked, OrderStatus::ReadyForPickup),
            (A::HandOver, L::Ready, OrderStatus::Concluded),
        ] {
            let moved = apply(&mut o, "a", &act(a, from)).unwrap();
            assert_eq!(moved, vec!["1", "2"], "{a:?}");
            assert_eq!(status_of(&o.lines), status, "{a:?}");
        }
        assert_eq!(o.lines[0].delivered_qty, 2000);
        // A second click: the lines left `ready`, nothing moves twice.
        let err = apply(&mut o, "a", &act(A::HandOver, L::Ready)).unwrap_err();
        assert_eq!(err.field, "expects");
        assert!(err.message.contains("1 handed_over"), "{err}");
    }

    #[test]
    fn ship_from_store_needs_packing_and_an_invoice_and_records_a_cut() {
        use ActionKind as A;
        use LineState as L;
        let mut o = order(Delivery::ShipFromStore);
        apply(&mut o, "a", &act(A::Accept, L::Assigned)).unwrap();
        let mut pick = act(A::Pick, L::Accepted);
        pick.lines = vec![
            ActionLine {
                line_id: "1".into(),
                qty: Some(1000),
                substitute: None,
            },
            ActionLine {
                line_id: "2".into(),
                qty: None,
                substitute: Some(Substitute {
                    product_code: "3".into(),
                    qty: 1000,
                    unit_price: 300,
                }),
            },
        ];
        pick.validate().unwrap();
        apply(&mut o, "a", &pick).unwrap();
        assert!(o.lines.iter().all(OrderLine::changed));
        assert_eq!(
            apply(&mut o, "a", &act(A::Ready, L::Picked))
                .unwrap_err()
                .message,
            "the order is shipped, not picked up"
        );
        apply(&mut o, "a", &act(A::Pack, L::Picked)).unwrap();
        let mut ship = act(A::Ship, L::Packed);
        assert_eq!(ship.validate().unwrap_err().field, "invoice");
        ship.invoice = Some(Invoice {
            number: 10,
            series: 1,
            key: "3".repeat(44),
            value: 800,
        });
        ship.validate().unwrap();
        apply(&mut o, "a", &ship).unwrap();
        assert_eq!(status_of(&o.lines), OrderStatus::Concluded);
        assert_eq!(o.lines[0].goods(), ("1", 1000));
        assert_eq!(o.lines[1].goods(), ("3", 1000));
    }

    #[test]
    fn a_stale_action_names_the_line_and_its_real_state() {
        use ActionKind as A;
        use LineState as L;
        let mut o = order(Delivery::Pickup);
        apply(&mut o, "a", &act(A::Accept, L::Assigned)).unwrap();
        // The channel cancels line 2 before it is picked, line 1 after.
        cancel_line(&mut o.lines[1], Some("customer"), "2026-11-30T11:30:00Z").unwrap();
        let mut pick = act(A::Pick, L::Accepted);
        pick.lines = vec![ActionLine {
            line_id: "2".into(),
            qty: None,
            substitute: None,
        }];
        let err = apply(&mut o, "a", &pick).unwrap_err();
        assert_eq!(err.field, "lines[0].line_id");
        assert_eq!(err.message, "line 2 is cancelled, not accepted");
        apply(&mut o, "a", &act(A::Pick, L::Accepted)).unwrap();
        cancel_line(&mut o.lines[0], None, "2026-11-30T12:00:00Z").unwrap();
        assert_eq!(o.lines[0].state, L::ToPutBack);
        assert_eq!(status_of(&o.lines), OrderStatus::PutBackPending);
        apply(&mut o, "a", &act(A::PutBack, L::ToPutBack)).unwrap();
        assert_eq!(status_of(&o.lines), OrderStatus::Cancelled);
        // Another store's action on these lines is refused.
        let err = apply(&mut o, "b", &act(A::Accept, L::Assigned)).unwrap_err();
        assert!(err.message.contains("at this store (lines: none)"), "{err}");
    }

    #[test]
    fn a_rejected_line_is_reassigned_and_the_view_follows_the_store() {
        use ActionKind as A;
        use LineState as L;
        let mut o = order(Delivery::Pickup);
        let mut reject = act(A::Reject, L::Assigned);
        assert_eq!(reject.validate().unwrap_err().field, "reason_code");
        reject.reason_code = Some("SEM_ESTOQUE".into());
        apply(&mut o, "a", &reject).unwrap();
        assert_eq!(status_of(&o.lines), OrderStatus::Open);
        for l in &mut o.lines {
            assign_line(l, Some("b"), "2026-11-30T12:00:00Z").unwrap();
        }
        assert!(view_for(&o, "a").is_none());
        let b = view_for(&o, "b").unwrap();
        assert_eq!(b.lines.len(), 2);
        let row = to_row(&b, 7, "2026-11-30T12:00:00Z");
        assert_eq!(row["status"], "open");
        let back = from_row(row.as_object().unwrap()).unwrap();
        assert_eq!(back, b);
        // Picked lines do not move.
        apply(&mut o, "b", &act(A::Accept, L::Assigned)).unwrap();
        apply(&mut o, "b", &act(A::Pick, L::Accepted)).unwrap();
        assert!(assign_line(&mut o.lines[0], Some("a"), "2026-11-30T12:00:00Z").is_err());
        assert!(cancel_line(&mut o.lines[0], None, "x").is_ok());
    }

    fn give_back(line: &str, product: &str, qty: i64, refund: i64) -> OmniReturn {
        OmniReturn {
            order_id: "o1".into(),
            register: "PDV01".into(),
            reason_code: "03".into(),
            operator: "001".into(),
            items: vec![OmniReturnItem {
                line_id: line.into(),
                product_code: product.into(),
                qty,
                refund,
                restock: true,
            }],
            refunds: vec![],
            returned_at: "2026-12-01T10:00:00Z".into(),
        }
    }

    #[test]
    fn a_delivered_line_comes_back_once_at_any_store_and_never_more_than_delivered() {
        use ActionKind as A;
        use LineState as L;
        let mut o = order(Delivery::ShipFromStore);
        apply(&mut o, "a", &act(A::Accept, L::Assigned)).unwrap();
        // Line 2 is cut to 500 and shipped; line 1 is not delivered yet.
        let mut pick = act(A::Pick, L::Accepted);
        pick.lines = vec![ActionLine {
            line_id: "2".into(),
            qty: Some(500),
            substitute: None,
        }];
        apply(&mut o, "a", &pick).unwrap();
        let err = apply_return(&mut o, "b", "r0", &give_back("1", "1", 1000, 500)).unwrap_err();
        assert_eq!(err.field, "items[0].line_id");
        assert_eq!(
            err.message,
            "line 1 is accepted: only a delivered line comes back"
        );
        apply(&mut o, "a", &act(A::Pack, L::Picked)).unwrap();
        let mut ship = act(A::Ship, L::Packed);
        ship.invoice = Some(Invoice {
            number: 1,
            series: 1,
            key: "3".repeat(44),
            value: 150,
        });
        apply(&mut o, "a", &ship).unwrap();
        assert_eq!(o.lines[1].returnable_qty(), 500);
        // Wrong product, too much, too dear: refused, nothing counted.
        for (r, field) in [
            (give_back("2", "9", 100, 30), "items[0].product_code"),
            (give_back("2", "2", 600, 30), "items[0].qty"),
            (give_back("2", "2", 100, 31), "items[0].refund"),
            (give_back("7", "2", 100, 30), "items[0].line_id"),
        ] {
            let err = apply_return(&mut o, "b", "r1", &r).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        assert_eq!(o.lines[1].returned_qty(), 0);
        // Store b takes 300 back; the same document again counts once.
        let r = give_back("2", "2", 300, 90);
        r.validate().unwrap();
        apply_return(&mut o, "b", "r1", &r).unwrap();
        apply_return(&mut o, "b", "r1", &r).unwrap();
        assert_eq!(o.lines[1].returned_qty(), 300);
        assert_eq!(o.lines[1].returns[0].store, "b");
        let err = apply_return(&mut o, "c", "r2", &give_back("2", "2", 201, 0)).unwrap_err();
        assert_eq!(
            err.message,
            "returns 201 of line 2 but 200 are left to return (delivered 500, returned 300)"
        );
        apply_return(&mut o, "c", "r2", &give_back("2", "2", 200, 60)).unwrap();
        assert_eq!(o.lines[1].returnable_qty(), 0);
        // The row round-trips with its returns.
        let row = to_row(&o, 1, "2026-12-01T10:00:00Z");
        assert_eq!(from_row(row.as_object().unwrap()).unwrap(), o);
    }

    #[test]
    fn an_omni_return_refunds_at_the_counter_or_through_the_channel() {
        let mut r = give_back("1", "1", 1000, 500);
        r.validate().unwrap();
        r.refunds = vec![Payment {
            method: "CASH".into(),
            amount: 400,
            authorization: None,
        }];
        assert_eq!(r.validate().unwrap_err().field, "refunds");
        r.refunds[0].amount = 500;
        r.validate().unwrap();
        r.items.push(r.items[0].clone());
        assert_eq!(r.validate().unwrap_err().field, "items[1].line_id");
    }

    #[test]
    fn docs_omni_md_carries_the_mapping_table() {
        let doc = include_str!("../../../docs/omni.md");
        assert!(
            doc.contains(&mapping_table()),
            "docs/omni.md is stale: paste the table `loja_protocol::omni::mapping_table()` prints:\n{}",
            mapping_table()
        );
    }

    #[test]
    fn every_line_state_maps_to_the_domain_shopify_and_vtex() {
        for s in LineState::ALL {
            assert!(!s.domain_status(Delivery::Pickup).is_empty());
            assert!(!s.shopify_status().is_empty());
            assert!(!s.vtex_status().is_empty());
        }
    }
}
