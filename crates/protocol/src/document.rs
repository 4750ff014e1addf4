//! Store documents (store → central): their kinds, typed bodies, the
//! envelope that carries them, and the acknowledgement the central returns.
//!
//! Every body is validated here, once, for the POS API, the outbox and the
//! central alike: integer centavos and thousandths, totals that add up,
//! check digits. Rules that need state (a cash close must match an open
//! session) live in the outbox.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::check;
use crate::error::FieldError;
use crate::limits::{self, CODE_MAX, MONEY_MAX, OMNI_STATUSES, TEXT_MAX};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    CashOpen,
    CashMovement,
    CashClose,
    Customer,
    Sale,
    SalePayment,
    SaleXml,
    ReducaoZ,
    OmniOrderStatus,
    SaleCancellation,
    Return,
    ReturnCancellation,
    StockMovement,
    InventoryCount,
    OmniAction,
    OmniReturn,
}

impl DocumentKind {
    pub const ALL: [DocumentKind; 16] = [
        DocumentKind::CashOpen,
        DocumentKind::CashMovement,
        DocumentKind::CashClose,
        DocumentKind::Customer,
        DocumentKind::Sale,
        DocumentKind::SalePayment,
        DocumentKind::SaleXml,
        DocumentKind::ReducaoZ,
        DocumentKind::OmniOrderStatus,
        DocumentKind::SaleCancellation,
        DocumentKind::Return,
        DocumentKind::ReturnCancellation,
        DocumentKind::StockMovement,
        DocumentKind::InventoryCount,
        DocumentKind::OmniAction,
        DocumentKind::OmniReturn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::CashOpen => "cash_open",
            DocumentKind::CashMovement => "cash_movement",
            DocumentKind::CashClose => "cash_close",
            DocumentKind::Customer => "customer",
            DocumentKind::Sale => "sale",
            DocumentKind::SalePayment => "sale_payment",
            DocumentKind::SaleXml => "sale_xml",
            DocumentKind::ReducaoZ => "reducao_z",
            DocumentKind::OmniOrderStatus => "omni_order_status",
            DocumentKind::SaleCancellation => "sale_cancellation",
            DocumentKind::Return => "return",
            DocumentKind::ReturnCancellation => "return_cancellation",
            DocumentKind::StockMovement => "stock_movement",
            DocumentKind::InventoryCount => "inventory_count",
            DocumentKind::OmniAction => "omni_action",
            DocumentKind::OmniReturn => "omni_return",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Deserializes a `T` from a JSON value; an error names the field by its path
/// in the document (`items[1].qty`), as the POS developer reads it.
pub fn from_json_value<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(v).map_err(|e| field_at(e.path(), e.inner()))
}

/// JSON bytes that did not become a `T`.
#[derive(Debug)]
pub enum JsonBodyError {
    /// Not JSON at all (syntax, truncated): serde_json's message.
    Malformed(String),
    /// JSON whose value does not fit, naming the field by its path.
    Invalid(FieldError),
}

/// [`from_json_value`] from bytes.
pub fn from_json_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonBodyError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_data() {
            JsonBodyError::Invalid(field_at(e.path(), e.inner()))
        } else {
            JsonBodyError::Malformed(e.inner().to_string())
        }
    })?;
    de.end()
        .map_err(|e| JsonBodyError::Malformed(e.to_string()))?;
    Ok(value)
}

/// The field a deserialization error at `path` is about: the path itself
/// for a wrong type or value; the path plus the name serde's message gives
/// for a missing or unknown field (the path stops at the object holding it).
fn field_at(path: &serde_path_to_error::Path, e: &serde_json::Error) -> FieldError {
    let message = e.to_string();
    let named = json_field_error(&message);
    let at = path.to_string();
    let field = match (at.as_str(), named.field.as_str()) {
        (".", _) => named.field,
        (at, "body") => at.to_owned(),
        (at, name) if at == name || at.ends_with(&format!(".{name}")) => at.to_owned(),
        (at, name) => format!("{at}.{name}"),
    };
    FieldError::new(field, message)
}

/// Turns serde's message (`unknown field `x`, expected …`, `missing field `y``,
/// `invalid type … at line …`) into an error that names the field.
pub fn json_field_error(msg: &str) -> FieldError {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|p| msg.split(p).nth(1).and_then(|rest| rest.split('`').next()));
    FieldError::new(named.unwrap_or("body"), msg.to_owned())
}

/// A document as it travels store → central.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Chosen by the POS; the same id is the same document everywhere.
    pub id: Uuid,
    pub kind: DocumentKind,
    /// Cash register (POS terminal) the document belongs to.
    pub register: String,
    /// Position in the store's outbox; increases per store.
    pub store_seq: u64,
    /// When the store accepted it (RFC 3339, UTC).
    pub accepted_at: String,
    pub body: Value,
    /// Sent again on purpose (`lojad tickets reprocess` of a delivered
    /// document): the central offers it to the ERP again instead of
    /// answering it as a mere duplicate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reoffer: bool,
    /// What the store computed from its own documents when it took this one
    /// (`reconcile::Reconciliation`: a cash close's expected amounts and
    /// differences, a Redução Z against the day's sales), as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<Value>,
    /// The document this one corrects (`lojad documents replace`): one the
    /// central or the ERP refused, of the same kind and store. The central
    /// undoes what the replaced one did to the stock and the ERP reads the
    /// link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Uuid>,
}

/// `POST /v1/stores/{store}/documents` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentBatch {
    pub documents: Vec<Document>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    Accepted,
    /// Already held: delivered before. Counts as delivered.
    Duplicate,
    /// Refused for good (invalid); retrying the same bytes will not help.
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentAck {
    pub id: Uuid,
    pub status: AckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The central's answer to a batch: one ack per document id, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchAck {
    pub acks: Vec<DocumentAck>,
}

/// A body's own checks, beyond its types.
pub trait Validate {
    fn validate(&self) -> Result<(), FieldError>;
    fn register(&self) -> &str;
}

/// `a - b + c` without overflow: values are bounded by what fits in i64
/// centavos, and a body that overflows is invalid, never a panic.
fn net(field: &str, a: i64, b: i64, c: i64) -> Result<i64, FieldError> {
    a.checked_sub(b)
        .and_then(|x| x.checked_add(c))
        .ok_or_else(|| FieldError::new(field, "amounts out of range"))
}

