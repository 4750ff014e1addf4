//! Values across the two backends: parameters in, columns out.
//!
//! The schema keeps SQLite's storage classes on both sides: integers
//! (BIGINT in PostgreSQL, flags included as 0/1), text, a few blobs. A
//! PostgreSQL expression may still answer another type — `count(*) > 0` a
//! boolean, `sum(bigint)` a numeric — so a column converts from whatever
//! the server sent when the value fits.

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::{Error, Result};

/// A statement parameter of either backend.
pub trait ToParam: rusqlite::ToSql {
    fn pg(&self) -> PgValue;
}

/// An owned parameter for the PostgreSQL client (its futures outlive the
/// caller's borrows).
#[derive(Debug, Clone)]
pub enum PgValue {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn pg(&self) -> PgValue {
                PgValue::Int(*self as i64)
            }
        }
    )*};
}
int_param!(i64, i32, i16, i8, u32, u16, u8);

impl ToParam for bool {
    fn pg(&self) -> PgValue {
        PgValue::Int(i64::from(*self))
    }
}
impl ToParam for f64 {
    fn pg(&self) -> PgValue {
        PgValue::Real(*self)
    }
}
impl ToParam for str {
    fn pg(&self) -> PgValue {
        PgValue::Text(self.to_owned())
    }
}
impl ToParam for String {
    fn pg(&self) -> PgValue {
        PgValue::Text(self.clone())
    }
}
impl ToParam for [u8] {
    fn pg(&self) -> PgValue {
        PgValue::Bytes(self.to_vec())
    }
}
impl ToParam for Vec<u8> {
    fn pg(&self) -> PgValue {
        PgValue::Bytes(self.clone())
    }
}
impl<T: ToParam> ToParam for Option<T> {
    fn pg(&self) -> PgValue {
        self.as_ref().map_or(PgValue::Null, ToParam::pg)
    }
}
impl<T: ToParam + ?Sized> ToParam for &T {
    fn pg(&self) -> PgValue {
        (**self).pg()
    }
}
impl<T: ToParam + ?Sized> ToParam for Box<T> {
    fn pg(&self) -> PgValue {
        (**self).pg()
    }
}

impl ToSql for PgValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // The server infers each parameter's type from the statement; the
        // value is written as that type when it fits.
        match self {
            PgValue::Null => Ok(IsNull::Yes),
            PgValue::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                Type::OID => u32::try_from(*v)?.to_sql(ty, out),
                _ => v.to_string().as_str().to_sql(&Type::TEXT, out),
            },
            PgValue::Real(v) => match *ty {
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                Type::FLOAT8 => v.to_sql(ty, out),
                _ => v.to_string().as_str().to_sql(&Type::TEXT, out),
            },
            PgValue::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                _ => i64::from(*b).to_sql(&Type::INT8, out),
            },
            PgValue::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => s.parse::<i32>()?.to_sql(ty, out),
                _ => s.as_str().to_sql(&Type::TEXT, out),
            },
            PgValue::Bytes(b) => b.as_slice().to_sql(&Type::BYTEA, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The same owned parameter for SQLite (a pipeline's statements carry
/// theirs, whichever backend runs them).
impl rusqlite::ToSql for PgValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as Sql};
        Ok(ToSqlOutput::Borrowed(match self {
            PgValue::Null => Sql::Null,
            PgValue::Int(v) => Sql::Integer(*v),
            PgValue::Real(v) => Sql::Real(*v),
            PgValue::Bool(b) => Sql::Integer(i64::from(*b)),
            PgValue::Text(s) => Sql::Text(s.as_bytes()),
            PgValue::Bytes(b) => Sql::Blob(b),
        }))
    }
}

