//! Values, rows and errors as they cross the guest boundary (the WIT `db`
//! interface), and their conversion to and from sqlx on each backend.
//!
//! Binding is positional. Decoding is dynamic because guests run arbitrary SQL:
//! on Postgres by the column's declared type, on SQLite by each value's runtime
//! storage class. Nothing here opens connections or decides transaction
//! boundaries, and nothing here may panic on unexpected database output: an
//! unsupported type is a [`DbError`] naming the column.

use std::fmt::Write as _;

use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgColumn, PgRow, PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef,
};
use sqlx::{Arguments, Column, Decode, Encode, Postgres, Row, Type, TypeInfo, ValueRef};

/// A value crossing the guest boundary (mirrors WIT `db.value`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    /// Bytes the value takes, as counted against an invocation's result limit.
    pub fn size(&self) -> u64 {
        match self {
            Value::Null | Value::Boolean(_) => 1,
            Value::Int(_) | Value::Float(_) => 8,
            Value::Text(s) => s.len() as u64,
            Value::Bytes(b) => b.len() as u64,
        }
    }
}

/// A query result (mirrors WIT `db.rows`): column names and one `Vec` per row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub values: Vec<Vec<Value>>,
}

/// Mirrors WIT `db-error`: `code` is the SQLSTATE on Postgres and the extended
/// result code on SQLite (e.g. "2067" unique), as text; `None` when the error
/// did not come from the database (a refused statement, a lost connection).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", code.as_deref().map(|c| format!("[{c}] ")).unwrap_or_default())]
pub struct DbError {
    pub code: Option<String>,
    pub message: String,
}

impl DbError {
    /// An error raised by the host itself, not by the database.
    pub(crate) fn host(message: String) -> Self {
        DbError { code: None, message }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) => {
                DbError { code: db.code().map(|c| c.into_owned()), message: db.message().to_owned() }
            }
            sqlx::Error::PoolTimedOut => DbError::host(
                "timed out waiting for a connection to the business database (is another branch holding it?)"
                    .to_owned(),
            ),
            sqlx::Error::WorkerCrashed => {
                DbError::host("the database connection's worker thread stopped unexpectedly".to_owned())
            }
            other => DbError::host(format!("database error: {other}")),
        }
    }
}

fn bind_error(index: usize, e: BoxDynError) -> DbError {
    DbError::host(format!("cannot bind parameter ${}: {e}", index + 1))
}

// ---------------------------------------------------------------- SQLite

/// A value as SQLite binds it. SQLite is dynamically typed, so `Null` is a
/// plain NULL and `Boolean` is stored as the integer 0 or 1.
pub(super) fn to_sqlite(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match value {
        Value::Null => S::Null,
        Value::Boolean(b) => S::Integer(i64::from(*b)),
        Value::Int(n) => S::Integer(*n),
        Value::Float(f) => S::Real(*f),
        Value::Text(s) => S::Text(s.clone()),
        Value::Bytes(b) => S::Blob(b.clone()),
    }
}

/// A value by its SQLite storage class (NULL, INTEGER, REAL, TEXT, BLOB).
/// SQLite has no boolean class: booleans come back as `Int(0 | 1)`.
pub(super) fn from_sqlite(value: rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as S;
    match value {
        S::Null => Value::Null,
        S::Integer(n) => Value::Int(n),
        S::Real(f) => Value::Float(f),
        S::Text(s) => Value::Text(s),
        S::Blob(b) => Value::Bytes(b),
    }
}

fn decode_error(column: &str, e: BoxDynError) -> DbError {
    DbError::host(format!("cannot decode column `{column}`: {e}"))
}

// ---------------------------------------------------------------- Postgres

/// A NULL whose type Postgres infers from the statement (parameter type OID 0,
/// "unspecified"), so `INSERT INTO t (int_col) VALUES ($1)` works. Where the
/// context gives no type (`SELECT $1`), Postgres (10+) makes it TEXT; where it
/// cannot decide (42P18, "could not determine data type"), the guest casts.
struct UntypedNull;

impl Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(&self, _buf: &mut PgArgumentBuffer) -> Result<sqlx::encode::IsNull, BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

/// Binds `params` positionally with fixed types: BOOL, INT8, FLOAT8, TEXT,
/// BYTEA and an untyped NULL. Text is TEXT, not "unknown": a guest writing a
/// UUID, JSONB or timestamp column casts it (`$1::uuid`).
pub(super) fn pg_arguments(params: &[Value]) -> Result<PgArguments, DbError> {
    let mut args = PgArguments::default();
    for (i, value) in params.iter().enumerate() {
        match value {
            Value::Null => args.add(UntypedNull),
            Value::Boolean(b) => args.add(*b),
            Value::Int(n) => args.add(*n),
            Value::Float(f) => args.add(*f),
            Value::Text(s) => args.add(s.as_str()),
            Value::Bytes(b) => args.add(b.as_slice()),
        }
        .map_err(|e| bind_error(i, e))?;
    }
    Ok(args)
}

