//! [`Value`], the parameter and column type of the WIT `db` interface, with the
//! conversions that make call sites read like SQL: `&[amount.into(), id.into()]`.
//!
//! `Value` is the generated WIT type itself (re-exported), so parameters go to
//! the host without being copied.

pub use crate::bindings::wasmtx::runtime::db::Value;

impl Value {
    /// A short name of the variant (`"null"`, `"int"`, `"text"`, ...), for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Boolean(_) => "boolean",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
        }
    }

    /// `true` for SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, if this is an `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as `f64`, if this is a `Float` or an `Int`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, if this is a `Boolean`, or an `Int` 0 or 1 (SQLite stores
    /// booleans as integers).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }

    /// The string, if this is a `Text`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is a `Bytes`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

macro_rules! value_from {
    ($($ty:ty => |$v:ident| $make:expr;)+) => {
        $(impl From<$ty> for Value {
            fn from($v: $ty) -> Self {
                $make
            }
        })+
    };
}

value_from! {
    i64 => |v| Value::Int(v);
    i32 => |v| Value::Int(v.into());
    i16 => |v| Value::Int(v.into());
    u32 => |v| Value::Int(v.into());
    f64 => |v| Value::Float(v);
    f32 => |v| Value::Float(v.into());
    bool => |v| Value::Boolean(v);
    String => |v| Value::Text(v);
    &str => |v| Value::Text(v.to_owned());
    &String => |v| Value::Text(v.clone());
    Vec<u8> => |v| Value::Bytes(v);
    &[u8] => |v| Value::Bytes(v.to_vec());
}

/// `None` becomes SQL `NULL`.
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A Rust type a column value can be read as, with [`Row::get`](super::Row::get).
///
/// Implemented for `i64`, `i32`, `f64`, `bool`, `String`, `Vec<u8>`, [`Value`]
/// itself, and `Option<T>` of those (SQL `NULL` reads as `None`; reading `NULL`
/// as a non-`Option` type is an error).
pub trait FromValue: Sized {
    /// The name used in "expected ..." messages.
    const EXPECTED: &'static str;

    /// The converted value, or `None` if the value has another type.
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    const EXPECTED: &'static str = "int";
    fn from_value(value: &Value) -> Option<Self> {
        value.as_i64()
    }
}

impl FromValue for i32 {
    const EXPECTED: &'static str = "int fitting in i32";
    fn from_value(value: &Value) -> Option<Self> {
        value.as_i64().and_then(|i| i32::try_from(i).ok())
    }
}

impl FromValue for f64 {
    const EXPECTED: &'static str = "float or int";
    fn from_value(value: &Value) -> Option<Self> {
        value.as_f64()
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "boolean or int 0/1";
    fn from_value(value: &Value) -> Option<Self> {
        value.as_bool()
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "text";
    fn from_value(value: &Value) -> Option<Self> {
        value.as_str().map(str::to_owned)
    }
}

impl FromValue for Vec<u8> {
    const EXPECTED: &'static str = "bytes";
    fn from_value(value: &Value) -> Option<Self> {
        value.as_bytes().map(<[u8]>::to_vec)
    }
}

impl FromValue for Value {
    const EXPECTED: &'static str = "any value";
    fn from_value(value: &Value) -> Option<Self> {
        Some(value.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_values_convert_to_the_matching_variant() {
        assert_eq!(Value::from(7_i64), Value::Int(7));
        assert_eq!(Value::from(-7_i32), Value::Int(-7));
        assert_eq!(Value::from(7_i16), Value::Int(7));
        assert_eq!(Value::from(u32::MAX), Value::Int(i64::from(u32::MAX)));
        assert_eq!(Value::from(1.5_f64), Value::Float(1.5));
        assert_eq!(Value::from(0.5_f32), Value::Float(0.5));
        assert_eq!(Value::from(true), Value::Boolean(true));
        assert_eq!(Value::from("a"), Value::Text("a".to_owned()));
        assert_eq!(Value::from("b".to_owned()), Value::Text("b".to_owned()));
        assert_eq!(Value::from(&"c".to_owned()), Value::Text("c".to_owned()));
        assert_eq!(Value::from(vec![1_u8, 2]), Value::Bytes(vec![1, 2]));
        assert_eq!(Value::from(&[3_u8][..]), Value::Bytes(vec![3]));
    }

    #[test]
    fn none_converts_to_null_and_some_to_its_value() {
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(Some("x")), Value::Text("x".to_owned()));
    }

    #[test]
    fn accessors_answer_only_for_their_own_kind() {
        assert_eq!(Value::Int(3).as_i64(), Some(3));
        assert_eq!(Value::Text("3".into()).as_i64(), None);
        assert_eq!(Value::Int(3).as_f64(), Some(3.0));
        assert_eq!(Value::Int(1).as_bool(), Some(true));
        assert_eq!(Value::Int(2).as_bool(), None);
        assert_eq!(Value::Text("t".into()).as_str(), Some("t"));
        assert_eq!(Value::Bytes(vec![9]).as_bytes(), Some(&[9_u8][..]));
        assert!(Value::Null.is_null());
        assert_eq!(Value::Float(1.0).kind(), "float");
    }

    #[test]
    fn from_value_reads_null_as_none_only_for_options() {
        assert_eq!(Option::<i64>::from_value(&Value::Null), Some(None));
        assert_eq!(Option::<i64>::from_value(&Value::Int(4)), Some(Some(4)));
        assert_eq!(i64::from_value(&Value::Null), None);
        assert_eq!(Option::<i64>::from_value(&Value::Text("4".into())), None);
    }

    #[test]
    fn from_value_refuses_integers_that_do_not_fit() {
        assert_eq!(i32::from_value(&Value::Int(5)), Some(5));
        assert_eq!(i32::from_value(&Value::Int(i64::MAX)), None);
    }
}