/// An integer within `min..=max` (the bounds of `limits.rs`).
pub(crate) fn int(field: &str, v: i64, min: i64, max: i64) -> Result<(), FieldError> {
    if v < min {
        let message = match min {
            0 => "must not be negative".to_owned(),
            1 => "must be greater than zero".to_owned(),
            _ => format!("must be at least {min}"),
        };
        return Err(FieldError::new(field, message));
    }
    if v > max {
        return Err(FieldError::new(field, format!("must be at most {max}")));
    }
    Ok(())
}
/// Centavos: 0 to [`MONEY_MAX`].
pub(crate) fn money(field: &str, v: i64) -> Result<(), FieldError> {
    int(field, v, 0, MONEY_MAX)
}
/// A list of `min..=max` entries.
pub(crate) fn count(
    field: &str,
    n: usize,
    min: usize,
    max: usize,
    what: &str,
) -> Result<(), FieldError> {
    if n < min {
        return Err(FieldError::new(
            field,
            format!("needs at least {min} {what}"),
        ));
    }
    if n > max {
        return Err(FieldError::new(field, format!("at most {max} {what}")));
    }
    Ok(())
}
/// At most `max` characters (as JSON Schema's `maxLength` counts them).
pub(crate) fn max_len(field: &str, v: &str, max: usize) -> Result<(), FieldError> {
    // Bytes bound characters from above: the count only for long strings.
    if v.len() > max && limits::char_len(v) > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}
/// Required text: not blank, at most `max` characters.
pub(crate) fn text(field: &str, v: &str, max: usize) -> Result<(), FieldError> {
    max_len(field, v, max)?;
    if limits::is_blank(v) {
        return Err(FieldError::new(field, "must not be empty"));
    }
    Ok(())
}
/// Optional text: at most `max` characters when given (may be empty).
pub(crate) fn opt_text(field: &str, v: &Option<String>, max: usize) -> Result<(), FieldError> {
    match v {
        Some(v) => max_len(field, v, max),
        None => Ok(()),
    }
}
pub(crate) fn timestamp(field: &str, v: &str) -> Result<(), FieldError> {
    if crate::time::parse_utc(v).is_some() {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "must be an RFC 3339 timestamp in UTC (ending in Z), e.g. 2026-11-26T12:00:00Z",
        ))
    }
}
fn date(field: &str, v: &str) -> Result<(), FieldError> {
    if crate::time::is_date(v) {
        Ok(())
    } else {
        Err(FieldError::new(field, "must be a YYYY-MM-DD date"))
    }
}
pub(crate) fn document(field: &str, v: &str) -> Result<(), FieldError> {
    check::cpf_or_cnpj(v).map_err(|e| FieldError::new(field, e.to_string()))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashOpen {
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    /// Employee code of the operator.
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    /// Float in the drawer, centavos.
    #[schema(schema_with = crate::schema::money)]
    pub opening_amount: i64,
    #[schema(schema_with = crate::schema::timestamp)]
    pub opened_at: String,
}

impl Validate for CashOpen {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        money("opening_amount", self.opening_amount)?;
        timestamp("opened_at", &self.opened_at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CashMovementKind {
    /// Suprimento: cash put into the drawer.
    Supply,
    /// Sangria: cash taken out of the drawer.
    Withdrawal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashMovement {
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    /// Id of the cash_open document of the session.
    pub session_id: Uuid,
    pub kind: CashMovementKind,
    #[schema(schema_with = crate::schema::positive_money)]
    pub amount: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_text)]
    pub reason: Option<String>,
    #[schema(schema_with = crate::schema::timestamp)]
    pub at: String,
}

impl Validate for CashMovement {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        int("amount", self.amount, 1, MONEY_MAX)?;
        opt_text("reason", &self.reason, TEXT_MAX)?;
        timestamp("at", &self.at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MethodTotal {
    #[schema(schema_with = crate::schema::code)]
    pub method: String,
    #[schema(schema_with = crate::schema::money)]
    pub amount: i64,
}

impl MethodTotal {
    fn validate(&self) -> Result<(), FieldError> {
        text("method", &self.method, CODE_MAX)?;
        money("amount", self.amount)
    }
}

/// Per-method totals (cash close, Redução Z): each named by its index.
fn method_totals(totals: &[MethodTotal]) -> Result<(), FieldError> {
    count("totals", totals.len(), 0, limits::TOTALS_MAX, "totals")?;
    for (i, t) in totals.iter().enumerate() {
        t.validate().map_err(|e| e.within(format!("totals[{i}]")))?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashClose {
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    /// Id of the cash_open document this closes.
    pub session_id: Uuid,
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    /// Cash counted in the drawer, centavos.
    #[schema(schema_with = crate::schema::money)]
    pub counted_amount: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::totals)]
    pub totals: Vec<MethodTotal>,
    #[schema(schema_with = crate::schema::timestamp)]
    pub closed_at: String,
}

impl Validate for CashClose {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        money("counted_amount", self.counted_amount)?;
        method_totals(&self.totals)?;
        timestamp("closed_at", &self.closed_at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerSignup {
    /// CPF or CNPJ, digits only.
    #[schema(schema_with = crate::schema::cpf_or_cnpj)]
    pub document: String,
    #[schema(schema_with = crate::schema::name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_email)]
    pub email: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_phone)]
    pub phone: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_date)]
    pub birth_date: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_uf)]
    pub uf: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_ibge)]
    pub city_ibge_code: Option<i64>,
    pub lgpd_consent: bool,
    /// Version of the LGPD letter the customer agreed to.
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_version)]
    pub lgpd_letter_version: Option<i64>,
    /// The register that took the sign-up.
    #[serde(default)]
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
}

impl Validate for CustomerSignup {
    fn validate(&self) -> Result<(), FieldError> {
        document("document", &self.document)?;
        text("name", &self.name, TEXT_MAX)?;
        if let Some(email) = &self.email {
            max_len("email", email, limits::EMAIL_MAX)?;
            if !email.contains('@') {
                return Err(FieldError::new("email", "must be an e-mail address"));
            }
        }
        opt_text("phone", &self.phone, limits::PHONE_MAX)?;
        if let Some(d) = &self.birth_date {
            date("birth_date", d)?;
        }
        if let Some(uf) = &self.uf {
            check::uf(uf).map_err(|e| FieldError::new("uf", e.to_string()))?;
        }
        if let Some(c) = self.city_ibge_code {
            int("city_ibge_code", c, limits::IBGE_MIN, limits::IBGE_MAX)?;
        }
        if let Some(v) = self.lgpd_letter_version {
            int("lgpd_letter_version", v, 1, limits::VERSION_MAX)?;
        }
        text("register", &self.register, CODE_MAX)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleItem {
    #[schema(schema_with = crate::schema::code)]
    pub product_code: String,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_gtin)]
    pub barcode: Option<String>,
    /// Thousandths of the unit.
    #[schema(schema_with = crate::schema::qty)]
    pub qty: i64,
    /// Centavos per unit.
    #[schema(schema_with = crate::schema::money)]
    pub unit_price: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::money)]
    pub discount: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::money)]
    pub addition: i64,
    /// round(qty × unit_price / 1000) − discount + addition, centavos.
    #[schema(schema_with = crate::schema::money)]
    pub total: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_text)]
    pub discount_reason: Option<String>,
}

