//! [`Rows`], what [`query`](super::query) returns, and [`Row`], a borrowed view
//! of one row whose columns are read by name.

use std::fmt;

use super::value::{FromValue, Value};

/// The rows a query produced, with their column names.
///
/// ```
/// use wasmtx_guest::db::{Rows, Value};
///
/// let rows = Rows::new(
///     vec!["id".into(), "balance".into()],
///     vec![vec![Value::from("alice"), Value::from(70)]],
/// );
/// assert_eq!(rows.get::<i64>(0, "balance").unwrap(), 70);
/// let alice = rows.first().unwrap();
/// assert_eq!(alice.get_str("id").unwrap(), "alice");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    columns: Vec<String>,
    values: Vec<Vec<Value>>,
}

impl Rows {
    /// Rows from column names and one `Vec` of values per row, each in column
    /// order. Useful to test code that reads rows.
    pub fn new(columns: Vec<String>, values: Vec<Vec<Value>>) -> Self {
        Rows { columns, values }
    }

    /// The column names, in `SELECT` order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// `true` when the query produced no row.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Row `index` (from 0), if there is one.
    pub fn row(&self, index: usize) -> Option<Row<'_>> {
        self.values.get(index).map(|values| Row { columns: &self.columns, values })
    }

    /// The first row, if any: the usual way to read a single-row result.
    pub fn first(&self) -> Option<Row<'_>> {
        self.row(0)
    }

    /// Every row, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { columns: &self.columns, rows: self.values.iter() }
    }

    /// Column `column` of row `row`, read as `T`.
    pub fn get<T: FromValue>(&self, row: usize, column: &str) -> Result<T, ColumnError> {
        self.row(row).ok_or(ColumnError::NoRow { index: row, len: self.len() })?.get(column)
    }

    /// The raw values, one `Vec` per row in column order.
    pub fn into_values(self) -> Vec<Vec<Value>> {
        self.values
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = Row<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The rows of [`Rows`], in order; see [`Rows::iter`].
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    columns: &'a [String],
    rows: std::slice::Iter<'a, Vec<Value>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Row<'a>;

    fn next(&mut self) -> Option<Row<'a>> {
        let values = self.rows.next()?;
        Some(Row { columns: self.columns, values })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rows.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// One row of [`Rows`]; columns are read by name.
///
/// A name matches exactly or, failing that, ignoring ASCII case (Postgres folds
/// unquoted identifiers to lower case, SQLite keeps them as written).
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// Column `column` read as `T`; `Option<T>` reads SQL `NULL` as `None`.
    pub fn get<T: FromValue>(&self, column: &str) -> Result<T, ColumnError> {
        let value = self
            .value(column)
            .ok_or_else(|| ColumnError::NoColumn { column: column.to_owned(), columns: self.columns.to_vec() })?;
        T::from_value(value).ok_or_else(|| ColumnError::WrongType {
            column: column.to_owned(),
            expected: T::EXPECTED,
            found: value.kind(),
        })
    }

    /// Column `column` as an `i64`.
    pub fn get_i64(&self, column: &str) -> Result<i64, ColumnError> {
        self.get(column)
    }

    /// Column `column` as an `f64` (an integer column converts).
    pub fn get_f64(&self, column: &str) -> Result<f64, ColumnError> {
        self.get(column)
    }

    /// Column `column` as a `bool` (an integer 0 or 1 converts).
    pub fn get_bool(&self, column: &str) -> Result<bool, ColumnError> {
        self.get(column)
    }

    /// Column `column` as a string slice borrowed from the row.
    pub fn get_str(&self, column: &str) -> Result<&'a str, ColumnError> {
        let value = self.column(column)?;
        value.as_str().ok_or_else(|| ColumnError::WrongType {
            column: column.to_owned(),
            expected: "text",
            found: value.kind(),
        })
    }

    /// Column `column` as bytes borrowed from the row.
    pub fn get_bytes(&self, column: &str) -> Result<&'a [u8], ColumnError> {
        let value = self.column(column)?;
        value.as_bytes().ok_or_else(|| ColumnError::WrongType {
            column: column.to_owned(),
            expected: "bytes",
            found: value.kind(),
        })
    }

    /// The raw value of column `column`, if the row has such a column.
    pub fn value(&self, column: &str) -> Option<&'a Value> {
        let index = self
            .columns
            .iter()
            .position(|c| c == column)
            .or_else(|| self.columns.iter().position(|c| c.eq_ignore_ascii_case(column)))?;
        self.values.get(index)
    }

    /// Every value of the row, in column order.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }

    fn column(&self, column: &str) -> Result<&'a Value, ColumnError> {
        self.value(column)
            .ok_or_else(|| ColumnError::NoColumn { column: column.to_owned(), columns: self.columns.to_vec() })
    }
}

