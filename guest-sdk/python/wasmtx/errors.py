"""How a branch function says it did not succeed: raise `Failure` or `Retry`.

The host acts on the kind, not on the message: a `Failure` is never retried, a
`Retry` makes the host call the same op again later. Either way it rolls back
everything the call wrote. What other exceptions become is decided in
`wasmtx.branch` (a `DbError` and any unexpected exception are retries).
"""


class BranchError(Exception):
    """Why a branch function did not succeed; the base of `Failure` and `Retry`.

    Raise one of the two subclasses, not this class.
    """

    def __init__(self, message: object) -> None:
        """`message` (converted with `str`) is what the host records and reports."""
        text = str(message)
        super().__init__(text)
        self.message: str = text

    def __str__(self) -> str:
        """The message alone, as given."""
        return self.message

    def __repr__(self) -> str:
        """`Failure('insufficient funds in alice')`."""
        return f"{type(self).__name__}({self.message!r})"

    def __eq__(self, other: object) -> bool:
        """Two errors are equal if they have the same kind and message."""
        if not isinstance(other, BranchError):
            return NotImplemented
        return self.is_retry == other.is_retry and self.message == other.message

    def __hash__(self) -> int:
        """Consistent with `__eq__`."""
        return hash((self.is_retry, self.message))

    @property
    def is_retry(self) -> bool:
        """True for a `Retry` (and its subclasses)."""
        return isinstance(self, Retry)


class Failure(BranchError):
    """A business refusal ("insufficient funds in alice"): never retried.

    A saga action that raises it fails, and the transaction rolls back (its
    `rollback_reason` is the message); a direct call answers `422`. Do not
    raise it from a compensation: compensations must succeed eventually.
    """


class Retry(BranchError):
    """A transient problem (a lock conflict, a lost connection): the host rolls
    the local transaction back and calls the same op again later, with
    `Context.attempt` incremented. A direct call answers `503`."""
