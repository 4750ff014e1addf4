//! The entity registry: every kind of row the central publishes to stores.
//!
//! One table drives everything: the central validates ERP imports and builds
//! feeds from it, the store's replica applies feed pages with it and checks
//! its tables against it. Adding an entity is adding one entry here and its
//! table in `schema/replica`; no code elsewhere changes.

use serde_json::{Map, Value};

use crate::check;
use crate::error::FieldError;

/// The type of a column, as it travels (JSON) and as the replica stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Text,
    /// A plain integer (codes, counts, rates in basis points: 18 % = 1800).
    Int,
    /// Integer centavos.
    Money,
    /// Integer thousandths of a unit.
    Qty,
    Bool,
    /// UTC timestamp or date, RFC 3339 text.
    Time,
    /// A nested JSON document kept as text (promotion rules, order items).
    Json,
}

impl ColType {
    /// SQLite column type in the replica.
    pub fn sql(self) -> &'static str {
        match self {
            ColType::Int | ColType::Money | ColType::Qty | ColType::Bool => "INTEGER",
            ColType::Text | ColType::Time | ColType::Json => "TEXT",
        }
    }

    /// Why a value of the wrong JSON type is refused for a column of this
    /// type (every JSON value fits a `Json` column).
    pub fn type_error(self) -> &'static str {
        match self {
            ColType::Money => "must be an integer number of centavos",
            ColType::Qty => "must be an integer number of thousandths",
            ColType::Int => "must be an integer",
            ColType::Bool => "must be true or false",
            ColType::Text | ColType::Time => "must be a string",
            ColType::Json => "must be JSON",
        }
    }
}

/// A check-digit or format rule on a text column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Gtin,
    Cpf,
    Cnpj,
    CpfOrCnpj,
    Ncm,
    Uf,
}

impl Check {
    pub fn run(self, s: &str) -> Result<(), check::CheckError> {
        match self {
            Check::Gtin => check::gtin(s),
            Check::Cpf => check::cpf(s),
            Check::Cnpj => check::cnpj(s),
            Check::CpfOrCnpj => check::cpf_or_cnpj(s),
            Check::Ncm => check::ncm(s),
            Check::Uf => check::uf(s),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
    pub required: bool,
    pub check: Option<Check>,
}

impl Column {
    /// Checks a text value of this column (of type `Text` or `Time`): the
    /// timestamp format, then the check-digit rule. Shared by every path that
    /// validates rows (JSON maps and typed cells).
    pub fn check_text(&self, s: &str) -> Result<(), FieldError> {
        if self.ty == ColType::Time && !crate::time::is_rfc3339_or_date(s) {
            return Err(FieldError::new(
                self.name,
                "must be an RFC 3339 timestamp or a YYYY-MM-DD date",
            ));
        }
        if let Some(check) = self.check {
            check
                .run(s)
                .map_err(|e| FieldError::new(self.name, e.to_string()))?;
        }
        Ok(())
    }
}

/// How a store resolves a key when several nodes of the hierarchy (master →
/// centrals → store) hold a row for it (shared/seeds 002: each level owns its
/// data; a store's own data takes precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Only the store's own row (stock, store setup, the certificate): rows
    /// are imported under a store node, never under a central or the master.
    Own,
    /// The store's own row if any, else its central's, else the master's
    /// (parameters, prices per list, promotions…).
    Nearest,
    /// One row per key for everyone allowed to see it (products, barcodes,
    /// cities…): importing a key under another node moves it there.
    Shared,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Own => "own",
            Resolution::Nearest => "nearest",
            Resolution::Shared => "shared",
        }
    }
}

/// One kind of row the central publishes.
#[derive(Debug)]
pub struct Entity {
    /// Wire name, feed path segment and replica table name.
    pub name: &'static str,
    /// Module code of the download job (the old systems' `LogIntegracao` codes).
    pub code: &'static str,
    pub description: &'static str,
    /// Key columns, in order; always required.
    pub key: &'static [&'static str],
    pub columns: &'static [Column],
    /// Default minutes between downloads the central releases to a store.
    pub availability_minutes: u32,
    /// Kept out of the replica's plain tables, logs and tickets.
    pub secret: bool,
    /// How a store picks among the rows several nodes hold for one key.
    pub resolution: Resolution,
    /// The domain's integration type (`LoteAgendamento.Tipo`) whose minutes
    /// this entity's default availability follows, when it has one.
    pub domain_type: Option<&'static str>,
}

