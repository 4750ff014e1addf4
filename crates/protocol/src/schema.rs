//! OpenAPI (JSON Schema) of document fields, built from the constants of
//! `limits.rs`, the same ones `document.rs` validates with: a field's
//! `maxLength`, `minimum`, `maximum` and `pattern` cannot drift from the rule.
//! The document types use these through `#[schema(schema_with = …)]` (utoipa's
//! attributes take only literals). Pure data: no I/O. A leaf: it uses
//! `limits.rs` only, never `document.rs`.

use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

use crate::limits::{self, pattern};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}
fn nullable_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}
fn required_text(max: usize) -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(pattern::NOT_BLANK))
        .build()
}
fn optional_text(max: usize) -> Object {
    nullable_string().max_length(Some(max)).build()
}
fn integer(min: i64, max: i64) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
        .build()
}
fn nullable_integer(min: i64, max: i64) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
        .build()
}
fn list(of: &str, min: usize, max: usize) -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(of))
        .min_items(Some(min))
        .max_items(Some(max))
        .build()
        .into()
}

/// A code (register, operator, product code, method, order id): not blank,
/// at most [`limits::CODE_MAX`] characters.
pub fn code() -> Object {
    required_text(limits::CODE_MAX)
}
/// An optional code (sale modality, channel).
pub fn opt_code() -> Object {
    optional_text(limits::CODE_MAX)
}
/// A name: not blank, at most [`limits::TEXT_MAX`] characters.
pub fn name() -> Object {
    required_text(limits::TEXT_MAX)
}
/// An optional reason (discount, cash movement).
pub fn opt_text() -> Object {
    optional_text(limits::TEXT_MAX)
}
pub fn opt_authorization() -> Object {
    optional_text(limits::AUTHORIZATION_MAX)
}
pub fn opt_phone() -> Object {
    optional_text(limits::PHONE_MAX)
}
pub fn opt_email() -> Object {
    nullable_string()
        .max_length(Some(limits::EMAIL_MAX))
        .pattern(Some(pattern::EMAIL))
        .build()
}
/// RFC 3339 in UTC.
pub fn timestamp() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .pattern(Some(pattern::UTC))
        .description(Some("RFC 3339 in UTC (`Z` or `+00:00`)"))
        .build()
}
/// `YYYY-MM-DD`.
pub fn date() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .build()
}
pub fn opt_date() -> Object {
    nullable_string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .build()
}
/// A GTIN (EAN/UPC); the check digit is checked too, beyond the pattern.
pub fn opt_gtin() -> Object {
    nullable_string()
        .pattern(Some(pattern::GTIN))
        .description(Some("GTIN-8, -12, -13 or -14 with a valid check digit"))
        .build()
}
/// A CPF or CNPJ, digits only; the check digits are checked too.
pub fn cpf_or_cnpj() -> Object {
    string()
        .pattern(Some(pattern::CPF_OR_CNPJ))
        .description(Some(
            "CPF (11 digits) or CNPJ (14 digits), digits only, valid check digits",
        ))
        .build()
}
pub fn opt_cpf_or_cnpj() -> Object {
    nullable_string()
        .pattern(Some(pattern::CPF_OR_CNPJ))
        .description(Some(
            "CPF (11 digits) or CNPJ (14 digits), digits only, valid check digits",
        ))
        .build()
}
pub fn opt_uf() -> Object {
    nullable_string().pattern(Some(pattern::UF)).build()
}
/// An optional 44-digit NF-e access key (a receipt's).
pub fn opt_access_key() -> Object {
    nullable_string().pattern(Some(pattern::ACCESS_KEY)).build()
}

pub fn access_key() -> Object {
    string().pattern(Some(pattern::ACCESS_KEY)).build()
}
/// The signed XML as a JSON string, kept byte-for-byte.
pub fn xml() -> Object {
    string()
        .max_length(Some(limits::XML_MAX))
        .pattern(Some(pattern::XML))
        .build()
}
pub fn opt_xml() -> Object {
    nullable_string()
        .max_length(Some(limits::XML_MAX))
        .pattern(Some(pattern::NOT_BLANK))
        .build()
}
/// Centavos, 0 to [`limits::MONEY_MAX`].
pub fn money() -> Object {
    integer(0, limits::MONEY_MAX)
}
/// Centavos, 1 to [`limits::MONEY_MAX`].
pub fn positive_money() -> Object {
    integer(1, limits::MONEY_MAX)
}
/// Thousandths of the unit.
pub fn qty() -> Object {
    integer(1, limits::QTY_MAX)
}
/// Thousandths, when given.
pub fn opt_qty() -> Object {
    nullable_integer(1, limits::QTY_MAX)
}
/// A fiscal number (NFC-e number, COO).
pub fn number() -> Object {
    integer(1, limits::NUMBER_MAX)
}
pub fn crz() -> Object {
    integer(1, limits::CRZ_MAX)
}
pub fn opt_ibge() -> Object {
    nullable_integer(limits::IBGE_MIN, limits::IBGE_MAX)
}
pub fn opt_version() -> Object {
    nullable_integer(1, limits::VERSION_MAX)
}
pub fn items() -> RefOr<Schema> {
    list("SaleItem", 1, limits::ITEMS_MAX)
}
pub fn payments() -> RefOr<Schema> {
    list("Payment", 1, limits::PAYMENTS_MAX)
}
pub fn totals() -> RefOr<Schema> {
    list("MethodTotal", 0, limits::TOTALS_MAX)
}
/// An omni order's status.
pub fn omni_status() -> Object {
    string()
        .enum_values(Some(limits::OMNI_STATUSES.iter().copied()))
        .build()
}