/// A column's value as PostgreSQL sent it, borrowed from the row.
#[derive(Debug, Clone, Copy)]
enum PgAny<'a> {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl<'a> FromSql<'a> for PgAny<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => PgAny::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => PgAny::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => PgAny::Int(i16::from_sql(ty, raw)?.into()),
            Type::OID => PgAny::Int(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => PgAny::Bool(bool::from_sql(ty, raw)?),
            Type::FLOAT8 => PgAny::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => PgAny::Real(f32::from_sql(ty, raw)?.into()),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => PgAny::Bytes(raw),
            _ => PgAny::Text(std::str::from_utf8(raw)?),
        })
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgAny::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A NUMERIC in PostgreSQL's binary form (what `sum(bigint)` answers):
/// an integer when it has no fraction, else a float.
fn numeric(
    raw: &[u8],
) -> std::result::Result<PgAny<'static>, Box<dyn std::error::Error + Sync + Send>> {
    let word = |i: usize| -> std::result::Result<i64, Box<dyn std::error::Error + Sync + Send>> {
        let b = raw.get(i..i + 2).ok_or("numeric: short value")?;
        Ok(i64::from(i16::from_be_bytes([b[0], b[1]])))
    };
    let (ndigits, weight, sign) = (word(0)?, word(2)?, word(4)? as u16);
    if sign == 0xC000 {
        return Ok(PgAny::Real(f64::NAN));
    }
    let mut whole: i128 = 0;
    let mut frac: f64 = 0.0;
    for i in 0..ndigits {
        let d = word(8 + 2 * i as usize)?;
        let power = weight - i; // base 10,000
        if power >= 0 {
            whole = whole
                .checked_mul(10_000)
                .and_then(|w| w.checked_add(i128::from(d)))
                .ok_or("numeric: out of range")?;
        } else {
            frac += d as f64 * 10_000f64.powi(power as i32);
        }
    }
    // Digits stop at the last non-zero group: scale the whole part up.
    let last = weight - ndigits + 1;
    for _ in 0..last.max(0) {
        whole = whole.checked_mul(10_000).ok_or("numeric: out of range")?;
    }
    let negative = sign == 0x4000;
    if frac != 0.0 {
        let v = whole as f64 + frac;
        return Ok(PgAny::Real(if negative { -v } else { v }));
    }
    let v = i64::try_from(whole)?;
    Ok(PgAny::Int(if negative { -v } else { v }))
}

/// A column position or name.
pub trait ColumnIndex: rusqlite::RowIndex + Copy + std::fmt::Display {
    fn position(self, row: &tokio_postgres::Row) -> Option<usize>;
}
impl ColumnIndex for usize {
    fn position(self, row: &tokio_postgres::Row) -> Option<usize> {
        (self < row.len()).then_some(self)
    }
}
impl ColumnIndex for &str {
    fn position(self, row: &tokio_postgres::Row) -> Option<usize> {
        row.columns().iter().position(|c| c.name() == self)
    }
}

fn any<'r, I: ColumnIndex>(row: &'r tokio_postgres::Row, idx: I) -> Result<PgAny<'r>> {
    let column = |reason: String| Error::Column {
        column: idx.to_string(),
        reason,
    };
    let i = idx
        .position(row)
        .ok_or_else(|| column("no such column".into()))?;
    row.try_get::<_, PgAny<'r>>(i)
        .map_err(|e| column(e.to_string()))
}

/// A type a column converts to.
pub trait FromColumn: rusqlite::types::FromSql + Sized {
    #[doc(hidden)]
    fn from_any(v: PgAnyValue<'_>) -> std::result::Result<Self, String>;
}

/// The opaque value [`FromColumn::from_any`] converts from.
#[doc(hidden)]
pub struct PgAnyValue<'a>(PgAny<'a>);

pub(super) fn from_pg<I: ColumnIndex, T: FromColumn>(
    row: &tokio_postgres::Row,
    idx: I,
) -> Result<T> {
    T::from_any(PgAnyValue(any(row, idx)?)).map_err(|reason| Error::Column {
        column: idx.to_string(),
        reason,
    })
}

fn wrong(v: PgAny<'_>, want: &str) -> String {
    format!("cannot read {v:?} as {want}")
}

impl FromColumn for i64 {
    fn from_any(v: PgAnyValue<'_>) -> std::result::Result<Self, String> {
        match v.0 {
            PgAny::Int(i) => Ok(i),
            PgAny::Bool(b) => Ok(i64::from(b)),
            other => Err(wrong(other, "an integer")),
        }
    }
}