/// Gross value of an item line: qty (thousandths) × unit price, rounded half
/// up to the centavo (the NFC-e rounding rule).
pub fn line_gross(qty: i64, unit_price: i64) -> Option<i64> {
    let p = i128::from(qty).checked_mul(i128::from(unit_price))?;
    i64::try_from((p + 500).div_euclid(1000)).ok()
}

impl SaleItem {
    fn validate(&self) -> Result<(), FieldError> {
        text("product_code", &self.product_code, CODE_MAX)?;
        if let Some(b) = &self.barcode {
            check::gtin(b).map_err(|e| FieldError::new("barcode", e.to_string()))?;
        }
        int("qty", self.qty, 1, limits::QTY_MAX)?;
        money("unit_price", self.unit_price)?;
        money("discount", self.discount)?;
        money("addition", self.addition)?;
        opt_text("discount_reason", &self.discount_reason, TEXT_MAX)?;
        let gross = line_gross(self.qty, self.unit_price)
            .ok_or_else(|| FieldError::new("qty", "too large"))?;
        if self.discount > gross {
            return Err(FieldError::new(
                "discount",
                format!(
                    "{} exceeds the line's amount round(qty × unit_price / 1000) = {gross}",
                    self.discount
                ),
            ));
        }
        money("total", self.total)?;
        let expected = net("total", gross, self.discount, self.addition)?;
        if self.total != expected {
            return Err(FieldError::new(
                "total",
                format!(
                    "is {} but qty × unit_price − discount + addition = {expected}",
                    self.total
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// Payment method code.
    #[schema(schema_with = crate::schema::code)]
    pub method: String,
    #[schema(schema_with = crate::schema::positive_money)]
    pub amount: i64,
    /// Card authorization / PIX end-to-end id, when any.
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_authorization)]
    pub authorization: Option<String>,
}

impl Payment {
    pub(crate) fn validate(&self) -> Result<(), FieldError> {
        text("method", &self.method, CODE_MAX)?;
        int("amount", self.amount, 1, MONEY_MAX)?;
        opt_text(
            "authorization",
            &self.authorization,
            limits::AUTHORIZATION_MAX,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sale {
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    /// Id of the cash_open document of the session the sale belongs to.
    pub session_id: Uuid,
    /// Fiscal number (NFC-e number / COO).
    #[schema(schema_with = crate::schema::number)]
    pub number: i64,
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_cpf_or_cnpj)]
    pub customer_document: Option<String>,
    #[schema(schema_with = crate::schema::items)]
    pub items: Vec<SaleItem>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::money)]
    pub discount: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::money)]
    pub addition: i64,
    /// Σ item totals − discount + addition, centavos.
    #[schema(schema_with = crate::schema::money)]
    pub total: i64,
    #[schema(schema_with = crate::schema::payments)]
    pub payments: Vec<Payment>,
    /// Change given back, centavos: Σ payments − change = total.
    #[serde(default)]
    #[schema(schema_with = crate::schema::money)]
    pub change: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_code)]
    pub modality: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_code)]
    pub channel: Option<String>,
    /// The signed NFC-e/SAT XML, when the POS has it already (kept byte-for-byte).
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_xml)]
    pub xml: Option<String>,
    #[schema(schema_with = crate::schema::timestamp)]
    pub sold_at: String,
    /// The omni order this sale redeems (a pickup claimed by this register):
    /// its ready lines are handed over by the sale.
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_code)]
    pub order_id: Option<String>,
}

impl Validate for Sale {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        int("number", self.number, 1, limits::NUMBER_MAX)?;
        if let Some(d) = &self.customer_document {
            document("customer_document", d)?;
        }
        count("items", self.items.len(), 1, limits::ITEMS_MAX, "items")?;
        let mut sum: i64 = 0;
        for (i, item) in self.items.iter().enumerate() {
            item.validate()
                .map_err(|e| e.within(format!("items[{i}]")))?;
            sum = sum
                .checked_add(item.total)
                .ok_or_else(|| FieldError::new("items", "totals overflow"))?;
        }
        money("discount", self.discount)?;
        if self.discount > sum {
            return Err(FieldError::new(
                "discount",
                format!("{} exceeds Σ item totals = {sum}", self.discount),
            ));
        }
        money("addition", self.addition)?;
        money("total", self.total)?;
        let expected = net("total", sum, self.discount, self.addition)?;
        if self.total != expected {
            return Err(FieldError::new(
                "total",
                format!(
                    "is {} but Σ items − discount + addition = {expected}",
                    self.total
                ),
            ));
        }
        count(
            "payments",
            self.payments.len(),
            1,
            limits::PAYMENTS_MAX,
            "payments",
        )?;
        let mut paid: i64 = 0;
        for (i, p) in self.payments.iter().enumerate() {
            p.validate()
                .map_err(|e| e.within(format!("payments[{i}]")))?;
            paid = paid
                .checked_add(p.amount)
                .ok_or_else(|| FieldError::new("payments", "amounts overflow"))?;
        }
        money("change", self.change)?;
        if self.change > paid {
            return Err(FieldError::new(
                "change",
                format!("{} exceeds Σ payments = {paid}", self.change),
            ));
        }
        if paid - self.change != self.total {
            return Err(FieldError::new(
                "payments",
                format!(
                    "Σ payments − change = {} but the sale total is {}",
                    paid - self.change,
                    self.total
                ),
            ));
        }
        opt_text("modality", &self.modality, CODE_MAX)?;
        opt_text("channel", &self.channel, CODE_MAX)?;
        if let Some(o) = &self.order_id {
            text("order_id", o, CODE_MAX)?;
        }
        if let Some(xml) = &self.xml {
            text("xml", xml, limits::XML_MAX)?;
        }
        timestamp("sold_at", &self.sold_at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SalePayment {
    pub sale_id: Uuid,
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    pub payment: Payment,
    #[schema(schema_with = crate::schema::timestamp)]
    pub at: String,
}

impl Validate for SalePayment {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        self.payment.validate().map_err(|e| e.within("payment"))?;
        timestamp("at", &self.at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleXml {
    pub sale_id: Uuid,
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    /// The 44-digit NFC-e/SAT access key.
    #[schema(schema_with = crate::schema::access_key)]
    pub access_key: String,
    /// The XML exactly as signed, byte-for-byte.
    #[schema(schema_with = crate::schema::xml)]
    pub xml: String,
}

impl Validate for SaleXml {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        if self.access_key.len() != 44 || !self.access_key.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("access_key", "must be 44 digits"));
        }
        max_len("xml", &self.xml, limits::XML_MAX)?;
        // XML's own white space (not Unicode's): the schema's pattern says the same.
        if !self
            .xml
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .starts_with('<')
        {
            return Err(FieldError::new("xml", "must be an XML document"));
        }
        Ok(())
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReducaoZ {
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    /// Fiscal day, YYYY-MM-DD.
    #[schema(schema_with = crate::schema::date)]
    pub date: String,
    /// Contador de Redução Z.
    #[schema(schema_with = crate::schema::crz)]
    pub crz: i64,
    #[schema(schema_with = crate::schema::number)]
    pub coo_start: i64,
    #[schema(schema_with = crate::schema::number)]
    pub coo_end: i64,
    #[schema(schema_with = crate::schema::money)]
    pub gross_total: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::money)]
    pub cancellations: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::money)]
    pub discounts: i64,
    #[schema(schema_with = crate::schema::money)]
    pub net_total: i64,
    #[serde(default)]
    #[schema(schema_with = crate::schema::totals)]
    pub totals: Vec<MethodTotal>,
}