/// The parameter types of `params` as sent to Postgres (see [`pg_statement_text`]).
pub(super) fn pg_parameter_types(params: &[Value]) -> Vec<PgTypeInfo> {
    params
        .iter()
        .map(|v| match v {
            Value::Null => UntypedNull::type_info(),
            Value::Boolean(_) => <bool as Type<Postgres>>::type_info(),
            Value::Int(_) => <i64 as Type<Postgres>>::type_info(),
            Value::Float(_) => <f64 as Type<Postgres>>::type_info(),
            Value::Text(_) => <str as Type<Postgres>>::type_info(),
            Value::Bytes(_) => <[u8] as Type<Postgres>>::type_info(),
        })
        .collect()
}

/// The text sent to Postgres for a guest statement.
///
/// sqlx caches prepared statements per connection keyed by SQL text alone and
/// binds later executions with the parameter types of the first. The same SQL
/// with an `Int` one time and `Text` (or an inferred NULL) the next would then
/// be bound with the wrong binary format, so the parameter kinds are appended
/// as a trailing comment, giving each combination its own prepared statement.
pub(super) fn pg_statement_text(sql: &str, params: &[Value]) -> String {
    if params.is_empty() {
        return sql.to_owned();
    }
    let mut text = String::with_capacity(sql.len() + 20 + params.len());
    text.push_str(sql);
    text.push_str("\n-- wasmtx params: ");
    for v in params {
        text.push(match v {
            Value::Null => 'n',
            Value::Boolean(_) => 'b',
            Value::Int(_) => 'i',
            Value::Float(_) => 'f',
            Value::Text(_) => 't',
            Value::Bytes(_) => 'x',
        });
    }
    text
}

/// How one Postgres result column is turned into [`Value`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgDecoder {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    /// Exact decimal text (decoded here: sqlx needs the `rust_decimal` or
    /// `bigdecimal` feature for NUMERIC, and neither is enabled).
    Numeric,
    /// Any type whose binary form is its UTF-8 text.
    Text,
    /// JSONB's binary form: a version byte (1), then the JSON text.
    Jsonb,
    /// Returned in its canonical hyphenated text form.
    Uuid,
    Bytea,
}

impl PgDecoder {
    fn for_type(ty: &PgTypeInfo) -> Option<PgDecoder> {
        match ty.kind() {
            PgTypeKind::Enum(_) => return Some(PgDecoder::Text),
            PgTypeKind::Domain(base) => return PgDecoder::for_type(base),
            _ => {}
        }
        let name = ty.name().to_ascii_uppercase();
        Some(match name.as_str() {
            "BOOL" => PgDecoder::Bool,
            "INT2" => PgDecoder::Int2,
            "INT4" => PgDecoder::Int4,
            "INT8" => PgDecoder::Int8,
            "OID" => PgDecoder::Oid,
            "FLOAT4" => PgDecoder::Float4,
            "FLOAT8" => PgDecoder::Float8,
            "NUMERIC" => PgDecoder::Numeric,
            // sqlx names BPCHAR "CHAR", and the one-byte "char" `"CHAR"`.
            "TEXT" | "VARCHAR" | "CHAR" | "\"CHAR\"" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" | "JSON" | "XML" => {
                PgDecoder::Text
            }
            "JSONB" => PgDecoder::Jsonb,
            "UUID" => PgDecoder::Uuid,
            "BYTEA" => PgDecoder::Bytea,
            _ => return None,
        })
    }
}

/// The columns of a prepared Postgres statement and how to decode each.
///
/// Built before the statement runs, so a column of a type that cannot cross the
/// boundary fails the query before it has any effect, whatever its values: a
/// guest sees the problem on its first test, not on its first non-NULL row.
pub(super) struct PgColumns {
    names: Vec<String>,
    decoders: Vec<PgDecoder>,
}

