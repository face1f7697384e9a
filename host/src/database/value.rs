//! Values, rows and errors as they cross the guest boundary (the WIT `db`
//! interface), and their conversion to and from sqlx on each backend.
//!
//! Binding is positional. Decoding is dynamic because guests run arbitrary SQL:
//! on Postgres by the column's declared type, on SQLite by each value's runtime
//! storage class, on MySQL by the type each value arrives with. Nothing here opens connections or decides transaction
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

/// Mirrors WIT `db-error`: `code` is the SQLSTATE on Postgres and MySQL, the extended
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

// ---------------------------------------------------------------- MySQL

/// Binds `params` positionally for `?` placeholders: BOOL as TINYINT, INT8 as
/// BIGINT, FLOAT8 as DOUBLE, text as a string, bytes as a binary string, and
/// NULL as a NULL the server converts to whatever the context needs.
pub(super) fn mysql_arguments(params: &[Value]) -> Result<sqlx::mysql::MySqlArguments, DbError> {
    let mut args = sqlx::mysql::MySqlArguments::default();
    for (i, value) in params.iter().enumerate() {
        match value {
            Value::Null => args.add(None::<String>),
            Value::Boolean(b) => args.add(*b),
            Value::Int(n) => args.add(*n),
            Value::Float(f) => args.add(*f),
            Value::Text(s) => args.add(s.as_str()),
            Value::Bytes(b) => args.add(b.as_slice()),
        }
        .map_err(|e| DbError::host(format!("cannot bind parameter {}: {e}", i + 1)))?;
    }
    Ok(args)
}

/// How a MySQL column crosses the boundary, by the type the server reports.
/// Signed integers (TINYINT(1)/BOOL included) are `Int`; unsigned ones are
/// `Int` up to `i64::MAX` and their decimal `Text` above it; DECIMAL is its
/// exact text; FLOAT and DOUBLE are `Float`; character types (ENUM, SET and
/// JSON included) are `Text`; binary strings, BLOBs and BIT are `Bytes`;
/// DATE, TIME, DATETIME and TIMESTAMP are text as MySQL prints them (with
/// microseconds only when they are not zero). Anything else (GEOMETRY) is
/// refused, naming the column. The protocol marks a character column with a
/// binary collation (`utf8mb4_bin`) binary, and does not say which collation
/// it is (sqlx does not pass it on): such a column comes back as `Bytes`
/// (`CONVERT(col USING utf8mb4)` makes it text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MyDecoder {
    Null,
    Int,
    Unsigned,
    Float,
    Double,
    Text,
    Bytes,
    Date,
    DateTime,
    Time,
}

impl MyDecoder {
    fn for_type(ty: &sqlx::mysql::MySqlTypeInfo) -> Option<MyDecoder> {
        Some(match ty.name() {
            "NULL" => MyDecoder::Null,
            "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => MyDecoder::Int,
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" | "BIGINT UNSIGNED"
            | "YEAR" => MyDecoder::Unsigned,
            "FLOAT" => MyDecoder::Float,
            "DOUBLE" => MyDecoder::Double,
            "DECIMAL" | "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET"
            | "JSON" => MyDecoder::Text,
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT" => MyDecoder::Bytes,
            "DATE" => MyDecoder::Date,
            "DATETIME" | "TIMESTAMP" => MyDecoder::DateTime,
            "TIME" => MyDecoder::Time,
            _ => return None,
        })
    }
}

/// The columns of a MySQL result and how to decode each.
pub(super) struct MyColumns {
    names: Vec<String>,
    decoders: Vec<MyDecoder>,
}

