"""Payloads in, outputs out: JSON read as strictly as serde_json reads it in the
Rust SDK, into the type a branch function's annotation names.

`parse` turns the payload bytes into plain JSON values; a `Decoder` (built once
per function, from its annotation, by `decoder_for`) checks them against the
type and builds the dataclasses; `encode` writes a function's result. Nothing
here raises anything but `InvalidPayload` (from `parse` and decoders),
`OutputError` (from `encode`) and, at registration, `TypeError` for an
annotation it cannot decode into: `wasmtx.branch` turns the first two into
failures.

The rules, and why (each one is what serde_json does):

- An empty or blank payload is JSON `null`.
- Nesting deeper than 128 levels is refused, and checked before `json.loads`
  runs: it recurses in C per level and would exhaust the wasm stack (a trap)
  long before Python's recursion limit.
- `NaN` and `Infinity` are not JSON; a number that overflows a double
  (`1e400`) is refused where the function reads it; `-0` is the float
  `-0.0`, not an integer.
- An `int` is an integer literal in the i64 range (`true` and `30.0` are not);
  a `float` accepts any number.
- A dataclass is read only from a JSON object (the Rust example refuses arrays,
  which serde would read as a struct): at the top level the refusal is
  `payload must be a JSON object`. Inside, `<name> must be a JSON object`
  (`Account` gives `account`), reported only if nothing else is wrong, as
  serde reports the example's `Object<T>`.
- A field given twice is refused (`duplicate field`), a missing one too unless
  it has a default or is `Optional` (then None); unknown fields, repeated or
  not, are ignored. A `dict` or `Any` takes the last of repeated keys.
- A string with a lone surrogate (`"\\ud800"`, which `json.loads` accepts) is
  refused wherever the function would receive it: the component model cannot
  carry it.
"""

import dataclasses
import json
import keyword
import math
import re
import types
import typing
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
U64_MAX = 2**64 - 1
MAX_DEPTH = 128
"""The deepest nesting of arrays and objects accepted, as serde_json's limit."""

# Bytes that Rust's `u8::is_ascii_whitespace` accepts: a payload made only of
# them reads as `null`.
_BLANK = b" \t\n\r\x0c"
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


class InvalidPayload(ValueError):
    """The payload does not decode as the function's input type; the message
    says why (`missing field `amount``). Becomes `invalid payload for <function>: <message>`."""


class OutputError(ValueError):
    """A function's result cannot be written as JSON. Becomes `cannot encode the output of <function>: <message>`."""


# --- parsing --------------------------------------------------------------------