impl PgColumns {
    pub(super) fn describe(columns: &[PgColumn]) -> Result<PgColumns, DbError> {
        let decoders = columns
            .iter()
            .map(|c| {
                PgDecoder::for_type(c.type_info()).ok_or_else(|| {
                    DbError::host(format!(
                        "column `{}` has type {}, which cannot be returned to a guest; cast it in SQL \
                         (for example `{}::text`)",
                        c.name(),
                        c.type_info().name(),
                        c.name()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PgColumns { names: columns.iter().map(|c| c.name().to_owned()).collect(), decoders })
    }

    /// One row's values, and how many bytes they take (for the result limits).
    pub(super) fn decode_row(&self, row: &PgRow) -> Result<(Vec<Value>, u64), DbError> {
        let mut out = Vec::with_capacity(self.decoders.len());
        let mut bytes = 0u64;
        for (i, decoder) in self.decoders.iter().enumerate() {
            let raw = row.try_get_raw(i)?;
            let value = pg_value(raw, *decoder).map_err(|e| decode_error(&self.names[i], e))?;
            bytes += value.size();
            out.push(value);
        }
        Ok((out, bytes))
    }

    pub(super) fn into_names(self) -> Vec<String> {
        self.names
    }
}

fn pg_value(raw: PgValueRef<'_>, decoder: PgDecoder) -> Result<Value, BoxDynError> {
    if raw.is_null() {
        return Ok(Value::Null);
    }
    // sqlx requests binary results for prepared statements; our own decoders
    // also accept the text form in case that ever changes.
    let text_format = raw.format() == PgValueFormat::Text;
    Ok(match decoder {
        PgDecoder::Bool => Value::Boolean(<bool as Decode<Postgres>>::decode(raw)?),
        PgDecoder::Int2 => Value::Int(<i16 as Decode<Postgres>>::decode(raw)?.into()),
        PgDecoder::Int4 => Value::Int(<i32 as Decode<Postgres>>::decode(raw)?.into()),
        PgDecoder::Int8 => Value::Int(<i64 as Decode<Postgres>>::decode(raw)?),
        PgDecoder::Oid => Value::Int(<Oid as Decode<Postgres>>::decode(raw)?.0.into()),
        PgDecoder::Float4 => Value::Float(<f32 as Decode<Postgres>>::decode(raw)?.into()),
        PgDecoder::Float8 => Value::Float(<f64 as Decode<Postgres>>::decode(raw)?),
        PgDecoder::Bytea => Value::Bytes(<Vec<u8> as Decode<Postgres>>::decode(raw)?),
        PgDecoder::Text => Value::Text(<String as Decode<Postgres>>::decode(raw)?),
        _ if text_format => Value::Text(<String as Decode<Postgres>>::decode(raw)?),
        PgDecoder::Numeric => Value::Text(numeric_text(raw.as_bytes()?)?),
        PgDecoder::Jsonb => match raw.as_bytes()? {
            [1, json @ ..] => Value::Text(std::str::from_utf8(json)?.to_owned()),
            _ => return Err("unsupported JSONB binary version".into()),
        },
        PgDecoder::Uuid => Value::Text(uuid_text(raw.as_bytes()?)?),
    })
}

/// Postgres NUMERIC binary form → the same text Postgres prints.
///
/// Layout (all big-endian): ndigits i16, weight i16, sign u16, dscale u16, then
/// `ndigits` base-10000 digits; the value is Σ digit[k] · 10000^(weight − k),
/// printed with exactly `dscale` fractional digits.
pub(super) fn numeric_text(bytes: &[u8]) -> Result<String, BoxDynError> {
    const POSITIVE: u16 = 0x0000;
    const NEGATIVE: u16 = 0x4000;
    const NAN: u16 = 0xC000;
    const PLUS_INFINITY: u16 = 0xD000;
    const MINUS_INFINITY: u16 = 0xF000;

    let word = |k: usize| -> Result<u16, BoxDynError> {
        match bytes.get(2 * k..2 * k + 2) {
            Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
            _ => Err("truncated NUMERIC value".into()),
        }
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    let digits = (0..ndigits).map(|k| word(4 + k)).collect::<Result<Vec<u16>, _>>()?;
    if digits.iter().any(|d| *d > 9999) {
        return Err("NUMERIC digit out of range".into());
    }
    match sign {
        NAN => return Ok("NaN".to_owned()),
        PLUS_INFINITY => return Ok("Infinity".to_owned()),
        MINUS_INFINITY => return Ok("-Infinity".to_owned()),
        POSITIVE | NEGATIVE => {}
        _ => return Err(format!("invalid NUMERIC sign {sign:#06x}").into()),
    }
    // Digit group for power 10000^(weight - k), zero outside the stored digits.
    let group = |k: i64| -> u16 { usize::try_from(k).ok().and_then(|k| digits.get(k)).copied().unwrap_or(0) };

    let mut out = String::new();
    if sign == NEGATIVE && digits.iter().any(|d| *d != 0) {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        let _ = write!(out, "{}", group(0));
        for k in 1..=weight {
            let _ = write!(out, "{:04}", group(k));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut fraction = String::with_capacity(dscale + 4);
        let mut k = weight + 1;
        while fraction.len() < dscale {
            let _ = write!(fraction, "{:04}", group(k));
            k += 1;
        }
        fraction.truncate(dscale);
        out.push_str(&fraction);
    }
    Ok(out)
}

fn uuid_text(bytes: &[u8]) -> Result<String, BoxDynError> {
    if bytes.len() != 16 {
        return Err(format!("UUID must be 16 bytes, got {}", bytes.len()).into());
    }
    let hex = hex::encode(bytes);
    Ok(format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]))
}