const fn c(name: &'static str, ty: ColType) -> Column {
    Column {
        name,
        ty,
        required: false,
        check: None,
    }
}
const fn req(name: &'static str, ty: ColType) -> Column {
    Column {
        name,
        ty,
        required: true,
        check: None,
    }
}
const fn chk(name: &'static str, required: bool, check: Check) -> Column {
    Column {
        name,
        ty: ColType::Text,
        required,
        check: Some(check),
    }
}

use ColType::*;

const fn entity(
    name: &'static str,
    code: &'static str,
    description: &'static str,
    key: &'static [&'static str],
    columns: &'static [Column],
    availability_minutes: u32,
) -> Entity {
    Entity {
        name,
        code,
        description,
        key,
        columns,
        availability_minutes,
        secret: false,
        resolution: Resolution::Shared,
        domain_type: None,
    }
}

impl Entity {
    const fn resolved(mut self, resolution: Resolution) -> Entity {
        self.resolution = resolution;
        self
    }
    const fn domain(mut self, domain_type: &'static str) -> Entity {
        self.domain_type = Some(domain_type);
        self
    }
}

/// Every entity, in the order a first full load applies them (parents first).
#[rustfmt::skip]
pub static ENTITIES: &[Entity] = &[
    entity("states", "EST", "Brazilian states (UF)", &["uf"], &[
        chk("uf", true, Check::Uf), req("name", Text), c("ibge_code", Int),
    ], 480).resolved(Resolution::Shared).domain("Estado"),
    entity("cities", "CID", "Cities by IBGE code", &["ibge_code"], &[
        req("ibge_code", Int), req("name", Text), chk("uf", true, Check::Uf),
    ], 480).resolved(Resolution::Shared).domain("Cidade"),
    entity("ncm", "NCM", "NCM codes with IBPT approximate tax rates (basis points)", &["code"], &[
        chk("code", true, Check::Ncm), req("description", Text),
        c("federal_rate_bp", Int), c("state_rate_bp", Int), c("municipal_rate_bp", Int),
    ], 60).resolved(Resolution::Shared).domain("TributoNCM"),
    entity("products", "PRD", "Products", &["code"], &[
        req("code", Text), req("name", Text), req("unit", Text), chk("ncm", false, Check::Ncm),
        c("brand", Text), c("department", Text), c("is_kit", Bool), c("weighable", Bool),
        c("active", Bool), c("updated_at", Time),
    ], 90).resolved(Resolution::Shared).domain("Produto"),
    entity("barcodes", "BAR", "Product identification: GTIN/EAN barcodes", &["barcode"], &[
        chk("barcode", true, Check::Gtin), req("product_code", Text), c("pack_qty", Qty),
    ], 90).resolved(Resolution::Shared).domain("Produto"),
    entity("kits", "KIT", "Kit components", &["kit_code", "component_code"], &[
        req("kit_code", Text), req("component_code", Text), req("qty", Qty), c("price", Money),
    ], 60).resolved(Resolution::Shared).domain("Kit"),
    entity("prices", "PRC", "Prices by price list ('base' chain-wide, or a node id)", &["product_code", "price_list"], &[
        req("product_code", Text), req("price_list", Text), req("price", Money),
        c("promo_price", Money), c("promo_until", Time), c("updated_at", Time),
    ], 60).resolved(Resolution::Nearest).domain("Preco"),
    entity("stock", "ETQ", "Stock on hand at the store", &["product_code"], &[
        req("product_code", Text), req("qty", Qty), c("updated_at", Time),
        c("reflects_store_seq", Int),
    ], 10).resolved(Resolution::Own).domain("Estoque"),
    entity("product_taxes", "TRB", "ECF tribute of a product: the same in every state (the ICMS by state, PIS/COFINS, ICMS ST retained and FCP have their own entities)", &["product_code"], &[
        req("product_code", Text), req("ecf_tribute", Text), chk("ncm", false, Check::Ncm),
        c("cfop", Text), c("cest", Text),
    ], 60).resolved(Resolution::Shared).domain("TributoECF"),
    entity("icms_by_state", "ICE", "ICMS of a product in a state (UF): CST, rate, base reduction, FCP", &["product_code", "uf"], &[
        req("product_code", Text), chk("uf", true, Check::Uf), req("icms_cst", Text), req("icms_rate_bp", Int),
        c("base_reduction_bp", Int), c("fcp_rate_bp", Int), c("cfop", Text),
    ], 120).resolved(Resolution::Nearest).domain("IcmsEst"),
    entity("pis_cofins", "PCF", "PIS and COFINS of a product", &["product_code"], &[
        req("product_code", Text), req("pis_cst", Text), c("pis_rate_bp", Int),
        req("cofins_cst", Text), c("cofins_rate_bp", Int),
    ], 120).resolved(Resolution::Shared).domain("PisCofins"),
    entity("icms_st_retained", "ICR", "ICMS ST retained earlier in the chain, per product and state", &["product_code", "uf"], &[
        req("product_code", Text), chk("uf", true, Check::Uf), c("st_base", Money),
        c("icms_st_rate_bp", Int), c("icms_retained", Money),
    ], 120).resolved(Resolution::Nearest).domain("IcmsRet"),
    entity("fcp_balance", "FCP", "FCP (poverty fund) on ST retained, per product and state", &["product_code", "uf"], &[
        req("product_code", Text), chk("uf", true, Check::Uf), c("fcp_st_rate_bp", Int), c("fcp_retained", Money),
    ], 120).resolved(Resolution::Nearest).domain("SaldoFCP"),
    entity("discount_reasons", "MDS", "Discount reasons", &["code"], &[
        req("code", Text), req("description", Text), c("active", Bool),
    ], 120).resolved(Resolution::Shared),
    entity("return_reasons", "MTD", "Reasons for returns and exchanges (the domain's MotivoTD), the omni channels' return reasons too", &["code"], &[
        req("code", Text), req("description", Text), c("restock", Bool), c("omni", Bool), c("active", Bool),
    ], 120).resolved(Resolution::Nearest).domain("MotivoTD"),
    entity("discount_types", "TDS", "Discount types", &["code"], &[
        req("code", Text), req("description", Text), c("max_percent_bp", Int), c("needs_authorization", Bool),
    ], 120).resolved(Resolution::Nearest).domain("TipoDesc"),
    entity("payment_methods", "FPG", "Payment methods", &["code"], &[
        req("code", Text), req("description", Text), req("kind", Text), c("tef", Bool),
        c("gives_change", Bool), c("active", Bool),
    ], 90).resolved(Resolution::Nearest),
    entity("electronic_products", "PEL", "Electronic products (top-ups, gift cards) sold through a payment provider", &["code"], &[
        req("code", Text), req("description", Text), c("provider", Text), c("min_amount", Money), c("max_amount", Money),
    ], 90).resolved(Resolution::Nearest),
    entity("employees", "FUN", "Employees (operators, supervisors)", &["code"], &[
        req("code", Text), req("name", Text), chk("cpf", false, Check::Cpf), c("role", Text), c("active", Bool),
    ], 60).resolved(Resolution::Shared).domain("Funcionario"),
    entity("customers", "CLI", "Customers", &["document"], &[
        chk("document", true, Check::CpfOrCnpj), req("name", Text), c("email", Text), c("phone", Text),
        c("birth_date", Time), c("city_ibge_code", Int), chk("uf", false, Check::Uf),
        c("credit_limit", Money), c("lgpd_consent", Bool), c("updated_at", Time),
    ], 120).resolved(Resolution::Shared).domain("Cliente"),
    entity("suppliers", "FOR", "Suppliers", &["document"], &[
        chk("document", true, Check::Cnpj), req("name", Text), c("phone", Text),
    ], 180).resolved(Resolution::Shared).domain("Fornecedor"),
    entity("lgpd_letters", "LGL", "LGPD consent letter versions", &["version"], &[
        req("version", Int), req("text", Text), c("published_at", Time),
    ], 300).resolved(Resolution::Shared).domain("CartaConsentimento"),
    entity("lgpd_config", "LGC", "LGPD configuration", &["name"], &[
        req("name", Text), req("value", Text),
    ], 300).resolved(Resolution::Nearest).domain("DadosLGPD"),
    entity("sale_modalities", "MOD", "Sale modalities", &["code"], &[
        req("code", Text), req("description", Text),
    ], 300).resolved(Resolution::Shared).domain("Modalidade"),
    entity("sales_channels", "CNV", "Sales channels", &["code"], &[
        req("code", Text), req("description", Text),
    ], 300).resolved(Resolution::Shared).domain("CanalVenda"),
    entity("promotions", "PRM", "Promotional campaigns", &["code"], &[
        req("code", Text), req("name", Text), req("starts_at", Time), req("ends_at", Time),
        c("rule", Json), c("active", Bool),
    ], 60).resolved(Resolution::Nearest).domain("CampanhaLive"),
    entity("discount_rules", "RDS", "Automatic discount rules", &["code"], &[
        req("code", Text), req("description", Text), c("product_code", Text), c("min_qty", Qty),
        req("discount_bp", Int), c("starts_at", Time), c("ends_at", Time),
    ], 60).resolved(Resolution::Nearest).domain("RegraDesc"),
    entity("sms_promotions", "SMS", "SMS promotions", &["code"], &[
        req("code", Text), req("message", Text), c("starts_at", Time), c("ends_at", Time),
    ], 120).resolved(Resolution::Nearest),
    entity("loyalty_programs", "FID", "Loyalty programs", &["code"], &[
        req("code", Text), req("name", Text), c("points_per_real", Int), c("active", Bool),
    ], 150).resolved(Resolution::Nearest).domain("Fidelidade"),
    entity("parameters", "PAR", "General parameters", &["name"], &[
        req("name", Text), req("value", Text),
    ], 60).resolved(Resolution::Nearest),
    entity("store_setup", "LOJ", "Store setup (name, CNPJ, address, fiscal settings)", &["name"], &[
        req("name", Text), req("value", Text),
    ], 60).resolved(Resolution::Own),
    Entity {
        name: "store_certificate",
        code: "CRT",
        description: "The store's fiscal certificate (A1, PKCS#12 in base64) and its password",
        key: &["store"],
        columns: &[req("store", Text), req("pfx_base64", Text), req("password", Text), c("expires_at", Time)],
        availability_minutes: 480,
        secret: true,
        resolution: Resolution::Own,
        domain_type: None,
    },
    // A store's view of an order: its own lines (loja_protocol::omni).
    entity("omni_orders", "OMN", "Omni-channel orders assigned to the store: pickup, ship from store, endless aisle (typed: loja_protocol::omni)", &["id"], &[
        req("id", Text), req("number", Text), req("channel", Text),
        chk("customer_document", false, Check::CpfOrCnpj), req("delivery", Text), req("paid", Bool),
        c("payments", Json), c("freight", Money), req("created_at", Time), req("status", Text),
        req("lines", Json), c("reflects_store_seq", Int), c("updated_at", Time),
    ], 10).resolved(Resolution::Own).domain("PreVenda"),
];