class _JsonObject(dict):
    """A JSON object that keeps its key-value pairs in order, repeats included:
    `json.loads` keeps the last value of a repeated key silently, serde refuses
    a repeated field."""

    def __init__(self, pairs: List[Tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def parse(payload: bytes) -> Any:
    """The payload as plain JSON values (objects keep their repeated keys for
    the decoders); an empty or blank payload is None (JSON `null`).

    Raises `InvalidPayload` for bytes that are not UTF-8, malformed JSON, too
    deep a nesting, and `NaN`/`Infinity`. A number beyond a double's range is
    an infinite float here; the decoders refuse it where it is read.
    """
    if not payload.strip(_BLANK):
        return None
    try:
        text = payload.decode()
    except UnicodeDecodeError as e:
        raise InvalidPayload(f"not UTF-8 ({e})") from None
    depth = 0
    for bracket in _BRACKET.findall(_STRING_LITERAL.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            raise InvalidPayload(f"nesting deeper than {MAX_DEPTH}")
    try:
        return json.loads(
            text, object_pairs_hook=_JsonObject, parse_int=_read_int, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError) as e:
        raise InvalidPayload(str(e)) from None


def _read_int(literal: str) -> "int | float":
    # serde_json reads -0 as a float (-0.0), so it is not an integer there.
    return -0.0 if literal == "-0" else int(literal)


def _reject_constant(name: str) -> NoReturn:
    # Python accepts NaN and Infinity; JSON does not.
    raise ValueError(f"invalid literal {name}")


# --- decoding -------------------------------------------------------------------


class _Decoding:
    """The state of one decoding: the first `<name> must be a JSON object`
    refusal, held back until the whole payload is read (serde first decodes
    everything, then the example's `Object<T>::read` refuses)."""

    def __init__(self) -> None:
        self.not_an_object: Optional[str] = None


class Decoder:
    """Reads parsed JSON as one Python type. Built by `decoder_for`."""

    def decode(self, payload: bytes) -> Any:
        """Parses `payload` and reads it as this decoder's type; raises `InvalidPayload`."""
        state = _Decoding()
        value = self.read(parse(payload), "", state)
        if state.not_an_object is not None:
            raise InvalidPayload(state.not_an_object)
        return value

    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        """`value` (from `parse`) as this decoder's type; `path` names it in messages."""
        raise NotImplementedError

    # Whether a missing field of this type reads as None (serde's `Option`).
    missing_is_none = False


def _subject(path: str) -> str:
    return f"field `{path}`" if path else "payload"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong_type(path: str, expected: str, value: Any) -> InvalidPayload:
    return InvalidPayload(f"{_subject(path)} must be {expected}, got {_kind(value)}")


def _checked_float(value: float, path: str) -> float:
    # Python reads 1e400 as inf; serde_json refuses it when it reads it (and
    # skips it unread in an ignored field).
    if math.isinf(value):
        raise InvalidPayload(f"{_subject(path)} is out of a double's range")
    return value


def _checked_str(value: str, path: str) -> str:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidPayload(f"{_subject(path)} has a lone surrogate") from None
    return value


def _index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def _member(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _AnyDecoder(Decoder):
    """Any JSON value, as plain dicts, lists, strings, numbers, booleans and None."""

    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        if isinstance(value, str):
            return _checked_str(value, path)
        if isinstance(value, float):
            return _checked_float(value, path)
        if isinstance(value, list):
            return [self.read(item, _index(path, i), state) for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {_checked_str(k, _member(path, k)): self.read(v, _member(path, k), state) for k, v in value.items()}
        return value


class _NoneDecoder(Decoder):
    """JSON `null` only (Rust's `()`)."""

    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        if value is not None:
            raise _wrong_type(path, "null", value)
        return None


class _BoolDecoder(Decoder):
    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        if not isinstance(value, bool):
            raise _wrong_type(path, "a boolean", value)
        return value


class _IntDecoder(Decoder):
    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        # bool is an int in Python, not in JSON.
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong_type(path, "an integer", value)
        if not I64_MIN <= value <= I64_MAX:
            raise InvalidPayload(f"{_subject(path)} is out of the i64 range")
        return value


class _FloatDecoder(Decoder):
    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _wrong_type(path, "a number", value)
        try:
            return _checked_float(float(value), path)
        except OverflowError:
            raise InvalidPayload(f"{_subject(path)} is out of a double's range") from None


class _StrDecoder(Decoder):
    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        if not isinstance(value, str):
            raise _wrong_type(path, "a string", value)
        return _checked_str(value, path)


class _ListDecoder(Decoder):
    def __init__(self, item: Decoder) -> None:
        self.item = item

    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        if not isinstance(value, list):
            raise _wrong_type(path, "an array", value)
        return [self.item.read(v, _index(path, i), state) for i, v in enumerate(value)]


class _DictDecoder(Decoder):
    """A JSON object as a `dict`; a repeated key keeps its last value."""

    def __init__(self, value: Decoder) -> None:
        self.value = value

    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        if not isinstance(value, dict):
            if not path:
                raise InvalidPayload("payload must be a JSON object")
            raise _wrong_type(path, "an object", value)
        return {
            _checked_str(k, _member(path, k)): self.value.read(v, _member(path, k), state) for k, v in value.items()
        }


class _OptionalDecoder(Decoder):
    """`Optional[T]`: `null` is None, anything else is read as `T`; a missing field is None."""

    missing_is_none = True

    def __init__(self, inner: Decoder) -> None:
        self.inner = inner

    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        return None if value is None else self.inner.read(value, path, state)


class _Field:
    """One field of a dataclass as the payload names it."""

    def __init__(self, attribute: str, key: str, decoder: Decoder, has_default: bool) -> None:
        self.attribute = attribute
        self.key = key
        self.decoder = decoder
        self.has_default = has_default


class _DataclassDecoder(Decoder):
    """A dataclass, from a JSON object only. Fields are filled in by
    `_fill` after the decoder is memoized, so that a dataclass may contain
    itself (`children: List["Node"]`)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.fields: List[_Field] = []
        self.by_key: Dict[str, _Field] = {}
        # `Account` -> "account", `AccountId` -> "account id".
        self.noun = _CAMEL_BOUNDARY.sub(" ", cls.__name__).lower()

    def fill(self, memo: Dict[type, "_DataclassDecoder"]) -> None:
        hints = typing.get_type_hints(self.cls)
        for f in dataclasses.fields(self.cls):
            if not f.init:
                continue
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            field = _Field(f.name, json_name(f), _decoder_for(hints[f.name], memo, nested=True), has_default)
            if field.key in self.by_key:
                raise TypeError(f"{self.cls.__name__}: two fields read the JSON key {field.key!r}")
            self.fields.append(field)
            self.by_key[field.key] = field

    def read(self, value: Any, path: str, state: _Decoding) -> Any:
        if not isinstance(value, _JsonObject):
            if state.not_an_object is None:
                state.not_an_object = f"{'payload' if not path else self.noun} must be a JSON object"
            return None
        arguments: Dict[str, Any] = {}
        seen = set()
        for key, raw in value.pairs:
            field = self.by_key.get(key)
            if field is None:
                continue
            if key in seen:
                raise InvalidPayload(f"duplicate field `{_member(path, key)}`")
            seen.add(key)
            arguments[field.attribute] = field.decoder.read(raw, _member(path, key), state)
        for field in self.fields:
            if field.key in seen or field.has_default:
                continue
            if not field.decoder.missing_is_none:
                raise InvalidPayload(f"missing field `{_member(path, field.key)}`")
            arguments[field.attribute] = None
        if state.not_an_object is not None:
            # Refused anyway: do not run the constructor on placeholders.
            return None
        try:
            return self.cls(**arguments)
        except (TypeError, ValueError) as e:
            # A `__post_init__` that validates: its refusal is the payload's.
            raise InvalidPayload(f"{_subject(path)}: {e}" if path else str(e)) from None


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def json_name(field: "dataclasses.Field[Any]") -> str:
    """The JSON key of a dataclass field: `metadata={"json": "branch-id"}` if
    given, else the field's name without the `_` that lets a keyword be one
    (`from_` is `"from"`), else the name itself."""
    explicit = field.metadata.get("json")
    if explicit is not None:
        if not isinstance(explicit, str):
            raise TypeError(f"field {field.name!r}: metadata 'json' must be a string")
        return explicit
    name = field.name
    if name.endswith("_") and keyword.iskeyword(name[:-1]):
        return name[:-1]
    return name


_SCALARS: Dict[Any, Callable[[], Decoder]] = {
    bool: _BoolDecoder,
    int: _IntDecoder,
    float: _FloatDecoder,
    str: _StrDecoder,
}

_SUPPORTED = (
    "a dataclass, dict, list, str, int, float, bool, None, Optional[...] or Any "
    "(and bytes for the raw payload)"
)


def decoder_for(annotation: Any) -> Decoder:
    """The decoder of a function's payload annotation.

    Raises `TypeError` for a type it cannot decode into, and `NameError` when a
    forward reference cannot be resolved yet.
    """
    return _decoder_for(annotation, {}, nested=False)


def _decoder_for(tp: Any, memo: Dict[type, _DataclassDecoder], nested: bool) -> Decoder:
    if tp is Any or tp is object:
        return _AnyDecoder()
    if tp is None or tp is type(None):
        return _NoneDecoder()
    if tp in _SCALARS:
        return _SCALARS[tp]()
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp not in memo:
            decoder = memo[tp] = _DataclassDecoder(tp)
            decoder.fill(memo)
        return memo[tp]
    if tp is list or tp is List:
        return _ListDecoder(_AnyDecoder())
    if tp is dict or tp is Dict:
        return _DictDecoder(_AnyDecoder())
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return _ListDecoder(_decoder_for(args[0], memo, nested=True))
    if origin is dict:
        if args[0] is not str and args[0] is not Any:
            raise TypeError(f"cannot decode into {tp!r}: JSON object keys are strings")
        return _DictDecoder(_decoder_for(args[1], memo, nested=True))
    if origin is typing.Union or origin is types.UnionType:
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(args) == 2:
            return _OptionalDecoder(_decoder_for(others[0], memo, nested=True))
    if tp is bytes and nested:
        raise TypeError("bytes can only be the type of the whole payload (the raw bytes), not of a field")
    raise TypeError(f"cannot decode a payload into {tp!r}: use {_SUPPORTED}")


# --- encoding -------------------------------------------------------------------


def encode(output: Any) -> bytes:
    """A function's result as the bytes it answers with.

    None is `null` (as Rust's `()`); `bytes` (or `bytearray`, `memoryview`) are
    the answer as they are; anything else is written as compact JSON:
    dataclasses as objects (keys as `json_name` gives them), dicts with string
    (or integer) keys, lists and tuples, strings, booleans, integers from i64
    min to u64 max, and floats (NaN and infinities as `null`, as serde_json
    writes them). `bytes` inside a JSON value are an array of numbers (serde's
    `Vec<u8>`). Raises `OutputError` for anything else, for nesting deeper
    than 128, and for a string with a lone surrogate.
    """
    if output is None:
        return b"null"
    if isinstance(output, (bytes, bytearray, memoryview)):
        return bytes(output)
    text = json.dumps(_to_json(output, 0), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise OutputError("a string has a lone surrogate") from None


def _to_json(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        if not I64_MIN <= value <= U64_MAX:
            raise OutputError(f"integer {value} is outside the range from i64 min to u64 max")
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        raise OutputError(f"nesting deeper than {MAX_DEPTH}")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {json_name(f): _to_json(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {_key(k): _to_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v, depth + 1) for v in value]
    raise OutputError(f"a {type(value).__name__} is not a JSON value")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(int(key))
    raise OutputError(f"a {type(key).__name__} cannot be a JSON object key")
