"""Branch functions by name: `@branch.function("trans-out")` registers a plain
function, `dispatch` runs one the way the host's `invoke` asks.

A branch function has the shape `(ctx: Context, payload: T) -> result`; its
payload annotation `T` says how the payload is read (see `wasmtx.payload`).
`dispatch` is the one place that decides what leaves a call, so that nothing
escapes as anything but `Failure` or `Retry` (an exception leaving the
component's `invoke` would trap the instance):

| the call | answer |
|---|---|
| returns | the result, encoded (`None` is `null`) |
| the name is not registered | `Failure("unknown function ...")` |
| the payload does not decode | `Failure("invalid payload for <function>: ...")` |
| raises `Failure` / `Retry` | that error, unchanged |
| raises `DbError` (uncaught) | `Retry(str(error))`: `database error <code>: <message>` |
| raises anything else | `Retry("<function> failed: <Type>: <message>")` |
| returns what JSON cannot hold | `Failure("cannot encode the output of <function>: ...")` |

Registering happens when the app module is imported, which componentize-py
does at build time: a bad registration (a name given twice, a payload type it
cannot decode) fails the build.
"""

import inspect
import json
import typing
from typing import Any, Callable, Dict, List, Optional, TypeVar

from .context import Context
from .db import DbError
from .errors import BranchError, Failure, Retry
from .payload import Decoder, InvalidPayload, OutputError, decoder_for, encode

F = TypeVar("F", bound=Callable[..., Any])


class _Raw(Decoder):
    """`bytes`: the payload as it came, not parsed."""

    def decode(self, payload: bytes) -> Any:
        return bytes(payload)


class _Registered:
    """A registered function and the decoder of its payload (built on first use
    when its annotation names a class defined after the function)."""

    def __init__(self, name: str, run: Callable[[Context, Any], Any]) -> None:
        self.name = name
        self.run = run
        self._decoder: Optional[Decoder] = None
        try:
            self._decoder = self._build_decoder()
        except NameError:
            pass

    def decoder(self) -> Decoder:
        if self._decoder is None:
            self._decoder = self._build_decoder()
        return self._decoder

    def _build_decoder(self) -> Decoder:
        annotation = _payload_annotation(self.name, self.run)
        if annotation is bytes:
            return _Raw()
        return decoder_for(annotation)


_FUNCTIONS: Dict[str, _Registered] = {}


def function(name: str) -> Callable[[F], F]:
    """Registers the decorated function as the branch function `name`.

    ```python
    @branch.function("trans-out")
    def trans_out(ctx: Context, t: Transfer) -> None:
        ...
    ```

    The function takes the `Context` and the payload, read as its second
    parameter's annotation says: a dataclass or a `dict` (from a JSON object),
    `bytes` (the raw payload, not parsed), or `list[...]`, `str`, `int`,
    `float`, `bool`, `Optional[...]`, `Any` (no annotation is `Any`). It
    returns the output (see `wasmtx.payload.encode`) or raises `Failure` or
    `Retry`. The function itself is returned unchanged, so it can be called
    directly in tests.

    Raises `ValueError` if `name` is empty or already registered, `TypeError`
    if the function is async, does not take two parameters, or its payload
    type cannot be decoded.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a branch function name must be a non-empty string, not {name!r}")

    def register(run: F) -> F:
        if inspect.iscoroutinefunction(run) or inspect.isasyncgenfunction(run):
            raise TypeError(f"branch function {name!r} must be a plain function, not async")
        if name in _FUNCTIONS:
            raise ValueError(f"branch function {name!r} is registered twice")
        _FUNCTIONS[name] = _Registered(name, run)
        return run

    return register


def functions() -> List[str]:
    """The registered names, in registration order (what the host's `functions()` gets)."""
    return list(_FUNCTIONS)


def dispatch(name: str, ctx: Context, payload: bytes) -> bytes:
    """Runs the function registered as `name` with `payload`, as the host's
    `invoke` does, and returns its encoded output.

    Raises only `Failure` or `Retry` (see the table in this module's doc), so a
    test can check exactly what the host would get:

    ```python
    with self.assertRaises(Failure):
        branch.dispatch("trans-out", Context(), b'{"from":"alice"}')
    ```
    """
    registered = _FUNCTIONS.get(name)
    if registered is None:
        raise Failure(f"unknown function {_quote(name)} (this module has: {', '.join(_FUNCTIONS)})")
    try:
        try:
            request = registered.decoder().decode(payload)
        except InvalidPayload as e:
            raise Failure(f"invalid payload for {name}: {e}") from None
        output = registered.run(ctx, request)
        try:
            return encode(output)
        except OutputError as e:
            raise Failure(f"cannot encode the output of {name}: {e}") from None
    except BranchError:
        raise
    except DbError as e:
        # Uncaught, a database error is transient, as `?` makes it in Rust.
        raise Retry(str(e)) from None
    except BaseException as e:  # noqa: BLE001 - anything else would trap the instance
        raise Retry(_describe(name, e)) from None


def _describe(name: str, e: BaseException) -> str:
    detail = str(e)
    return f"{name} failed: {type(e).__name__}: {detail}" if detail else f"{name} failed: {type(e).__name__}"


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _payload_annotation(name: str, run: Callable[..., Any]) -> Any:
    """The annotation of the payload (second) parameter of `run`; `Any` if none."""
    try:
        parameters = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError) as e:
        raise TypeError(f"branch function {name!r}: cannot read its signature ({e})") from None
    positional = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(positional) != 2:
        raise TypeError(
            f"branch function {name!r} must take two parameters, (ctx: Context, payload), "
            f"not {len(positional)}"
        )
    payload = positional[1]
    if payload.annotation is payload.empty:
        return Any
    hints = typing.get_type_hints(run)
    return hints.get(payload.name, Any)
