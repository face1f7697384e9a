"""Transfer example: a bank transfer as saga branches, in Python.

The same functions, SQL and messages as `examples/transfer/rust`, which is the
spec, written on the wasmtx Python SDK (`guest-sdk/python`). Business refusals
raise `Failure` (never retried); a database error left uncaught is a `retry`.
The SDK reads payloads as strictly as serde reads them in the Rust version.

The TCC functions (`try-out`, `confirm-out`, `cancel-out`, `try-in`,
`confirm-in`, `cancel-in`) freeze the amount in the `frozen` column while the
transaction is undecided. A cancel runs only if its try committed, and a try
that arrives after its cancel does nothing (the host's barrier), so the
cancels need not check.

`flaky` asks to be retried `retries` times, then succeeds; it touches no table.
"""

from dataclasses import dataclass
from typing import List, Optional

# `Handler` is the component's export: componentize-py looks for `app.Handler`.
from wasmtx import Context, Failure, Handler, Retry, branch, db, log  # noqa: F401

# The largest amount a transfer step accepts (10^15), as in the Rust version.
MAX_AMOUNT = 10**15

# The largest BIGINT (i64).
I64_MAX = 2**63 - 1

# The most retries `flaky` accepts, as in the Rust version.
MAX_RETRIES = 1000


@dataclass
class Account:
    """An account and the balance `setup` gives it."""

    id: str
    balance: int


@dataclass
class Setup:
    accounts: List[Account]


@dataclass
class Transfer:
    """Payload of the transfer steps: the action and its compensation (and a
    TCC's try, confirm and cancel) get the same payload."""

    from_: str  # the JSON key "from"
    to: str
    amount: int

    def checked_amount(self) -> int:
        """The amount, refused unless positive and at most MAX_AMOUNT."""
        if self.amount <= 0:
            raise Failure(f"amount must be a positive integer, got {self.amount}")
        if self.amount > MAX_AMOUNT:
            raise Failure(f"amount must be at most {MAX_AMOUNT}, got {self.amount}")
        return self.amount


@dataclass
class AccountId:
    id: str


@dataclass
class Flaky:
    retries: int


@branch.function("setup")
def setup(ctx: Context, payload: Setup) -> dict:
    db.execute(
        "CREATE TABLE IF NOT EXISTS accounts "
        "(id VARCHAR(64) PRIMARY KEY, balance BIGINT NOT NULL, frozen BIGINT NOT NULL DEFAULT 0)"
    )
    for account in payload.accounts:
        # Insert or overwrite without `ON CONFLICT` (MariaDB has none); an
        # existing account keeps what it has frozen.
        if balance_of(account.id) is None:
            sql = "INSERT INTO accounts (id, balance) VALUES ($1, $2)"
        else:
            sql = "UPDATE accounts SET balance = $2 WHERE id = $1"
        db.execute(sql, account.id, account.balance)
    return {"accounts": len(payload.accounts)}


@branch.function("trans-out")
def trans_out(ctx: Context, t: Transfer) -> None:
    amount = t.checked_amount()
    debited = db.execute(
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1",
        amount,
        t.from_,
    )
    if debited == 0:
        if balance_of(t.from_) is None:
            raise missing_account(t.from_)
        raise Failure(f"insufficient funds in {t.from_}")
    # The host tags the line with the module, gid and branch.
    log.info(f"debited {amount} from {t.from_}")


@branch.function("trans-out-revert")
def trans_out_revert(ctx: Context, t: Transfer) -> None:
    amount = t.checked_amount()
    # This gives back what trans-out took: it overflows only if the balance
    # grew since (other credits, `setup`), and is then refused rather than
    # corrupted. An account that is gone has nothing to give back to.
    credit(t.from_, amount)


@branch.function("trans-in")
def trans_in(ctx: Context, t: Transfer) -> None:
    amount = t.checked_amount()
    if not credit(t.to, amount):
        raise missing_account(t.to)


