"""Double of `wit_world.imports.db`: the generated types, and `execute` and
`query` answered by the fake host that `fake_host.py` installs."""

from dataclasses import dataclass
from typing import Any, List, Optional, Union


@dataclass
class Value_Null:
    pass


@dataclass
class Value_Boolean:
    value: bool


@dataclass
class Value_Int:
    value: int


@dataclass
class Value_Float:
    value: float


@dataclass
class Value_Text:
    value: str


@dataclass
class Value_Bytes:
    value: bytes


Value = Union[Value_Null, Value_Boolean, Value_Int, Value_Float, Value_Text, Value_Bytes]


@dataclass
class Rows:
    columns: List[str]
    values: List[List[Value]]


@dataclass
class DbError:
    code: Optional[str]
    message: str


# Set by fake_host.FakeHost; None means no test installed one.
host: Any = None


def execute(sql: str, params: List[Value]) -> int:
    if host is None:
        raise AssertionError("db.execute called with no fake host installed")
    return host.execute(sql, params)


def query(sql: str, params: List[Value]) -> Rows:
    if host is None:
        raise AssertionError("db.query called with no fake host installed")
    return host.query(sql, params)