impl MyColumns {
    /// Refuses a column whose type cannot cross the boundary.
    pub(super) fn describe(columns: &[sqlx::mysql::MySqlColumn]) -> Result<MyColumns, DbError> {
        let decoders = columns
            .iter()
            .map(|c| {
                MyDecoder::for_type(c.type_info()).ok_or_else(|| {
                    DbError::host(format!(
                        "column `{}` has type {}, which cannot be returned to a guest; convert it in SQL (for \
                         example `ST_AsText({})`)",
                        c.name(),
                        c.type_info().name(),
                        c.name()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MyColumns { names: columns.iter().map(|c| c.name().to_owned()).collect(), decoders })
    }

    /// One row's values (decoded by the type each value arrived with), and
    /// how many bytes they take.
    pub(super) fn decode_row(&self, row: &sqlx::mysql::MySqlRow) -> Result<(Vec<Value>, u64), DbError> {
        let mut out = Vec::with_capacity(self.names.len());
        let mut bytes = 0u64;
        for (i, name) in self.names.iter().enumerate() {
            let raw = row.try_get_raw(i)?;
            let value = if raw.is_null() {
                Value::Null
            } else {
                let ty = raw.type_info().into_owned();
                let decoder = MyDecoder::for_type(&ty)
                    .or(self.decoders.get(i).copied())
                    .ok_or_else(|| DbError::host(format!("column `{name}` has type {ty}, which cannot be returned")))?;
                mysql_value(raw, decoder).map_err(|e| decode_error(name, e))?
            };
            bytes += value.size();
            out.push(value);
        }
        Ok((out, bytes))
    }

    pub(super) fn into_names(self) -> Vec<String> {
        self.names
    }
}

fn mysql_value(raw: sqlx::mysql::MySqlValueRef<'_>, decoder: MyDecoder) -> Result<Value, BoxDynError> {
    use sqlx::MySql;
    Ok(match decoder {
        MyDecoder::Null => Value::Null,
        MyDecoder::Int => Value::Int(<i64 as Decode<MySql>>::decode(raw)?),
        MyDecoder::Unsigned => {
            let n = <u64 as Decode<MySql>>::decode(raw)?;
            i64::try_from(n).map_or_else(|_| Value::Text(n.to_string()), Value::Int)
        }
        MyDecoder::Float => Value::Float(<f32 as Decode<MySql>>::decode(raw)?.into()),
        MyDecoder::Double => Value::Float(<f64 as Decode<MySql>>::decode(raw)?),
        MyDecoder::Text => Value::Text(<&str as Decode<MySql>>::decode(raw)?.to_owned()),
        MyDecoder::Bytes => Value::Bytes(<&[u8] as Decode<MySql>>::decode(raw)?.to_vec()),
        MyDecoder::Date | MyDecoder::DateTime => {
            Value::Text(mysql_datetime_text(<&[u8] as Decode<MySql>>::decode(raw)?, decoder == MyDecoder::Date)?)
        }
        MyDecoder::Time => Value::Text(mysql_time_text(<&[u8] as Decode<MySql>>::decode(raw)?)?),
    })
}

/// A binary DATE, DATETIME or TIMESTAMP (a length byte, then year u16,
/// month, day, and optionally hour, minute, second and microseconds u32,
/// little-endian) as `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`.
pub(super) fn mysql_datetime_text(bytes: &[u8], date_only: bool) -> Result<String, BoxDynError> {
    let (&len, rest) = bytes.split_first().ok_or("empty date value")?;
    let field = |k: usize| rest.get(k).copied().map(u32::from).unwrap_or(0);
    if rest.len() < usize::from(len) || !matches!(len, 0 | 4 | 7 | 11) {
        return Err(format!("unexpected binary date of {len} bytes").into());
    }
    let year = if len >= 4 { u16::from_le_bytes([rest[0], rest[1]]) } else { 0 };
    let mut out = format!("{year:04}-{:02}-{:02}", field(2), field(3));
    if date_only {
        return Ok(out);
    }
    let _ = write!(out, " {:02}:{:02}:{:02}", field(4), field(5), field(6));
    if len == 11 {
        let micros = u32::from_le_bytes([rest[7], rest[8], rest[9], rest[10]]);
        if micros != 0 {
            let _ = write!(out, ".{micros:06}");
        }
    }
    Ok(out)
}

/// A binary TIME (a length byte, then sign, days u32, hour, minute, second
/// and optionally microseconds u32) as `[-]HH:MM:SS[.ffffff]`, hours past 24
/// included (MySQL's TIME spans ±838 hours).
pub(super) fn mysql_time_text(bytes: &[u8]) -> Result<String, BoxDynError> {
    let (&len, rest) = bytes.split_first().ok_or("empty time value")?;
    if len == 0 {
        return Ok("00:00:00".to_owned());
    }
    if rest.len() < usize::from(len) || !matches!(len, 8 | 12) {
        return Err(format!("unexpected binary time of {len} bytes").into());
    }
    let negative = rest[0] == 1;
    let days = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]);
    let hours = u64::from(days) * 24 + u64::from(rest[5]);
    let mut out = format!("{}{hours:02}:{:02}:{:02}", if negative { "-" } else { "" }, rest[6], rest[7]);
    if len == 12 {
        let micros = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if micros != 0 {
            let _ = write!(out, ".{micros:06}");
        }
    }
    Ok(out)
}