/// Finds an entity by wire name.
/// The `parameters` row that switches a store's integration with the
/// central on or off: the domain's InterfaceIntegracao `Ativo`. Set for the
/// whole chain (master), a central or a store, it resolves like every
/// `nearest` row (the store's own, else its central's, else the chain's);
/// the store keeps downloading `parameters` while it is off so that it
/// hears it come back on.
pub const INTEGRATION_PARAMETER: &str = "interface_integracao_ativo";

/// Whether a value of [`INTEGRATION_PARAMETER`] means on: anything but an
/// explicit off (`false`, `0`, `off`, `n`, `nao`/`não`), so that a typo
/// never stops a store.
pub fn integration_on(value: &str) -> bool {
    !matches!(
        value.trim().to_lowercase().as_str(),
        "false" | "0" | "off" | "n" | "nao" | "não"
    )
}

pub fn entity_named(name: &str) -> Option<&'static Entity> {
    ENTITIES.iter().find(|e| e.name == name)
}

impl Entity {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Checks a row against the columns: no unknown field, required present,
    /// types right (integers only where money and quantities go), check digits.
    pub fn validate_row(&self, row: &Map<String, Value>) -> Result<(), FieldError> {
        for name in row.keys() {
            if self.column(name).is_none() {
                return Err(FieldError::new(
                    name,
                    format!("unknown field for entity {}", self.name),
                ));
            }
        }
        for col in self.columns {
            match row.get(col.name) {
                None | Some(Value::Null) => {
                    if col.required || self.key.contains(&col.name) {
                        return Err(FieldError::new(col.name, "is required"));
                    }
                }
                Some(v) => check_value(col, v)?,
            }
        }
        Ok(())
    }