@branch.function("trans-in-revert")
def trans_in_revert(ctx: Context, t: Transfer) -> None:
    amount = t.checked_amount()
    # The guard of `credit` at the other end of BIGINT: balance - $1 >= i64 min.
    debited = db.execute(
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 - 9223372036854775807 - 1",
        amount,
        t.to,
    )
    if debited == 0 and balance_of(t.to) is not None:
        raise overflow(t.to)


@branch.function("try-out")
def try_out(ctx: Context, t: Transfer) -> None:
    amount = t.checked_amount()
    frozen = db.execute(
        "UPDATE accounts SET balance = balance - $1, frozen = frozen + $1 WHERE id = $2 AND balance >= $1",
        amount,
        t.from_,
    )
    if frozen == 0:
        if balance_of(t.from_) is None:
            raise missing_account(t.from_)
        raise Failure(f"insufficient funds in {t.from_}")
    log.info(f"froze {amount} of {t.from_}")


@branch.function("confirm-out")
def confirm_out(ctx: Context, t: Transfer) -> None:
    unfreeze(t.from_, t.checked_amount(), "frozen = frozen - $1")


@branch.function("cancel-out")
def cancel_out(ctx: Context, t: Transfer) -> None:
    unfreeze(t.from_, t.checked_amount(), "balance = balance + $1, frozen = frozen - $1")


def unfreeze(account: str, amount: int, set_: str) -> None:
    """Releases `amount` of what `try-out` froze on `account`, as `set_` says.

    Less frozen than that means the try never committed here, which the
    barrier rules out: refused (and so retried, and visible) rather than made up.
    """
    if db.execute(f"UPDATE accounts SET {set_} WHERE id = $2 AND frozen >= $1", amount, account) == 0:
        if balance_of(account) is None:
            raise missing_account(account)
        raise Failure(f"account {account} has less than {amount} frozen")


@branch.function("try-in")
def try_in(ctx: Context, t: Transfer) -> None:
    amount = t.checked_amount()
    balance = balance_of(t.to)
    if balance is None:
        raise missing_account(t.to)
    if balance > I64_MAX - amount:
        raise overflow(t.to)


@branch.function("confirm-in")
def confirm_in(ctx: Context, t: Transfer) -> None:
    if not credit(t.to, t.checked_amount()):
        raise missing_account(t.to)


@branch.function("cancel-in")
def cancel_in(ctx: Context, t: Transfer) -> None:
    # try-in changed nothing; the payload is still checked like the others'.
    t.checked_amount()


@branch.function("balance")
def balance(ctx: Context, account: AccountId) -> dict:
    amount = balance_of(account.id)
    if amount is None:
        raise missing_account(account.id)
    return {"id": account.id, "balance": amount}


@branch.function("flaky")
def flaky(ctx: Context, payload: Flaky) -> dict:
    """Answers `retry` on the first `retries` attempts and succeeds on the next."""
    if not 0 <= payload.retries <= MAX_RETRIES:
        raise Failure(f"retries must be between 0 and {MAX_RETRIES}, got {payload.retries}")
    if ctx.attempt <= payload.retries:
        raise Retry(f"attempt {ctx.attempt} of {payload.retries + 1}")
    return {"attempts": ctx.attempt}


def credit(account: str, amount: int) -> bool:
    """Adds `amount` to the balance of `account`; False if there is no such account.

    The guard keeps the balance within BIGINT: past i64 max, SQLite would store
    a REAL (and `balance` would then fail), and Postgres and MariaDB would fail
    with 22003 (a database error: retried for ever). Refused instead.
    """
    credited = db.execute(
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2 AND balance <= 9223372036854775807 - $1",
        amount,
        account,
    )
    if credited == 0:
        if balance_of(account) is None:
            return False
        raise overflow(account)
    return True


def balance_of(account: str) -> Optional[int]:
    """The balance of `account`, or None if there is no such account."""
    row = db.query("SELECT balance FROM accounts WHERE id = $1", account).first()
    return None if row is None else row.get_int("balance")


def missing_account(account: str) -> Failure:
    return Failure(f"account {account} does not exist")


def overflow(account: str) -> Failure:
    return Failure(f"balance of {account} would overflow")