macro_rules! narrow_int {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_any(v: PgAnyValue<'_>) -> std::result::Result<Self, String> {
                let i = i64::from_any(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
narrow_int!(i32, i16, i8, u32, u16, u8);

impl FromColumn for bool {
    fn from_any(v: PgAnyValue<'_>) -> std::result::Result<Self, String> {
        match v.0 {
            PgAny::Bool(b) => Ok(b),
            PgAny::Int(i) => Ok(i != 0),
            other => Err(wrong(other, "a flag")),
        }
    }
}
impl FromColumn for f64 {
    fn from_any(v: PgAnyValue<'_>) -> std::result::Result<Self, String> {
        match v.0 {
            PgAny::Real(f) => Ok(f),
            PgAny::Int(i) => Ok(i as f64),
            other => Err(wrong(other, "a number")),
        }
    }
}
impl FromColumn for String {
    fn from_any(v: PgAnyValue<'_>) -> std::result::Result<Self, String> {
        match v.0 {
            PgAny::Text(s) => Ok(s.to_owned()),
            other => Err(wrong(other, "text")),
        }
    }
}
impl FromColumn for Vec<u8> {
    fn from_any(v: PgAnyValue<'_>) -> std::result::Result<Self, String> {
        match v.0 {
            PgAny::Bytes(b) => Ok(b.to_vec()),
            PgAny::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(wrong(other, "bytes")),
        }
    }
}
impl<T: FromColumn> FromColumn for Option<T> {
    fn from_any(v: PgAnyValue<'_>) -> std::result::Result<Self, String> {
        match v.0 {
            PgAny::Null => Ok(None),
            _ => T::from_any(v).map(Some),
        }
    }
}

/// A column's value borrowed from its row (`Row::get_ref`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    pub fn as_str(&self) -> Result<&'a str> {
        match *self {
            ValueRef::Text(s) => Ok(s),
            other => Err(Error::Conversion(format!("{other:?} is not text"))),
        }
    }

    pub fn as_str_or_null(&self) -> Result<Option<&'a str>> {
        match *self {
            ValueRef::Null => Ok(None),
            other => other.as_str().map(Some),
        }
    }
}

pub(super) fn sqlite_ref(v: rusqlite::types::ValueRef<'_>) -> Result<ValueRef<'_>> {
    use rusqlite::types::ValueRef as V;
    Ok(match v {
        V::Null => ValueRef::Null,
        V::Integer(i) => ValueRef::Integer(i),
        V::Real(f) => ValueRef::Real(f),
        V::Text(t) => ValueRef::Text(std::str::from_utf8(t).map_err(Error::conversion)?),
        V::Blob(b) => ValueRef::Blob(b),
    })
}

pub(super) fn pg_ref<I: ColumnIndex>(row: &tokio_postgres::Row, idx: I) -> Result<ValueRef<'_>> {
    Ok(match any(row, idx)? {
        PgAny::Null => ValueRef::Null,
        PgAny::Int(i) => ValueRef::Integer(i),
        PgAny::Bool(b) => ValueRef::Integer(i64::from(b)),
        PgAny::Real(f) => ValueRef::Real(f),
        PgAny::Text(s) => ValueRef::Text(s),
        PgAny::Bytes(b) => ValueRef::Blob(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight, sign as i16, 0] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_read_as_integers_when_whole() {
        // 123456789 = 1 2345 6789 (base 10,000), weight 2
        let n = numeric_bytes(3, 2, 0, &[1, 2345, 6789]);
        assert!(matches!(numeric(&n).unwrap(), PgAny::Int(123_456_789)));
        // 50000 = 5 0000: trailing zero group dropped (ndigits 1, weight 1)
        let n = numeric_bytes(1, 1, 0, &[5]);
        assert!(matches!(numeric(&n).unwrap(), PgAny::Int(50_000)));
        let n = numeric_bytes(1, 0, 0x4000, &[7]);
        assert!(matches!(numeric(&n).unwrap(), PgAny::Int(-7)));
        let n = numeric_bytes(0, 0, 0, &[]);
        assert!(matches!(numeric(&n).unwrap(), PgAny::Int(0)));
        // 1.5 = 1 . 5000, weight 0
        let n = numeric_bytes(2, 0, 0, &[1, 5000]);
        assert!(matches!(numeric(&n).unwrap(), PgAny::Real(f) if (f - 1.5).abs() < 1e-9));
    }
}
