"""The branch's local transaction: `execute` and `query` over the WIT `db` import.

Every call runs inside the one database transaction the host opened for this
invocation; it commits only if the branch function returns. There is no
`BEGIN`/`COMMIT` to write, and none may be issued.

Parameters are Python values, bound positionally to `$1, $2, ...`:

| Python | WIT `value` |
|---|---|
| `None` | `null` |
| `bool` | `boolean` |
| `int` (i64 range; anything else is a `ValueError`) | `int` |
| `float` | `float` |
| `str` | `text` |
| `bytes`, `bytearray`, `memoryview` | `bytes` |

Column values come back as the same Python types. This module does not decide
what an error means for the transaction: a `DbError` that leaves the branch
function becomes a `Retry`, which is right for transient errors only. Catch it
and check `is_unique_violation()` first where an error has business meaning.

Outside a component (a native unit test) there is no host: every call raises a
`DbError` saying so, after checking its parameters.
"""

from collections.abc import Mapping
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from . import _bindings
from .errors import Failure

_OUTSIDE_HOST = "wasmtx.db works only inside the wasmtx host (a component built with componentize-py)"


class DbError(Exception):
    """A statement the database refused (constraint violated, syntax error,
    serialization conflict, connection lost, ...).

    Uncaught, it becomes `Retry(str(error))`. An error with business meaning,
    such as a duplicate key, must be caught and answered with a `Failure` (or
    handled), or the branch is retried for ever:

    ```python
    try:
        db.execute("INSERT INTO accounts (id, balance) VALUES ($1, 0)", account)
    except db.DbError as e:
        if e.is_unique_violation():
            raise Failure(f"account {account} exists")
        raise
    ```
    """

    def __init__(self, code: Optional[str], message: str) -> None:
        """`code`: the SQLSTATE on Postgres (`"23505"`, `"40001"`), the extended
        result code on SQLite (`"2067"`); None when the error did not come from
        the database server. `message`: the database's own message."""
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        """`database error 40001: could not serialize access ...` (without a code: `database error: ...`)."""
        if self.code is not None:
            return f"database error {self.code}: {self.message}"
        return f"database error: {self.message}"

    def is_unique_violation(self) -> bool:
        """A `UNIQUE` or `PRIMARY KEY` constraint was violated: Postgres `23505`,
        SQLite `2067` (`SQLITE_CONSTRAINT_UNIQUE`) or `1555` (`SQLITE_CONSTRAINT_PRIMARYKEY`)."""
        return self.code in ("23505", "2067", "1555")

    def is_foreign_key_violation(self) -> bool:
        """A `FOREIGN KEY` constraint was violated: Postgres `23503`, SQLite `787`."""
        return self.code in ("23503", "787")


class ColumnError(Failure):
    """A column could not be read as asked: the query and the code reading it
    disagree. No retry fixes that, so it is a `Failure`."""


class MissingColumn(ColumnError, KeyError, AttributeError):
    """The result has no column of that name. Also a `KeyError` and an
    `AttributeError`, so that `row.get(...)`, `"x" in row`, `hasattr(row, "x")`
    and `getattr(row, "x", default)` work as usual."""


def execute(sql: str, *params: Any) -> int:
    """Runs a statement (`INSERT`, `UPDATE`, `DELETE`, DDL) and returns the
    number of rows it affected.

    ```python
    changed = db.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", 30, "alice")
    ```

    Raises `DbError` if the database refuses it, `TypeError`/`ValueError` for
    a parameter that has no WIT `value` (see the module's table).
    """
    checked = _params(sql, params)
    if not _bindings.AVAILABLE:
        raise DbError(None, _OUTSIDE_HOST)
    try:
        return int(_bindings.db.execute(_bindings.wit_string(sql), [_to_wit(p) for p in checked]))
    except _bindings.Err as e:
        raise DbError(e.value.code, e.value.message) from None


def query(sql: str, *params: Any) -> "Rows":
    """Runs a query and returns every row it produced.

    ```python
    for row in db.query("SELECT id, balance FROM accounts ORDER BY id"):
        log.info(f"{row['id']}: {row.balance}")
    ```

    Raises as `execute` does.
    """
    checked = _params(sql, params)
    if not _bindings.AVAILABLE:
        raise DbError(None, _OUTSIDE_HOST)
    try:
        rows = _bindings.db.query(_bindings.wit_string(sql), [_to_wit(p) for p in checked])
    except _bindings.Err as e:
        raise DbError(e.value.code, e.value.message) from None
    return Rows(rows.columns, [[_from_wit(v) for v in row] for row in rows.values])


