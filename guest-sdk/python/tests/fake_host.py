"""The test doubles of the generated bindings, put in place before `wasmtx` is
imported, and a fake host that answers and records the calls made through them.

Every test module imports this module first: it puts `tests/bindings` (the
doubles) and the SDK's directory at the front of `sys.path`, so that `wasmtx`
finds `wit_world` and `componentize_py_types` as it does inside a component.
"""

import os
import sys
import unittest
from typing import Any, List, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(_HERE), os.path.join(_HERE, "bindings")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from componentize_py_types import Err  # noqa: E402
from wit_world.imports import db as wit_db  # noqa: E402
from wit_world.imports import log as wit_log  # noqa: E402
from wit_world.imports import types as wit_types  # noqa: E402

import wasmtx  # noqa: E402
from wasmtx import _bindings, branch  # noqa: E402

if not _bindings.AVAILABLE:
    raise ImportError("wasmtx did not pick up the binding doubles in tests/bindings")


def wit_rows(columns: List[str], *rows: List[Any]) -> Any:
    """A WIT `rows` record."""
    return wit_db.Rows(columns=list(columns), values=[list(row) for row in rows])


class FakeHost:
    """Answers `db.execute` and `db.query` with the answers given to `answer`,
    in order (an `int` for execute, a WIT `Rows` for query, a WIT `DbError`
    to refuse), and records every call and log line."""

    def __init__(self) -> None:
        self.statements: List[Tuple[str, str, List[Any]]] = []
        self.lines: List[Tuple[str, str]] = []
        self._answers: List[Any] = []

    def answer(self, *answers: Any) -> None:
        """Queues answers for the next calls."""
        self._answers.extend(answers)

    def _next(self, kind: str, sql: str, params: List[Any]) -> Any:
        self.statements.append((kind, sql, list(params)))
        if not self._answers:
            raise AssertionError(f"unexpected {kind}: {sql}")
        answer = self._answers.pop(0)
        if isinstance(answer, wit_db.DbError):
            raise Err(answer)
        return answer

    def execute(self, sql: str, params: List[Any]) -> int:
        return self._next("execute", sql, params)

    def query(self, sql: str, params: List[Any]) -> Any:
        return self._next("query", sql, params)

    def log(self, level: Any, message: str) -> None:
        self.lines.append((level.name, message))

    def unanswered(self) -> List[Any]:
        """The answers no call took."""
        return list(self._answers)


class HostTestCase(unittest.TestCase):
    """A test with a fresh fake host installed, and the branch functions it
    registers removed afterwards."""

    def setUp(self) -> None:
        self.host = FakeHost()
        wit_db.host = wit_log.host = self.host
        registered = dict(branch._FUNCTIONS)

        def restore() -> None:
            wit_db.host = wit_log.host = None
            branch._FUNCTIONS.clear()
            branch._FUNCTIONS.update(registered)

        self.addCleanup(restore)


__all__ = ["Err", "FakeHost", "HostTestCase", "wasmtx", "wit_db", "wit_log", "wit_rows", "wit_types"]