impl Validate for ReducaoZ {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        date("date", &self.date)?;
        int("crz", self.crz, 1, limits::CRZ_MAX)?;
        int("coo_start", self.coo_start, 1, limits::NUMBER_MAX)?;
        int("coo_end", self.coo_end, 1, limits::NUMBER_MAX)?;
        if self.coo_end < self.coo_start {
            return Err(FieldError::new("coo_end", "must not be below coo_start"));
        }
        money("gross_total", self.gross_total)?;
        money("cancellations", self.cancellations)?;
        money("discounts", self.discounts)?;
        money("net_total", self.net_total)?;
        let expected = net("net_total", self.gross_total, self.cancellations, 0)
            .and_then(|x| net("net_total", x, self.discounts, 0))?;
        if self.net_total != expected {
            return Err(FieldError::new(
                "net_total",
                format!(
                    "is {} but gross − cancellations − discounts = {expected}",
                    self.net_total
                ),
            ));
        }
        method_totals(&self.totals)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OmniOrderStatus {
    #[schema(schema_with = crate::schema::code)]
    pub order_id: String,
    /// `picking`, `ready`, `delivered`, `cancelled`.
    #[schema(schema_with = crate::schema::omni_status)]
    pub status: String,
    #[schema(schema_with = crate::schema::timestamp)]
    pub at: String,
    #[serde(default)]
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
}

impl Validate for OmniOrderStatus {
    fn validate(&self) -> Result<(), FieldError> {
        text("order_id", &self.order_id, CODE_MAX)?;
        if !OMNI_STATUSES.contains(&self.status.as_str()) {
            return Err(FieldError::new(
                "status",
                "must be picking, ready, delivered or cancelled",
            ));
        }
        timestamp("at", &self.at)?;
        text("register", &self.register, CODE_MAX)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

// --- A sale's life after it is sold: cancellation, returns, stock. ---

/// `sale_cancellation`: a sale of this store cancelled (the NFC-e
/// cancellation event, when the POS has it, kept byte for byte).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleCancellation {
    pub sale_id: Uuid,
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    /// Cancellation reason code.
    #[schema(schema_with = crate::schema::code)]
    pub reason_code: String,
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    /// The signed cancellation event XML, when the POS has it.
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_xml)]
    pub xml: Option<String>,
    #[schema(schema_with = crate::schema::timestamp)]
    pub cancelled_at: String,
}

impl Validate for SaleCancellation {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        text("reason_code", &self.reason_code, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        if let Some(xml) = &self.xml {
            text("xml", xml, limits::XML_MAX)?;
        }
        timestamp("cancelled_at", &self.cancelled_at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

/// One line of a return: how much of a product comes back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnItem {
    #[schema(schema_with = crate::schema::code)]
    pub product_code: String,
    /// Thousandths; never above what was sold less earlier returns.
    #[schema(schema_with = crate::schema::qty)]
    pub qty: i64,
    /// Centavos refunded for this line.
    #[schema(schema_with = crate::schema::money)]
    pub refund: i64,
    /// Back to the shelf (stock goes up) or not (damaged).
    pub restock: bool,
}

/// `return` (devolução / troca): products of a sale of this store coming
/// back, with a reason from the `return_reasons` entity and the refund's
/// tenders. An exchange is a return whose refund pays a new sale
/// (`exchange: true`; the new sale is a document of its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Return {
    pub sale_id: Uuid,
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    /// A `return_reasons` code (the domain's MotivoTD).
    #[schema(schema_with = crate::schema::code)]
    pub reason_code: String,
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    #[schema(min_items = 1, max_items = 990)]
    pub items: Vec<ReturnItem>,
    /// How the refund is paid (Σ amounts = Σ line refunds); empty for an
    /// exchange, whose refund pays the new sale.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub refunds: Vec<Payment>,
    #[serde(default)]
    pub exchange: bool,
    #[schema(schema_with = crate::schema::timestamp)]
    pub returned_at: String,
}

impl Validate for Return {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        text("reason_code", &self.reason_code, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        count("items", self.items.len(), 1, limits::ITEMS_MAX, "items")?;
        let mut refund: i64 = 0;
        for (i, item) in self.items.iter().enumerate() {
            let at = |e: FieldError| e.within(format!("items[{i}]"));
            text("product_code", &item.product_code, CODE_MAX).map_err(at)?;
            int("qty", item.qty, 1, limits::QTY_MAX).map_err(at)?;
            money("refund", item.refund).map_err(at)?;
            refund = refund
                .checked_add(item.refund)
                .ok_or_else(|| FieldError::new("items", "refunds overflow"))?;
        }
        let paid = refunded("refunds", &self.refunds)?;
        if !self.exchange && paid != refund {
            return Err(FieldError::new(
                "refunds",
                format!("Σ refunds = {paid} but the lines refund {refund}"),
            ));
        }
        if self.exchange && !self.refunds.is_empty() {
            return Err(FieldError::new(
                "refunds",
                "an exchange pays its refund into the new sale: no refunds",
            ));
        }
        timestamp("returned_at", &self.returned_at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

/// The tenders of a refund (`field`: at most `PAYMENTS_MAX`, each valid),
/// and their sum.
pub(crate) fn refunded(field: &str, refunds: &[Payment]) -> Result<i64, FieldError> {
    count(field, refunds.len(), 0, limits::PAYMENTS_MAX, field)?;
    let mut paid: i64 = 0;
    for (i, p) in refunds.iter().enumerate() {
        p.validate()
            .map_err(|e| e.within(format!("{field}[{i}]")))?;
        paid = paid
            .checked_add(p.amount)
            .ok_or_else(|| FieldError::new(field, "amounts overflow"))?;
    }
    Ok(paid)
}

/// `return_cancellation`: a return undone (the products leave again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnCancellation {
    /// Id of the `return` document.
    pub return_id: Uuid,
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    #[schema(schema_with = crate::schema::code)]
    pub reason_code: String,
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    #[schema(schema_with = crate::schema::timestamp)]
    pub cancelled_at: String,
}

impl Validate for ReturnCancellation {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        text("reason_code", &self.reason_code, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        timestamp("cancelled_at", &self.cancelled_at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

/// What a stock movement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Goods received from a supplier (with its NF-e key): stock up.
    Receipt,
    /// Sent to another store: stock down at once.
    TransferOut,
    /// What arrived of a transfer, confirmed by the receiving store: stock up.
    TransferIn,
    /// A correction with a reason: `qty` signed (negative: stock down).
    Adjustment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MovementItem {
    #[schema(schema_with = crate::schema::code)]
    pub product_code: String,
    /// Thousandths: positive, except an adjustment's, which is signed.
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    pub qty: i64,
}

/// `stock_movement`: goods in, out, between stores, or corrected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockMovement {
    pub movement: MovementKind,
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    #[schema(min_items = 1, max_items = 990)]
    pub items: Vec<MovementItem>,
    /// Receipt: the supplier's NF-e access key (44 digits).
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_access_key)]
    pub nfe_key: Option<String>,
    /// Transfer out: the receiving store's id.
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_code)]
    pub to_store: Option<String>,
    /// Transfer in: the sending store's id and its transfer-out document.
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_code)]
    pub from_store: Option<String>,
    #[serde(default)]
    pub transfer_id: Option<Uuid>,
    /// Adjustment: why (a reason code).
    #[serde(default)]
    #[schema(schema_with = crate::schema::opt_code)]
    pub reason_code: Option<String>,
    #[schema(schema_with = crate::schema::timestamp)]
    pub moved_at: String,
}