class Row(Mapping):
    """One row of `Rows`: a read-only mapping from column name to value.

    `row["balance"]` and `row.balance` read a column (attribute access works
    for names that are not methods of the row, `get`, `keys`, `values`,
    `items`, `get_int`, ..., and do not start with `_`; `row["..."]` always
    works). A name matches exactly
    or, failing that, ignoring ASCII case: Postgres folds unquoted identifiers
    to lower case, SQLite keeps them as written. A missing column raises
    `MissingColumn` (a `Failure`). SQL `NULL` is None.

    The typed readers (`get_int`, `get_str`, ...) also refuse `NULL` and a
    value of another type, with `ColumnError` (a `Failure`):
    `column "balance" holds text, expected int`.
    """

    __slots__ = ("_columns", "_values")

    def __init__(self, columns: Sequence[str], values: Sequence[Any]) -> None:
        """A row with these column names and values, in the same order."""
        if len(columns) != len(values):
            raise ValueError(f"a row of {len(columns)} column(s) cannot hold {len(values)} value(s)")
        self._columns: Tuple[str, ...] = tuple(columns)
        self._values: Tuple[Any, ...] = tuple(values)

    def _index(self, column: str) -> int:
        try:
            return self._columns.index(column)
        except ValueError:
            pass
        if isinstance(column, str):
            wanted = _ascii_lower(column)
            for i, name in enumerate(self._columns):
                if _ascii_lower(name) == wanted:
                    return i
        raise MissingColumn(
            f"no column {_quote(column)} in the result (columns: {', '.join(self._columns)})"
        )

    def __getitem__(self, column: str) -> Any:
        """The value of `column`; raises `MissingColumn` if there is none."""
        return self._values[self._index(column)]

    def __getattr__(self, column: str) -> Any:
        """`row.balance` is `row["balance"]`."""
        # Private and dunder names are never columns: this keeps copy, pickle
        # and a half-built row from recursing into the lookup.
        if column.startswith("_"):
            raise AttributeError(column)
        return self[column]

    def __iter__(self) -> Iterator[str]:
        """The column names, in order."""
        return iter(self._columns)

    def __len__(self) -> int:
        """The number of columns."""
        return len(self._columns)

    def __repr__(self) -> str:
        """`Row(id='alice', balance=70)`."""
        return "Row(" + ", ".join(f"{c}={v!r}" for c, v in zip(self._columns, self._values)) + ")"

    def _typed(self, column: str, kinds: Tuple[str, ...], expected: str) -> Any:
        value = self[column]
        if _kind(value) not in kinds:
            raise ColumnError(f"column {_quote(column)} holds {_kind(value)}, expected {expected}")
        return value

    def get_int(self, column: str) -> int:
        """The column as an `int` (an i64)."""
        return self._typed(column, ("int",), "int")

    def get_float(self, column: str) -> float:
        """The column as a `float`; an integer column converts."""
        return float(self._typed(column, ("float", "int"), "float or int"))

    def get_bool(self, column: str) -> bool:
        """The column as a `bool`; an integer 0 or 1 converts (SQLite stores booleans as integers)."""
        value = self[column]
        if isinstance(value, bool):
            return value
        if _kind(value) == "int" and value in (0, 1):
            return value == 1
        raise ColumnError(f"column {_quote(column)} holds {_kind(value)}, expected boolean or int 0/1")

    def get_str(self, column: str) -> str:
        """The column as a `str`."""
        return self._typed(column, ("text",), "text")

    def get_bytes(self, column: str) -> bytes:
        """The column as `bytes`."""
        return self._typed(column, ("bytes",), "bytes")


class Rows(list):
    """Every row a query produced: a list of `Row`, plus the column names."""

    def __init__(self, columns: Sequence[str], values: Sequence[Sequence[Any]]) -> None:
        """Rows with these column names; `values` holds one sequence per row, in column order."""
        super().__init__(Row(columns, row) for row in values)
        self.columns: List[str] = list(columns)
        """The column names, in order (also when there is no row)."""

    def first(self) -> Optional[Row]:
        """The first row, or None if there is none: the usual way to read a single-row result."""
        return self[0] if self else None


# --- values ---------------------------------------------------------------------

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _kind(value: Any) -> str:
    """The WIT name of a column value's variant, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    return "bytes"


def _params(sql: str, params: Sequence[Any]) -> List[Tuple[str, Any]]:
    """The parameters checked, as `(kind, value)` pairs; raises for one with no WIT `value`."""
    if not isinstance(sql, str):
        raise TypeError(f"the SQL must be a str, not {type(sql).__name__}")
    return [_checked(value, position) for position, value in enumerate(params, start=1)]


def _to_wit(checked: Tuple[str, Any]) -> Any:
    """The WIT `value` of a parameter checked by `_checked`."""
    kind, plain = checked
    wit = _bindings.db
    if kind == "null":
        return wit.Value_Null()
    return {
        "boolean": wit.Value_Boolean,
        "int": wit.Value_Int,
        "float": wit.Value_Float,
        "text": wit.Value_Text,
        "bytes": wit.Value_Bytes,
    }[kind](plain)


def _checked(value: Any, position: int) -> Tuple[str, Any]:
    """`value` as the WIT variant it binds as and its plain Python value;
    `position` (from 1) names it in errors."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("boolean", bool(value))
    if isinstance(value, int):
        if not _I64_MIN <= value <= _I64_MAX:
            raise ValueError(f"parameter ${position}: the integer {value} is outside the i64 range")
        return ("int", int(value))
    if isinstance(value, float):
        return ("float", float(value))
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError(f"parameter ${position}: the string has a lone surrogate") from None
        return ("text", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(value))
    hint = " (give parameters as separate arguments: db.execute(sql, a, b))" if isinstance(value, (list, tuple)) else ""
    raise TypeError(
        f"parameter ${position}: cannot bind a {type(value).__name__}; use None, bool, int, float, str or bytes{hint}"
    )


def _from_wit(value: Any) -> Any:
    """The Python value of a WIT `value`."""
    wit = _bindings.db
    if isinstance(value, wit.Value_Null):
        return None
    if isinstance(value, wit.Value_Bytes):
        return bytes(value.value)
    return value.value


def _quote(s: str) -> str:
    # As Rust's `{:?}` for the names in column messages: "balance".
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ascii_lower(s: str) -> str:
    return s.translate(_ASCII_UPPER_TO_LOWER)


_ASCII_UPPER_TO_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