    /// Checks a tombstone's key: exactly the key columns, each valid.
    pub fn validate_key(&self, key: &Map<String, Value>) -> Result<(), FieldError> {
        for name in key.keys() {
            if !self.key.contains(&name.as_str()) {
                return Err(FieldError::new(
                    name,
                    format!("not a key column of entity {}", self.name),
                ));
            }
        }
        for k in self.key {
            let col = self
                .column(k)
                .ok_or_else(|| FieldError::new(*k, "key column missing from registry"))?;
            match key.get(*k) {
                None | Some(Value::Null) => {
                    return Err(FieldError::new(*k, "key column is required"));
                }
                Some(v) => check_value(col, v)?,
            }
        }
        Ok(())
    }

    /// The canonical text of a row's key (a JSON array of the key values),
    /// what the central uses as the row's identity.
    pub fn key_text(&self, row: &Map<String, Value>) -> String {
        let parts: Vec<&Value> = self
            .key
            .iter()
            .map(|k| row.get(*k).unwrap_or(&Value::Null))
            .collect();
        serde_json::to_string(&parts).unwrap_or_default()
    }

    /// The key columns of a row, as a tombstone carries them.
    pub fn key_of(&self, row: &Map<String, Value>) -> Map<String, Value> {
        self.key
            .iter()
            .map(|k| ((*k).to_owned(), row.get(*k).cloned().unwrap_or(Value::Null)))
            .collect()
    }
}

