"""Transfer example: a bank transfer as saga branches, in Python.

The same functions, SQL and messages as `examples/transfer/rust`, which is the
spec. Business refusals are `failure` (never retried); database errors are
`retry` (transient). Nothing here may raise past `invoke`: componentize-py turns
an uncaught exception into a trap, so every error leaves as `Err(BranchError)`.
"""

import json
import re
from typing import Any, Callable, Dict, List, NoReturn, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import db, log
from wit_world.imports.types import (
    BranchContext,
    BranchError_Failure,
    BranchError_Retry,
)

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
# The largest amount a transfer step accepts, as in the Rust version.
MAX_AMOUNT = 10**15

# As serde_json. json.loads recurses in C per level and would exhaust the wasm
# stack (a trap) long before Python's recursion limit, so depth is checked first.
MAX_DEPTH = 128
STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
BRACKET = re.compile(r"[\[\]{}]")


def fail(message: str) -> NoReturn:
    """Refuses the step for a business reason: never retried."""
    raise Err(BranchError_Failure(message))


# --- payloads -----------------------------------------------------------------


class InvalidPayload(Exception):
    pass


class JsonObject(dict):
    """A JSON object that remembers its repeated keys: json.loads keeps the
    last value silently, serde refuses a repeated field."""

    def __init__(self, pairs: List[Tuple[str, Any]]):
        super().__init__(pairs)
        self.repeated: set = set()
        if len(self) < len(pairs):
            seen: set = set()
            for key, _ in pairs:
                (self.repeated if key in seen else seen).add(key)


KINDS = {str: "a string", list: "an array", dict: "an object"}


def field(obj: JsonObject, name: str, kind: type) -> Any:
    """Reads a required field of the given JSON type (`int` means a JSON integer)."""
    if name not in obj:
        raise InvalidPayload(f"missing field `{name}`")
    if name in obj.repeated:
        raise InvalidPayload(f"duplicate field `{name}`")
    value = obj[name]
    if kind is int:
        # bool is an int in Python, not in JSON.
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidPayload(f"field `{name}` must be an integer")
        if not I64_MIN <= value <= I64_MAX:
            raise InvalidPayload(f"field `{name}` is out of range")
    elif not isinstance(value, kind):
        raise InvalidPayload(f"field `{name}` must be {KINDS[kind]}")
    elif kind is str and not is_well_formed(value):
        # json.loads accepts "\ud800"; the component model cannot carry it.
        raise InvalidPayload(f"field `{name}` has a lone surrogate")
    return value


def is_well_formed(s: str) -> bool:
    try:
        s.encode()
        return True
    except UnicodeEncodeError:
        return False


def quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def parse_json(payload: bytes) -> Any:
    """json.loads, refusing what JSON refuses and what would trap."""
    text = payload.decode()
    depth = 0
    for bracket in BRACKET.findall(STRING_LITERAL.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            raise ValueError(f"nesting deeper than {MAX_DEPTH}")
    return json.loads(
        text, object_pairs_hook=JsonObject, parse_int=read_int, parse_constant=reject_constant
    )


def read_int(literal: str) -> "int | float":
    # serde_json reads -0 as a float (-0.0), so it is not an integer there.
    return -0.0 if literal == "-0" else int(literal)


def reject_constant(name: str) -> NoReturn:
    # Python accepts NaN and Infinity; JSON does not.
    raise ValueError(f"invalid literal {name}")


def json_object(value: Any, what: str) -> JsonObject:
    if not isinstance(value, JsonObject):
        raise InvalidPayload(f"{what} must be a JSON object")
    return value


# --- database -----------------------------------------------------------------


def execute(sql: str, *params: db.Value) -> int:
    """Runs a statement; a database error is transient, so the host retries."""
    try:
        return db.execute(sql, list(params))
    except Err as e:
        raise retry(e.value)


def query(sql: str, *params: db.Value) -> db.Rows:
    try:
        return db.query(sql, list(params))
    except Err as e:
        raise retry(e.value)


def retry(e: db.DbError) -> Err:
    code = f" {e.code}" if e.code is not None else ""
    return Err(BranchError_Retry(f"database error{code}: {e.message}"))


def text(s: str) -> db.Value:
    return db.Value_Text(s)


def integer(n: int) -> db.Value:
    return db.Value_Int(n)


def balance_of(account: str) -> "int | None":
    rows = query("SELECT balance FROM accounts WHERE id = $1", text(account))
    if not rows.values:
        return None
    cell = rows.values[0][0]
    if not isinstance(cell, db.Value_Int):
        kind = type(cell).__name__.removeprefix("Value_").lower()
        fail(f'column "balance" holds {kind}, expected int')
    return cell.value


# --- functions ----------------------------------------------------------------


class Transfer:
    def __init__(self, payload: Any):
        obj = json_object(payload, "payload")
        self.source: str = field(obj, "from", str)
        self.target: str = field(obj, "to", str)
        self.amount: int = field(obj, "amount", int)
        if self.amount <= 0:
            fail(f"amount must be a positive integer, got {self.amount}")
        if self.amount > MAX_AMOUNT:
            fail(f"amount must be at most {MAX_AMOUNT}, got {self.amount}")


def setup(payload: Any) -> Any:
    accounts: List[Any] = field(json_object(payload, "payload"), "accounts", list)
    parsed = []
    for account in accounts:
        obj = json_object(account, "account")
        parsed.append((field(obj, "id", str), field(obj, "balance", int)))
    execute(
        "CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)"
    )
    for account_id, balance in parsed:
        execute(
            "INSERT INTO accounts (id, balance) VALUES ($1, $2) "
            "ON CONFLICT (id) DO UPDATE SET balance = excluded.balance",
            text(account_id),
            integer(balance),
        )
    return {"accounts": len(parsed)}


def trans_out(payload: Any) -> Any:
    t = Transfer(payload)
    debited = execute(
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1",
        integer(t.amount),
        text(t.source),
    )
    if debited == 0:
        if balance_of(t.source) is None:
            fail(f"account {t.source} does not exist")
        fail(f"insufficient funds in {t.source}")
    # The host tags the line with the module, gid and branch.
    log.log(log.Level.INFO, f"debited {t.amount} from {t.source}")
    return None


def trans_out_revert(payload: Any) -> Any:
    t = Transfer(payload)
    # This gives back what trans-out took: it overflows only if the balance
    # grew since (other credits, `setup`), and is then refused rather than
    # corrupted. An account that is gone has nothing to give back to.
    credit(t.source, t.amount)
    return None


def trans_in(payload: Any) -> Any:
    t = Transfer(payload)
    if not credit(t.target, t.amount):
        fail(f"account {t.target} does not exist")
    return None


def trans_in_revert(payload: Any) -> Any:
    t = Transfer(payload)
    # The guard of `credit` at the other end of BIGINT: balance - $1 >= i64 min.
    debited = execute(
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 "
        "AND balance >= $1 - 9223372036854775807 - 1",
        integer(t.amount),
        text(t.target),
    )
    if debited == 0 and balance_of(t.target) is not None:
        fail(f"balance of {t.target} would overflow")
    return None


def credit(account: str, amount: int) -> bool:
    """Adds `amount` to the balance of `account`; False if there is no such account.

    The guard keeps the balance within BIGINT: past i64 max, SQLite would store
    a REAL (and `balance` would then fail) and Postgres would fail with 22003
    (a database error: retried for ever). Refused instead.
    """
    credited = execute(
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2 "
        "AND balance <= 9223372036854775807 - $1",
        integer(amount),
        text(account),
    )
    if credited == 0:
        if balance_of(account) is None:
            return False
        fail(f"balance of {account} would overflow")
    return True


def balance(payload: Any) -> Any:
    account = field(json_object(payload, "payload"), "id", str)
    amount = balance_of(account)
    if amount is None:
        fail(f"account {account} does not exist")
    return {"id": account, "balance": amount}


FUNCTIONS: Dict[str, Callable[[Any], Any]] = {
    "setup": setup,
    "trans-out": trans_out,
    "trans-out-revert": trans_out_revert,
    "trans-in": trans_in,
    "trans-in-revert": trans_in_revert,
    "balance": balance,
}


class Handler(exports.Handler):
    def functions(self) -> List[str]:
        return list(FUNCTIONS)

    def invoke(self, function: str, ctx: BranchContext, payload: bytes) -> bytes:
        run = FUNCTIONS.get(function)
        if run is None:
            fail(f"unknown function {quote(function)} (this module has: {', '.join(FUNCTIONS)})")
        try:
            request = parse_json(payload)
        except (ValueError, RecursionError) as e:
            # ValueError covers malformed JSON and bytes that are not UTF-8.
            fail(f"invalid payload for {function}: {e}")
        try:
            output = run(request)
            return json.dumps(output, separators=(",", ":"), ensure_ascii=False).encode()
        except Err:
            raise
        except InvalidPayload as e:
            fail(f"invalid payload for {function}: {e}")
        except Exception as e:
            # A bug here must not trap the instance; report it as a refusal.
            fail(f"{function} failed: {type(e).__name__}: {e}")
