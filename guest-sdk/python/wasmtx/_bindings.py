"""The modules componentize-py generates from `wit/runtime.wit`, in one place.

Only this module names `wit_world` and `componentize_py_types`. componentize-py
writes them at build time, so inside a component they are always there. Run
natively (a unit test of an app, or of this SDK without test doubles) they are
absent: then `AVAILABLE` is False and every name below is None, and the callers
behave as the Rust SDK does outside the host (`db` raises a `DbError`, `log`
writes to stderr).
"""

from typing import Any

AVAILABLE: bool
Err: Any
exports: Any
db: Any
log: Any
types: Any

try:
    from componentize_py_types import Err
    from wit_world import exports
    from wit_world.imports import db, log, types

    AVAILABLE = True
except ModuleNotFoundError as missing:
    # Only the absence of the generated modules themselves means "native";
    # any other missing module is a real error.
    if (missing.name or "").split(".")[0] not in ("wit_world", "componentize_py_types"):
        raise
    Err = exports = db = log = types = None
    AVAILABLE = False


def wit_string(text: str) -> str:
    """`text` as the component model can carry it: a lone surrogate (which a
    Python `str` may hold, UTF-8 cannot) is written as its `\\udXXX` escape
    instead of trapping the instance when the string is lowered."""
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