/// A column could not be read as asked: the query and the code reading it
/// disagree. That is a bug, not a transient condition, so `?` turns it into
/// [`BranchError::Failure`](crate::BranchError::Failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnError {
    /// [`Rows::get`] asked for a row past the end.
    NoRow { index: usize, len: usize },
    /// The result has no column of that name.
    NoColumn { column: String, columns: Vec<String> },
    /// The column holds a value of another type (or `NULL` read as a non-`Option`).
    WrongType { column: String, expected: &'static str, found: &'static str },
}

impl fmt::Display for ColumnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnError::NoRow { index, len } => {
                write!(f, "no row {index}: the query returned {len} row(s)")
            }
            ColumnError::NoColumn { column, columns } => {
                write!(f, "no column {column:?} in the result (columns: {})", columns.join(", "))
            }
            ColumnError::WrongType { column, expected, found } => {
                write!(f, "column {column:?} holds {found}, expected {expected}")
            }
        }
    }
}

impl std::error::Error for ColumnError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Rows {
        Rows::new(
            vec!["id".into(), "balance".into(), "note".into()],
            vec![vec!["alice".into(), 70.into(), Value::Null], vec!["bob".into(), 130.into(), "vip".into()]],
        )
    }

    #[test]
    fn columns_are_read_by_name_and_type() {
        let rows = accounts();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.get::<i64>(1, "balance"), Ok(130));
        assert_eq!(rows.get::<String>(0, "id"), Ok("alice".to_owned()));
        let names: Vec<&str> = rows.iter().map(|r| r.get_str("id").unwrap()).collect();
        assert_eq!(names, ["alice", "bob"]);
    }

    #[test]
    fn column_names_fall_back_to_a_case_insensitive_match() {
        let rows = accounts();
        assert_eq!(rows.first().unwrap().get_i64("BALANCE"), Ok(70));
    }

    #[test]
    fn null_reads_as_none_and_is_an_error_for_plain_types() {
        let rows = accounts();
        let row = rows.first().unwrap();
        assert_eq!(row.get::<Option<String>>("note"), Ok(None));
        assert_eq!(
            row.get::<String>("note"),
            Err(ColumnError::WrongType { column: "note".into(), expected: "text", found: "null" })
        );
    }

    #[test]
    fn missing_rows_and_columns_are_reported_with_context() {
        let rows = accounts();
        let e = rows.get::<i64>(5, "balance").unwrap_err();
        assert_eq!(e.to_string(), "no row 5: the query returned 2 row(s)");
        let e = rows.get::<i64>(0, "amount").unwrap_err();
        assert_eq!(e.to_string(), "no column \"amount\" in the result (columns: id, balance, note)");
        let e = rows.first().unwrap().get_i64("id").unwrap_err();
        assert_eq!(e.to_string(), "column \"id\" holds text, expected int");
    }

    #[test]
    fn empty_result_has_no_first_row() {
        let rows = Rows::new(vec!["id".into()], vec![]);
        assert!(rows.is_empty());
        assert!(rows.first().is_none());
        assert_eq!((&rows).into_iter().count(), 0);
    }
}
