"""Double of componentize-py's `componentize_py_types`: `Err` is how a WIT
`result` error is raised (by imports) and returned (by exports)."""

from dataclasses import FrozenInstanceError, dataclass
from typing import Any


@dataclass(frozen=True)
class Err(Exception):
    """The failure case of a WIT `result`, as an exception: frozen, as the
    generated one (see below for the one difference)."""

    value: Any


def _setattr(self: Err, name: str, value: Any) -> None:
    # Unlike the generated `Err`, Python's own exception attributes
    # (`__traceback__`, ...) may be assigned, so that unittest can report an
    # `Err` that a failing test did not expect instead of crashing the run.
    if not name.startswith("__"):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


Err.__setattr__ = _setattr  # type: ignore[method-assign]