impl Validate for StockMovement {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        count("items", self.items.len(), 1, limits::ITEMS_MAX, "items")?;
        for (i, item) in self.items.iter().enumerate() {
            let at = |e: FieldError| e.within(format!("items[{i}]"));
            text("product_code", &item.product_code, CODE_MAX).map_err(at)?;
            match self.movement {
                MovementKind::Adjustment => {
                    int("qty", item.qty, -limits::QTY_MAX, limits::QTY_MAX).map_err(at)?;
                    if item.qty == 0 {
                        return Err(at(FieldError::new("qty", "must not be zero")));
                    }
                }
                _ => int("qty", item.qty, 1, limits::QTY_MAX).map_err(at)?,
            }
        }
        let need = |field: &str, present: bool, what: &str| {
            if present {
                Ok(())
            } else {
                Err(FieldError::new(field, format!("is required for {what}")))
            }
        };
        let refuse = |field: &str, present: bool| {
            if present {
                Err(FieldError::new(
                    field,
                    format!("does not belong to a {:?} movement", self.movement),
                ))
            } else {
                Ok(())
            }
        };
        match self.movement {
            MovementKind::Receipt => {
                need("nfe_key", self.nfe_key.is_some(), "a receipt")?;
                refuse("to_store", self.to_store.is_some())?;
                refuse("from_store", self.from_store.is_some())?;
            }
            MovementKind::TransferOut => {
                need("to_store", self.to_store.is_some(), "a transfer out")?;
                refuse("from_store", self.from_store.is_some())?;
            }
            MovementKind::TransferIn => {
                need("from_store", self.from_store.is_some(), "a transfer in")?;
                need("transfer_id", self.transfer_id.is_some(), "a transfer in")?;
                refuse("to_store", self.to_store.is_some())?;
            }
            MovementKind::Adjustment => {
                need("reason_code", self.reason_code.is_some(), "an adjustment")?;
            }
        }
        if let Some(k) = &self.nfe_key
            && (k.len() != 44 || !k.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(FieldError::new("nfe_key", "must be 44 digits"));
        }
        for (field, v) in [
            ("to_store", &self.to_store),
            ("from_store", &self.from_store),
            ("reason_code", &self.reason_code),
        ] {
            if let Some(v) = v {
                text(field, v, CODE_MAX)?;
            }
        }
        timestamp("moved_at", &self.moved_at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountedItem {
    #[schema(schema_with = crate::schema::code)]
    pub product_code: String,
    /// What is on the shelf, thousandths.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub counted_qty: i64,
}

/// `inventory_count`: counted quantities for a list of products (a partial
/// count names only the products counted): each becomes the stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryCount {
    #[schema(schema_with = crate::schema::code)]
    pub register: String,
    #[schema(schema_with = crate::schema::code)]
    pub operator: String,
    #[schema(min_items = 1, max_items = 990)]
    pub items: Vec<CountedItem>,
    #[schema(schema_with = crate::schema::timestamp)]
    pub counted_at: String,
}

impl Validate for InventoryCount {
    fn validate(&self) -> Result<(), FieldError> {
        text("register", &self.register, CODE_MAX)?;
        text("operator", &self.operator, CODE_MAX)?;
        count("items", self.items.len(), 1, limits::ITEMS_MAX, "items")?;
        let mut seen = std::collections::HashSet::new();
        for (i, item) in self.items.iter().enumerate() {
            let at = |e: FieldError| e.within(format!("items[{i}]"));
            text("product_code", &item.product_code, CODE_MAX).map_err(at)?;
            int("counted_qty", item.counted_qty, 0, limits::QTY_MAX).map_err(at)?;
            if !seen.insert(item.product_code.as_str()) {
                return Err(at(FieldError::new(
                    "product_code",
                    "counted twice in one count",
                )));
            }
        }
        timestamp("counted_at", &self.counted_at)
    }
    fn register(&self) -> &str {
        &self.register
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn sale() -> Value {
        json!({
            "register": "PDV01", "session_id": Uuid::nil(), "number": 1, "operator": "001",
            "items": [
                {"product_code": "1", "barcode": "7891000315507", "qty": 1500, "unit_price": 999, "total": 1499},
                {"product_code": "2", "qty": 1000, "unit_price": 500, "discount": 50, "total": 450}
            ],
            "discount": 49, "total": 1900,
            "payments": [{"method": "CASH", "amount": 2000}], "change": 100,
            "sold_at": "2026-11-26T12:00:00Z"
        })
    }

    #[test]
    fn a_sale_that_adds_up_passes() {
        assert_eq!(
            DocumentKind::Sale.validate_body(&sale()),
            Ok("PDV01".into())
        );
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_named_by_its_path() {
        let field = |edit: &dyn Fn(&mut Value)| {
            let mut s = sale();
            edit(&mut s);
            DocumentKind::Sale.validate_body(&s).unwrap_err().field
        };
        assert_eq!(
            field(&|s| s["items"][1]["qty"] = json!(1.5)),
            "items[1].qty"
        );
        assert_eq!(
            field(&|s| s["payments"][0]["amount"] = json!("20")),
            "payments[0].amount"
        );
        assert_eq!(field(&|s| s["total"] = json!(null)), "total");
        assert_eq!(
            field(&|s| s["items"][0]["bogus"] = json!(1)),
            "items[0].bogus"
        );
        assert_eq!(field(&|s| s["bogus"] = json!(1)), "bogus");
        assert_eq!(
            field(&|s| {
                s["items"][0].as_object_mut().unwrap().remove("qty");
            }),
            "items[0].qty"
        );
        assert_eq!(
            field(&|s| {
                s.as_object_mut().unwrap().remove("register");
            }),
            "register"
        );
    }

    #[test]
    fn json_bytes_tell_malformed_from_invalid() {
        let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
        let ok: Sale = from_json_slice(&bytes(&sale())).unwrap();
        assert_eq!(ok.register, "PDV01");
        let mut s = sale();
        s["items"][0]["unit_price"] = json!(-1.25);
        match from_json_slice::<Sale>(&bytes(&s)) {
            Err(JsonBodyError::Invalid(e)) => assert_eq!(e.field, "items[0].unit_price"),
            other => panic!("{other:?}"),
        }
        let mut trailing = bytes(&sale());
        trailing.extend_from_slice(b" {}");
        for bad in [&b"{"[..], b"{\"register\": }", &trailing] {
            assert!(
                matches!(
                    from_json_slice::<Sale>(bad),
                    Err(JsonBodyError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn totals_that_do_not_add_up_name_the_field() {
        let mut s = sale();
        s["items"][1]["total"] = json!(451);
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "items[1].total"
        );
        let mut s = sale();
        s["total"] = json!(1901);
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "total"
        );
        let mut s = sale();
        s["change"] = json!(0);
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "payments"
        );
        let mut s = sale();
        s["items"][0]["qty"] = json!(1.5);
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "items[0].qty"
        );
        let mut s = sale();
        s["colour"] = json!("red");
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "colour"
        );
        let mut s = sale();
        s["customer_document"] = json!("52998224724");
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "customer_document"
        );
    }

    #[test]
    fn huge_amounts_are_invalid_not_a_panic() {
        let mut s = sale();
        s["items"][1]["addition"] = json!(i64::MAX);
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "items[1].addition"
        );
        let mut s = sale();
        s["addition"] = json!(i64::MAX);
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "addition"
        );
        let z = json!({"register": "PDV01", "date": "2026-11-26", "crz": 1, "coo_start": 1,
                       "coo_end": 2, "gross_total": 0, "cancellations": i64::MAX, "discounts": i64::MAX,
                       "net_total": 0});
        assert_eq!(
            DocumentKind::ReducaoZ.validate_body(&z).unwrap_err().field,
            "cancellations"
        );
        // At the bounds everything still adds up without overflow.
        let max = limits::MONEY_MAX;
        let mut s = sale();
        let line = json!({"product_code": "1", "qty": 1000, "unit_price": max, "addition": max,
                          "total": 2 * max});
        let lines = vec![line; limits::ITEMS_MAX];
        s["items"] = json!(lines);
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "items[0].total"
        );
    }

    /// The field a sale edited by `edit` is refused for.
    fn refused(edit: impl Fn(&mut Value)) -> String {
        let mut s = sale();
        edit(&mut s);
        match DocumentKind::Sale.validate_body(&s) {
            Err(e) => e.field,
            Ok(_) => panic!("accepted: {s}"),
        }
    }

    #[test]
    fn a_line_discount_above_its_amount_is_refused() {
        // 1 × 5.00 − 6.00 = −1.00: the total adds up, but is negative.
        assert_eq!(
            refused(|s| {
                s["items"][1]["discount"] = json!(600);
                s["items"][1]["total"] = json!(-100);
                s["discount"] = json!(0);
                s["total"] = json!(1399);
                s["payments"][0]["amount"] = json!(1399);
                s["change"] = json!(0);
            }),
            "items[1].discount"
        );
        // Even when an addition brings the total back above zero.
        assert_eq!(
            refused(|s| {
                s["items"][1]["discount"] = json!(600);
                s["items"][1]["addition"] = json!(200);
                s["items"][1]["total"] = json!(100);
            }),
            "items[1].discount"
        );
        assert_eq!(
            refused(|s| s["items"][1]["total"] = json!(-1)),
            "items[1].total"
        );
        // A discount of the whole line is fine.
        let mut s = sale();
        s["items"][1]["discount"] = json!(500);
        s["items"][1]["total"] = json!(0);
        s["discount"] = json!(0);
        s["total"] = json!(1499);
        s["payments"][0]["amount"] = json!(1499);
        s["change"] = json!(0);
        assert!(DocumentKind::Sale.validate_body(&s).is_ok());
    }

    #[test]
    fn a_sale_discount_above_the_items_is_refused() {
        assert_eq!(
            refused(|s| {
                s["discount"] = json!(2000);
                s["total"] = json!(-51);
                s["payments"] = json!([]);
                s["change"] = json!(0);
            }),
            "discount"
        );
        assert_eq!(refused(|s| s["total"] = json!(-1)), "total");
    }

    #[test]
    fn change_above_what_was_paid_is_refused() {
        assert_eq!(
            refused(|s| {
                s["payments"][0]["amount"] = json!(50);
                s["change"] = json!(100);
            }),
            "change"
        );
        assert_eq!(refused(|s| s["change"] = json!(-1)), "change");
    }

    #[test]
    fn document_times_must_be_utc() {
        assert_eq!(
            refused(|s| s["sold_at"] = json!("2026-11-26T09:00:00-03:00")),
            "sold_at"
        );
        assert_eq!(refused(|s| s["sold_at"] = json!("2026-11-26")), "sold_at");
        let mut s = sale();
        s["sold_at"] = json!("2026-11-26T12:00:00.250+00:00");
        assert!(DocumentKind::Sale.validate_body(&s).is_ok());
        let local = "2026-11-26T09:00:00-03:00";
        let kinds = [
            (DocumentKind::CashOpen, "opened_at"),
            (DocumentKind::CashMovement, "at"),
            (DocumentKind::CashClose, "closed_at"),
            (DocumentKind::SalePayment, "at"),
            (DocumentKind::OmniOrderStatus, "at"),
        ];
        for (kind, field) in kinds {
            let mut body = example(kind);
            assert_eq!(kind.validate_body(&body), Ok("PDV01".into()), "{kind}");
            body[field] = json!(local);
            assert_eq!(
                kind.validate_body(&body).unwrap_err().field,
                field,
                "{kind}"
            );
        }
        let mut c = example(DocumentKind::Customer);
        c["birth_date"] = json!("1980-05-01T00:00:00Z");
        assert_eq!(
            DocumentKind::Customer.validate_body(&c).unwrap_err().field,
            "birth_date"
        );
    }

    /// A valid body of every kind.
    fn example(kind: DocumentKind) -> Value {
        let nil = Uuid::nil();
        match kind {
            DocumentKind::CashOpen => json!({"register": "PDV01", "operator": "001",
                "opening_amount": 10000, "opened_at": "2026-11-26T08:00:00Z"}),
            DocumentKind::CashMovement => json!({"register": "PDV01", "session_id": nil,
                "kind": "withdrawal", "amount": 5000, "reason": "sangria", "at": "2026-11-26T12:00:00Z"}),
            DocumentKind::CashClose => json!({"register": "PDV01", "session_id": nil,
                "operator": "001", "counted_amount": 7000, "totals": [{"method": "CASH", "amount": 2000}],
                "closed_at": "2026-11-26T20:00:00Z"}),
            DocumentKind::Customer => json!({"document": "52998224725", "name": "Maria da Silva",
                "email": "maria@example.com", "phone": "+55 11 5555-0000", "birth_date": "1980-05-01",
                "uf": "SP", "city_ibge_code": 3550308, "lgpd_consent": true, "lgpd_letter_version": 1,
                "register": "PDV01"}),
            DocumentKind::Sale => {
                let mut s = sale();
                s["items"][1]["discount_reason"] = json!("avaria");
                s["payments"][0]["authorization"] = json!("123456");
                s["modality"] = json!("BALCAO");
                s["channel"] = json!("LOJA");
                s["xml"] = json!("<NFe/>");
                s
            }
            DocumentKind::SalePayment => json!({"sale_id": nil, "register": "PDV01",
                "payment": {"method": "TEF", "amount": 1900, "authorization": "123456"},
                "at": "2026-11-26T12:01:00Z"}),
            DocumentKind::SaleXml => json!({"sale_id": nil, "register": "PDV01",
                "access_key": "35261112345678000190650010000000011000000010", "xml": "\n <NFe/>"}),
            DocumentKind::ReducaoZ => json!({"register": "PDV01", "date": "2026-11-26", "crz": 1,
                "coo_start": 1, "coo_end": 1, "gross_total": 1949, "discounts": 49, "net_total": 1900,
                "totals": [{"method": "CASH", "amount": 1900}]}),
            DocumentKind::OmniOrderStatus => json!({"order_id": "OM-1", "status": "ready",
                "at": "2026-11-26T12:30:00Z", "register": "PDV01"}),
            DocumentKind::SaleCancellation => json!({"sale_id": nil, "register": "PDV01",
                "reason_code": "1", "operator": "001", "xml": "<procEventoNFe/>",
                "cancelled_at": "2026-11-26T12:10:00Z"}),
            DocumentKind::Return => {
                json!({"sale_id": nil, "register": "PDV01", "reason_code": "02",
                "operator": "001", "returned_at": "2026-11-27T10:00:00Z",
                "items": [{"product_code": "1", "qty": 1000, "refund": 950, "restock": true}],
                "refunds": [{"method": "CASH", "amount": 950}]})
            }
            DocumentKind::ReturnCancellation => json!({"return_id": nil, "register": "PDV01",
                "reason_code": "9", "operator": "001", "cancelled_at": "2026-11-27T10:05:00Z"}),
            DocumentKind::StockMovement => json!({"movement": "receipt", "register": "PDV01",
                "operator": "001", "nfe_key": "35261112345678000190550010000000011000000010",
                "items": [{"product_code": "1", "qty": 24000}], "moved_at": "2026-11-27T08:00:00Z"}),
            DocumentKind::InventoryCount => json!({"register": "PDV01", "operator": "001",
                "items": [{"product_code": "1", "counted_qty": 7000}],
                "counted_at": "2026-11-27T21:00:00Z"}),
            DocumentKind::OmniAction => json!({"order_id": "o1", "action": "accept",
                "expects": "assigned", "register": "PDV01", "operator": "001",
                "at": "2026-11-27T10:00:00Z"}),
            DocumentKind::OmniReturn => json!({"order_id": "o1", "register": "PDV01",
                "reason_code": "03", "operator": "001", "returned_at": "2026-12-02T10:00:00Z",
                "items": [{"line_id": "1", "product_code": "1", "qty": 1000, "refund": 500, "restock": true}],
                "refunds": [{"method": "CASH", "amount": 500}]}),
        }
    }

    /// Every string field of every kind, and its bound.
    fn string_fields() -> Vec<(DocumentKind, &'static str, usize)> {
        use DocumentKind as K;
        use limits::*;
        vec![
            (K::CashOpen, "register", CODE_MAX),
            (K::CashOpen, "operator", CODE_MAX),
            (K::CashMovement, "register", CODE_MAX),
            (K::CashMovement, "reason", TEXT_MAX),
            (K::CashClose, "register", CODE_MAX),
            (K::CashClose, "operator", CODE_MAX),
            (K::CashClose, "totals[0].method", CODE_MAX),
            (K::Customer, "name", TEXT_MAX),
            (K::Customer, "phone", PHONE_MAX),
            (K::Customer, "register", CODE_MAX),
            (K::Sale, "register", CODE_MAX),
            (K::Sale, "operator", CODE_MAX),
            (K::Sale, "items[0].product_code", CODE_MAX),
            (K::Sale, "items[1].discount_reason", TEXT_MAX),
            (K::Sale, "payments[0].method", CODE_MAX),
            (K::Sale, "payments[0].authorization", AUTHORIZATION_MAX),
            (K::Sale, "modality", CODE_MAX),
            (K::Sale, "channel", CODE_MAX),
            (K::Sale, "xml", XML_MAX),
            (K::SalePayment, "register", CODE_MAX),
            (K::SalePayment, "payment.method", CODE_MAX),
            (K::SalePayment, "payment.authorization", AUTHORIZATION_MAX),
            (K::SaleXml, "register", CODE_MAX),
            (K::SaleXml, "xml", XML_MAX),
            (K::ReducaoZ, "register", CODE_MAX),
            (K::ReducaoZ, "totals[0].method", CODE_MAX),
            (K::OmniOrderStatus, "order_id", CODE_MAX),
            (K::OmniOrderStatus, "register", CODE_MAX),
        ]
    }

    /// The value at a path like `items[0].product_code`.
    fn at<'a>(v: &'a mut Value, path: &str) -> &'a mut Value {
        path.split('.')
            .fold(v, |v, part| match part.split_once('[') {
                Some((name, i)) => {
                    let i: usize = i.trim_end_matches(']').parse().unwrap();
                    &mut v[name][i]
                }
                None => &mut v[part],
            })
    }

    #[test]
    fn every_string_has_a_bound_in_characters() {
        for (kind, path, max) in string_fields() {
            let mut body = example(kind);
            // At the bound (in characters, 2 bytes each): accepted.
            let fill = |n: usize| {
                let mut s = "ç".repeat(n - 1);
                s.insert(0, if path.ends_with("xml") { '<' } else { 'a' });
                s
            };
            *at(&mut body, path) = json!(fill(max));
            assert_eq!(
                kind.validate_body(&body),
                Ok(body["register"].as_str().unwrap().to_owned()),
                "{kind} {path}"
            );
            *at(&mut body, path) = json!(fill(max + 1));
            let e = kind.validate_body(&body).unwrap_err();
            assert_eq!(e.field, path, "{kind}");
            assert!(e.message.contains(&max.to_string()), "{e}");
        }
        // An e-mail and a 1.9 MB operator.
        let mut c = example(DocumentKind::Customer);
        c["email"] = json!(format!("{}@example.com", "a".repeat(limits::EMAIL_MAX)));
        assert_eq!(
            DocumentKind::Customer.validate_body(&c).unwrap_err().field,
            "email"
        );
        assert_eq!(
            refused(|s| s["operator"] = json!("9".repeat(1_900_000))),
            "operator"
        );
        assert_eq!(
            refused(|s| s["items"][0]["product_code"] = json!("9".repeat(1_900_000))),
            "items[0].product_code"
        );
    }

    #[test]
    fn required_text_must_not_be_blank() {
        for (kind, path, _) in string_fields() {
            let optional = [
                "reason",
                "phone",
                "discount_reason",
                "authorization",
                "modality",
                "channel",
            ]
            .iter()
            .any(|o| path.ends_with(o));
            if optional || path.ends_with("xml") && kind == DocumentKind::SaleXml {
                continue;
            }
            for blank in ["", " \t", "\u{1f}\u{3000}"] {
                let mut body = example(kind);
                *at(&mut body, path) = json!(blank);
                assert_eq!(
                    kind.validate_body(&body).unwrap_err().field,
                    path,
                    "{kind} {blank:?}"
                );
            }
        }
    }

    #[test]
    fn integers_are_bounded() {
        use limits::*;
        let cases: Vec<(DocumentKind, &str, i64)> = vec![
            (DocumentKind::CashOpen, "opening_amount", -1),
            (DocumentKind::CashOpen, "opening_amount", MONEY_MAX + 1),
            (DocumentKind::CashMovement, "amount", 0),
            (DocumentKind::CashClose, "counted_amount", -1),
            (DocumentKind::CashClose, "totals[0].amount", -1),
            (DocumentKind::Customer, "city_ibge_code", 35),
            (DocumentKind::Customer, "lgpd_letter_version", 0),
            (DocumentKind::Sale, "number", 0),
            (DocumentKind::Sale, "number", NUMBER_MAX + 1),
            (DocumentKind::Sale, "items[0].qty", 0),
            (DocumentKind::Sale, "items[0].qty", QTY_MAX + 1),
            (DocumentKind::Sale, "items[0].unit_price", -1),
            (DocumentKind::Sale, "items[0].unit_price", MONEY_MAX + 1),
            (DocumentKind::Sale, "items[0].discount", -1),
            (DocumentKind::Sale, "payments[0].amount", 0),
            (DocumentKind::SalePayment, "payment.amount", MONEY_MAX + 1),
            (DocumentKind::ReducaoZ, "crz", 0),
            (DocumentKind::ReducaoZ, "coo_start", 0),
            (DocumentKind::ReducaoZ, "gross_total", -1),
            (DocumentKind::ReducaoZ, "net_total", -1),
            (DocumentKind::ReducaoZ, "totals[0].amount", MONEY_MAX + 1),
        ];
        for (kind, path, v) in cases {
            let mut body = example(kind);
            *at(&mut body, path) = json!(v);
            assert_eq!(
                kind.validate_body(&body).unwrap_err().field,
                path,
                "{kind} {v}"
            );
        }
        let mut s = sale();
        let line = s["items"][1].clone();
        s["items"] = json!(vec![line; ITEMS_MAX + 1]);
        assert_eq!(
            DocumentKind::Sale.validate_body(&s).unwrap_err().field,
            "items"
        );
    }

    #[test]
    fn every_example_is_valid() {
        for kind in DocumentKind::ALL {
            assert_eq!(
                kind.validate_body(&example(kind)),
                Ok("PDV01".into()),
                "{kind}"
            );
        }
    }

    #[test]
    fn rounding_is_half_up() {
        assert_eq!(line_gross(1500, 999), Some(1499)); // 1498.5
        assert_eq!(line_gross(333, 100), Some(33));
        assert_eq!(line_gross(i64::MAX, i64::MAX), None);
    }

    #[test]
    fn kinds_round_trip() {
        for k in DocumentKind::ALL {
            assert_eq!(DocumentKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
    }
}

/// The request header in which a store reports its outbox backlog to the
/// central, on the requests it makes anyway: `pending=N; failed=M`
/// (documents waiting to be delivered; documents parked as rejected).
pub const OUTBOX_HEADER: &str = "Loja-Outbox";

/// The value of [`OUTBOX_HEADER`].
pub fn outbox_header(pending: u64, failed: u64) -> String {
    format!("pending={pending}; failed={failed}")
}

/// Reads an [`OUTBOX_HEADER`] value: (pending, failed); `None` when either
/// is missing or not a number.
pub fn parse_outbox_header(value: &str) -> Option<(u64, u64)> {
    let (mut pending, mut failed) = (None, None);
    for part in value.split(';') {
        let (k, v) = part.split_once('=')?;
        let n = v.trim().parse::<u64>().ok()?;
        match k.trim() {
            "pending" => pending = Some(n),
            "failed" => failed = Some(n),
            _ => {}
        }
    }
    Some((pending?, failed?))
}

#[cfg(test)]
mod outbox_header_tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(parse_outbox_header(&outbox_header(3, 1)), Some((3, 1)));
        assert_eq!(parse_outbox_header("failed=0;pending=12"), Some((12, 0)));
        assert_eq!(parse_outbox_header("pending=1"), None);
        assert_eq!(parse_outbox_header("pending=x; failed=1"), None);
        assert_eq!(parse_outbox_header(""), None);
    }
}
