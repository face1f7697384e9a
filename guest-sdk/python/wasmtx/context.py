"""`Context`: what the host tells a branch function about the invocation
(transaction, branch, `Op`, attempt, headers). Read-only for the function.
"""

import enum
from dataclasses import dataclass
from typing import Optional, Tuple


class Op(enum.Enum):
    """Which step of the protocol the host is asking the branch to run.

    One function usually serves one op (`trans-out` as a saga action,
    `trans-out-revert` as its compensation), so most functions never look at
    it; it is there for logging and for functions shared between ops. The
    value is the WIT name: `Op.ACTION.value == "action"`.
    """

    ACTION = "action"
    """Saga forward step."""
    COMPENSATE = "compensate"
    """Saga undo step."""
    TRY = "try"
    """TCC phase 1."""
    CONFIRM = "confirm"
    """TCC phase 2, commit."""
    CANCEL = "cancel"
    """TCC phase 2, rollback."""
    COMMIT = "commit"
    """XA / workflow commit callback."""
    ROLLBACK = "rollback"
    """XA / workflow rollback callback."""
    CALL = "call"
    """A direct call outside any global transaction (`POST /v1/modules/{name}/call/{function}`)."""

    def __str__(self) -> str:
        """The WIT name: `"action"`, `"compensate"`, ..."""
        return self.value

    @property
    def is_undo(self) -> bool:
        """True for the ops that undo earlier work (`compensate`, `cancel`,
        `rollback`); these must not fail for business reasons."""
        return self in (Op.COMPENSATE, Op.CANCEL, Op.ROLLBACK)


@dataclass(frozen=True)
class Context:
    """The invocation a branch function runs in.

    The SDK builds it from what the host passes; the constructor is public so
    that an app can unit-test its functions natively:

    >>> ctx = Context(Op.ACTION, gid="g-1", branch_id="01", headers=(("tenant", "t1"),))
    >>> ctx.header("Tenant")
    't1'
    >>> ctx.attempt
    1
    """

    op: Op = Op.CALL
    """The protocol step being run."""
    gid: str = ""
    """Global transaction id; empty for a direct call."""
    branch_id: str = ""
    """Branch id inside the transaction (`"01"`, `"02"`, ...); empty for a direct call."""
    attempt: int = 1
    """1 on the first attempt, incremented on every retry of the same op."""
    headers: Tuple[Tuple[str, str], ...] = ()
    """The extra headers given with the transaction, in order."""

    def __post_init__(self) -> None:
        """Refuses an `op` that is not an `Op`, and stores `headers` as a tuple
        of pairs (a list is accepted)."""
        if not isinstance(self.op, Op):
            raise TypeError(f"Context.op must be an Op, not {type(self.op).__name__}")
        object.__setattr__(self, "headers", tuple((str(n), str(v)) for n, v in self.headers))

    def header(self, name: str) -> Optional[str]:
        """The value of the first header called `name`, ignoring ASCII case; None if there is none."""
        wanted = _ascii_lower(name)
        for header, value in self.headers:
            if _ascii_lower(header) == wanted:
                return value
        return None


def _ascii_lower(s: str) -> str:
    # As Rust's eq_ignore_ascii_case: only A-Z fold.
    return s.translate(_ASCII_UPPER_TO_LOWER)


_ASCII_UPPER_TO_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
