"""`Handler`: the component's export of the WIT `handler` interface.

componentize-py looks for a class called `Handler` in the app module, so the
app imports it: `from wasmtx import Handler`. It answers `functions()` with the
registered names and turns `invoke` into `wasmtx.branch.dispatch`, converting
the WIT context in and the errors out. Nothing may raise past `invoke` but the
WIT error (`componentize_py_types.Err`): any other exception would trap the
instance.
"""

from typing import Any, List

from . import _bindings, branch
from .context import Context, Op
from .errors import BranchError, Retry

_Base: Any = _bindings.exports.Handler if _bindings.AVAILABLE else object


class Handler(_Base):
    """The `handler` export: `functions` and `invoke` over the functions
    registered with `@branch.function`."""

    def functions(self) -> List[str]:
        """The registered names, in registration order."""
        return branch.functions()

    def invoke(self, function: str, ctx: Any, payload: bytes) -> bytes:
        """Runs `function`; raises `Err(BranchError_Failure | BranchError_Retry)` when it does not succeed."""
        try:
            return branch.dispatch(function, context_from_wit(ctx), bytes(payload))
        except BranchError as e:
            error = e
        except BaseException as e:  # noqa: BLE001 - a bug here must not trap the instance
            error = Retry(f"{function} failed: {type(e).__name__}: {e}")
        # Raised outside the `except` blocks: the WIT error is a frozen
        # dataclass and needs no exception context.
        raise to_wit_error(error)


def context_from_wit(ctx: Any) -> Context:
    """The `Context` of a WIT `branch-context`."""
    return Context(
        op=Op[ctx.op.name],
        gid=ctx.gid,
        branch_id=ctx.branch_id,
        attempt=ctx.attempt,
        headers=tuple((name, value) for name, value in ctx.headers),
    )


def to_wit_error(error: BranchError) -> BaseException:
    """The `Err` carrying the WIT `branch-error` of `error`."""
    message = _bindings.wit_string(error.message)
    variant = _bindings.types.BranchError_Retry if error.is_retry else _bindings.types.BranchError_Failure
    return _bindings.Err(variant(message))