/// The one check of a present, non-null JSON value against its column: the
/// JSON type the column takes, then [`Column::check_text`] for text.
pub(crate) fn check_value(col: &Column, v: &Value) -> Result<(), FieldError> {
    let typed = match col.ty {
        ColType::Int | ColType::Money | ColType::Qty => v.as_i64().is_some(),
        ColType::Bool => v.is_boolean(),
        ColType::Text | ColType::Time => match v.as_str() {
            Some(s) => return col.check_text(s),
            None => false,
        },
        ColType::Json => true,
    };
    if typed {
        Ok(())
    } else {
        Err(FieldError::new(col.name, col.ty.type_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn names_and_codes_are_unique_and_keys_are_columns() {
        let mut names = std::collections::HashSet::new();
        let mut codes = std::collections::HashSet::new();
        for e in ENTITIES {
            assert!(names.insert(e.name), "duplicate entity {}", e.name);
            assert!(codes.insert(e.code), "duplicate code {}", e.code);
            for k in e.key {
                assert!(e.column(k).is_some(), "{}: key {k} is not a column", e.name);
            }
        }
        assert!(ENTITIES.len() >= 25);
    }

    #[test]
    fn a_good_row_passes_and_bad_ones_name_the_field() {
        let e = entity_named("barcodes").unwrap();
        assert_eq!(
            e.validate_row(&obj(
                json!({"barcode": "7891000315507", "product_code": "1"})
            )),
            Ok(())
        );
        let err = e
            .validate_row(&obj(
                json!({"barcode": "7891000315508", "product_code": "1"}),
            ))
            .unwrap_err();
        assert_eq!(err.field, "barcode");
        let err = e
            .validate_row(&obj(json!({"barcode": "7891000315507"})))
            .unwrap_err();
        assert_eq!(err.field, "product_code");
        let err = e
            .validate_row(&obj(
                json!({"barcode": "7891000315507", "product_code": "1", "colour": "x"}),
            ))
            .unwrap_err();
        assert_eq!(err.field, "colour");
        let p = entity_named("prices").unwrap();
        let err = p
            .validate_row(&obj(
                json!({"product_code": "1", "price_list": "base", "price": 12.5}),
            ))
            .unwrap_err();
        assert_eq!(err.field, "price");
        assert!(err.message.contains("centavos"));
    }

    #[test]
    fn key_text_is_canonical() {
        let e = entity_named("kits").unwrap();
        let row = obj(json!({"qty": 1000, "component_code": "B", "kit_code": "A"}));
        assert_eq!(e.key_text(&row), r#"["A","B"]"#);
        assert_eq!(e.validate_key(&e.key_of(&row)), Ok(()));
    }
}
