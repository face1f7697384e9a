//! A bank transfer as saga branches: the reference wasmtx example module.
//!
//! Functions (JSON payloads; see `examples/transfer/README.md`):
//!
//! | function | payload | does |
//! |---|---|---|
//! | `setup` | `{"accounts":[{"id":"alice","balance":100}]}` | creates `accounts`, sets balances (insert or overwrite); returns `{"accounts":n}` |
//! | `trans-out` | `{"from","to","amount"}` | debits `from`; refuses a missing account or short funds |
//! | `trans-out-revert` | same | credits `from` back |
//! | `trans-in` | same | credits `to`; refuses a missing account or an overflow |
//! | `trans-in-revert` | same | debits `to` back |
//! | `balance` | `{"id":"alice"}` | returns `{"id":"alice","balance":70}` |
//! | `try-out` | `{"from","to","amount"}` | TCC: moves `amount` of `from` from `balance` to `frozen`; refuses a missing account or short funds |
//! | `confirm-out` | same | TCC: the frozen amount leaves `from` |
//! | `cancel-out` | same | TCC: the frozen amount goes back to `from`'s balance |
//! | `try-in` | same | TCC: refuses a missing `to` account or a credit that would overflow; reserves nothing |
//! | `confirm-in` | same | TCC: credits `to` |
//! | `cancel-in` | same | TCC: nothing to undo (`try-in` changed nothing) |
//! | `flaky` | `{"retries":2}` | asks to be retried `retries` times, then returns `{"attempts":n}`; touches no table |
//!
//! A TCC's cancel runs only if its try committed, and a try that arrives after
//! its cancel does nothing (the host's barrier), so the cancels need not check.
//!
//! Every statement runs unchanged on SQLite, Postgres and MariaDB (`$N`
//! placeholders, `VARCHAR(64)` ids, `BIGINT` balances, no upsert: `setup`
//! updates or inserts). Business refusals are failures
//! (never retried); database errors are retries. The Python, JavaScript and C
//! versions of this module follow this one, messages included.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use wasmtx_guest::{BranchError, Context, db, log};

/// The largest amount a transfer step accepts (10^15). Every language then
/// computes with amounts exactly (a double holds integers up to 2^53, about
/// 9.007 * 10^15), and an amount is far from the ends of `BIGINT`.
const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// A payload (or part of one) that must be a JSON object, read as `T`.
///
/// `#[derive(Deserialize)]` also reads a struct from a JSON array
/// (`["alice","bob",30]` as a `Transfer`), which the Python, JavaScript and C
/// versions refuse. So the functions take `Object<T>` and refuse anything but
/// an object with [`Object::read`]. A decoding error could not give the same
/// message: serde_json appends the position (`... at line 1 column 1`).
/// Only the object case decodes `T`, so a repeated field of `T` is still
/// refused, and an unknown field (repeated or not) still ignored.
#[derive(Debug, PartialEq)]
enum Object<T> {
    Object(T),
    /// Any other JSON value (array, string, number, boolean, null).
    NotAnObject,
}

impl<T> Object<T> {
    /// The object, or the refusal `invalid payload for <function>: <what> must
    /// be a JSON object`.
    fn read(self, function: &str, what: &str) -> Result<T, BranchError> {
        match self {
            Object::Object(value) => Ok(value),
            Object::NotAnObject => {
                Err(BranchError::failure(format!("invalid payload for {function}: {what} must be a JSON object")))
            }
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectVisitor(PhantomData))
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // serde_json wants the whole array read.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Object::NotAnObject)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Object::NotAnObject)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Object::NotAnObject)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Object::NotAnObject)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Object::NotAnObject)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Object::NotAnObject)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Object::NotAnObject)
    }
}

/// The most retries `flaky` accepts.
const MAX_RETRIES: i64 = 1000;

/// An account and the balance `setup` gives it.
#[derive(Debug, Deserialize)]
struct Account {
    id: String,
    balance: i64,
}

#[derive(Debug, Deserialize)]
struct Setup {
    accounts: Vec<Object<Account>>,
}

#[derive(Debug, Serialize, PartialEq)]
struct SetupDone {
    accounts: usize,
}

/// Payload of the transfer steps: the action and its compensation (and a TCC's
/// try, confirm and cancel) get the same payload.
#[derive(Debug, Deserialize)]
struct Transfer {
    from: String,
    to: String,
    amount: i64,
}

impl Transfer {
    /// The amount, refused unless positive and at most [`MAX_AMOUNT`].
    fn amount(&self) -> Result<i64, BranchError> {
        if self.amount <= 0 {
            return Err(BranchError::failure(format!("amount must be a positive integer, got {}", self.amount)));
        }
        if self.amount > MAX_AMOUNT {
            return Err(BranchError::failure(format!("amount must be at most {MAX_AMOUNT}, got {}", self.amount)));
        }
        Ok(self.amount)
    }
}

#[derive(Debug, Deserialize, PartialEq)]
struct AccountId {
    id: String,
}

#[derive(Debug, Serialize, PartialEq)]
struct Balance {
    id: String,
    balance: i64,
}

/// Payload of `flaky`. An `i64` (not a `u32`), so that a negative count is
/// refused with the range message, as in the other languages.
#[derive(Debug, Deserialize)]
struct Flaky {
    retries: i64,
}

#[derive(Debug, Serialize, PartialEq)]
struct FlakyDone {
    attempts: u32,
}

fn setup(_ctx: &Context, payload: Object<Setup>) -> Result<SetupDone, BranchError> {
    let setup = payload.read("setup", "payload")?;
    let accounts =
        setup.accounts.into_iter().map(|account| account.read("setup", "account")).collect::<Result<Vec<_>, _>>()?;
    db::execute(
        "CREATE TABLE IF NOT EXISTS accounts \
         (id VARCHAR(64) PRIMARY KEY, balance BIGINT NOT NULL, frozen BIGINT NOT NULL DEFAULT 0)",
        &[],
    )?;
    for account in &accounts {
        // Insert or overwrite without `ON CONFLICT` (MariaDB has none); an
        // existing account keeps what it has frozen. Two setups creating the
        // same account at once: the second insert fails (a database error).
        let sql = match balance_of(&account.id)? {
            Some(_) => "UPDATE accounts SET balance = $2 WHERE id = $1",
            None => "INSERT INTO accounts (id, balance) VALUES ($1, $2)",
        };
        db::execute(sql, &[account.id.as_str().into(), account.balance.into()])?;
    }
    Ok(SetupDone { accounts: accounts.len() })
}

fn trans_out(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    let t = payload.read("trans-out", "payload")?;
    let amount = t.amount()?;
    let debited = db::execute(
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1",
        &[amount.into(), t.from.as_str().into()],
    )?;
    if debited == 0 {
        return Err(match balance_of(&t.from)? {
            None => missing_account(&t.from),
            Some(_) => BranchError::failure(format!("insufficient funds in {}", t.from)),
        });
    }
    // The host tags the line with the module, gid and branch.
    log::info!("debited {amount} from {}", t.from);
    Ok(())
}

fn trans_out_revert(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    let t = payload.read("trans-out-revert", "payload")?;
    let amount = t.amount()?;
    // This gives back what trans-out took: it overflows only if the balance
    // grew since (other credits, `setup`), and is then refused rather than
    // corrupted. An account that is gone has nothing to give back to.
    credit(&t.from, amount)?;
    Ok(())
}

fn trans_in(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    let t = payload.read("trans-in", "payload")?;
    let amount = t.amount()?;
    if !credit(&t.to, amount)? {
        return Err(missing_account(&t.to));
    }
    Ok(())
}

fn trans_in_revert(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    let t = payload.read("trans-in-revert", "payload")?;
    let amount = t.amount()?;
    // The guard of `credit` at the other end of BIGINT: balance - $1 >= i64::MIN.
    let debited = db::execute(
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 - 9223372036854775807 - 1",
        &[amount.into(), t.to.as_str().into()],
    )?;
    if debited == 0 && balance_of(&t.to)?.is_some() {
        return Err(overflow(&t.to));
    }
    Ok(())
}

fn try_out(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    let t = payload.read("try-out", "payload")?;
    let amount = t.amount()?;
    let frozen = db::execute(
        "UPDATE accounts SET balance = balance - $1, frozen = frozen + $1 WHERE id = $2 AND balance >= $1",
        &[amount.into(), t.from.as_str().into()],
    )?;
    if frozen == 0 {
        return Err(match balance_of(&t.from)? {
            None => missing_account(&t.from),
            Some(_) => BranchError::failure(format!("insufficient funds in {}", t.from)),
        });
    }
    log::info!("froze {amount} of {}", t.from);
    Ok(())
}

fn confirm_out(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    let t = payload.read("confirm-out", "payload")?;
    unfreeze(&t.from, t.amount()?, "frozen = frozen - $1")
}

fn cancel_out(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    let t = payload.read("cancel-out", "payload")?;
    unfreeze(&t.from, t.amount()?, "balance = balance + $1, frozen = frozen - $1")
}

/// Releases `amount` of what `try-out` froze on `id`, as `set` says. Less
/// frozen than that means the try never committed here, which the barrier
/// rules out: refused (and so retried, and visible) rather than made up.
fn unfreeze(id: &str, amount: i64, set: &str) -> Result<(), BranchError> {
    let sql = format!("UPDATE accounts SET {set} WHERE id = $2 AND frozen >= $1");
    if db::execute(&sql, &[amount.into(), id.into()])? == 0 {
        return Err(match balance_of(id)? {
            None => missing_account(id),
            Some(_) => BranchError::failure(format!("account {id} has less than {amount} frozen")),
        });
    }
    Ok(())
}

fn try_in(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    let t = payload.read("try-in", "payload")?;
    let amount = t.amount()?;
    match balance_of(&t.to)? {
        None => Err(missing_account(&t.to)),
        Some(balance) if balance > i64::MAX - amount => Err(overflow(&t.to)),
        Some(_) => Ok(()),
    }
}

fn confirm_in(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    let t = payload.read("confirm-in", "payload")?;
    if !credit(&t.to, t.amount()?)? {
        return Err(missing_account(&t.to));
    }
    Ok(())
}

fn cancel_in(_ctx: &Context, payload: Object<Transfer>) -> Result<(), BranchError> {
    // try-in changed nothing; the payload is still checked like the others'.
    let t = payload.read("cancel-in", "payload")?;
    t.amount()?;
    Ok(())
}

fn balance(_ctx: &Context, payload: Object<AccountId>) -> Result<Balance, BranchError> {
    let account = payload.read("balance", "payload")?;
    match balance_of(&account.id)? {
        Some(balance) => Ok(Balance { id: account.id, balance }),
        None => Err(missing_account(&account.id)),
    }
}

/// Answers `retry` on the first `retries` attempts and succeeds on the next:
/// a branch that shows the host's retries without a database in the way.
fn flaky(ctx: &Context, payload: Object<Flaky>) -> Result<FlakyDone, BranchError> {
    let flaky = payload.read("flaky", "payload")?;
    if !(0..=MAX_RETRIES).contains(&flaky.retries) {
        return Err(BranchError::failure(format!(
            "retries must be between 0 and {MAX_RETRIES}, got {}",
            flaky.retries
        )));
    }
    let attempt = ctx.attempt();
    if i64::from(attempt) <= flaky.retries {
        return Err(BranchError::retry(format!("attempt {attempt} of {}", flaky.retries + 1)));
    }
    Ok(FlakyDone { attempts: attempt })
}

/// Adds `amount` to the balance of `id`; `false` if there is no such account.
///
/// The guard keeps the balance within `BIGINT`: past `i64::MAX`, SQLite would
/// store a REAL (and `balance` would then fail), and Postgres and MariaDB would
/// fail with 22003 (a database error: retried for ever). Refused instead.
fn credit(id: &str, amount: i64) -> Result<bool, BranchError> {
    let credited = db::execute(
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2 AND balance <= 9223372036854775807 - $1",
        &[amount.into(), id.into()],
    )?;
    if credited == 0 {
        return match balance_of(id)? {
            None => Ok(false),
            Some(_) => Err(overflow(id)),
        };
    }
    Ok(true)
}

/// The balance of `id`, or `None` if there is no such account.
fn balance_of(id: &str) -> Result<Option<i64>, BranchError> {
    let rows = db::query("SELECT balance FROM accounts WHERE id = $1", &[id.into()])?;
    match rows.first() {
        Some(row) => Ok(Some(row.get_i64("balance")?)),
        None => Ok(None),
    }
}

fn missing_account(id: &str) -> BranchError {
    BranchError::failure(format!("account {id} does not exist"))
}

fn overflow(id: &str) -> BranchError {
    BranchError::failure(format!("balance of {id} would overflow"))
}

wasmtx_guest::export_branch! {
    "setup" => setup,
    "trans-out" => trans_out,
    "trans-out-revert" => trans_out_revert,
    "trans-in" => trans_in,
    "trans-in-revert" => trans_in_revert,
    "balance" => balance,
    "try-out" => try_out,
    "confirm-out" => confirm_out,
    "cancel-out" => cancel_out,
    "try-in" => try_in,
    "confirm-in" => confirm_in,
    "cancel-in" => cancel_in,
    "flaky" => flaky,
}

// The database is only reachable inside the host; these tests cover what is
// decided before the first statement. The end-to-end tests run the component.
#[cfg(test)]
mod tests {
    use serde::de::value::{Error, MapDeserializer, SeqDeserializer, StrDeserializer, UnitDeserializer};
    use wasmtx_guest::Op;

    use super::*;

    type Step = fn(&Context, Object<Transfer>) -> Result<(), BranchError>;
    const STEPS: [(&str, Step); 10] = [
        ("trans-out", trans_out),
        ("trans-out-revert", trans_out_revert),
        ("trans-in", trans_in),
        ("trans-in-revert", trans_in_revert),
        ("try-out", try_out),
        ("confirm-out", confirm_out),
        ("cancel-out", cancel_out),
        ("try-in", try_in),
        ("confirm-in", confirm_in),
        ("cancel-in", cancel_in),
    ];

    fn transfer(amount: i64) -> Object<Transfer> {
        Object::Object(Transfer { from: "alice".into(), to: "bob".into(), amount })
    }

    #[test]
    fn non_positive_amounts_are_refused_by_every_step() {
        let ctx = Context::new(Op::Action);
        for (_, step) in STEPS {
            for amount in [0, -5] {
                assert_eq!(
                    step(&ctx, transfer(amount)),
                    Err(BranchError::failure(format!("amount must be a positive integer, got {amount}")))
                );
            }
        }
    }

    #[test]
    fn amounts_above_the_limit_are_refused_by_every_step() {
        let ctx = Context::new(Op::Action);
        for (name, step) in STEPS {
            for amount in [MAX_AMOUNT + 1, i64::MAX] {
                assert_eq!(
                    step(&ctx, transfer(amount)),
                    Err(BranchError::failure(format!("amount must be at most 1000000000000000, got {amount}")))
                );
            }
            // The limit itself is allowed: natively the database call then
            // fails (cancel-in makes none).
            let result = step(&ctx, transfer(MAX_AMOUNT));
            if name == "cancel-in" {
                assert_eq!(result, Ok(()));
            } else {
                assert!(matches!(result, Err(BranchError::Retry(_))), "{name}: {result:?}");
            }
        }
    }

    #[test]
    fn payloads_that_are_not_objects_are_refused_by_every_function() {
        let ctx = Context::new(Op::Action);
        for (name, step) in STEPS {
            assert_eq!(
                step(&ctx, Object::NotAnObject),
                Err(BranchError::failure(format!("invalid payload for {name}: payload must be a JSON object")))
            );
        }
        assert_eq!(
            setup(&ctx, Object::NotAnObject),
            Err(BranchError::failure("invalid payload for setup: payload must be a JSON object"))
        );
        assert_eq!(
            balance(&ctx, Object::NotAnObject),
            Err(BranchError::failure("invalid payload for balance: payload must be a JSON object"))
        );
        assert_eq!(
            flaky(&ctx, Object::NotAnObject),
            Err(BranchError::failure("invalid payload for flaky: payload must be a JSON object"))
        );
        let accounts = vec![Object::Object(Account { id: "alice".into(), balance: 1 }), Object::NotAnObject];
        assert_eq!(
            setup(&ctx, Object::Object(Setup { accounts })),
            Err(BranchError::failure("invalid payload for setup: account must be a JSON object"))
        );
    }

    #[test]
    fn only_an_object_is_read_as_the_struct() {
        let alice = || Ok(Object::Object(AccountId { id: "alice".into() }));
        let map = MapDeserializer::<_, Error>::new([("id", "alice"), ("note", "ignored")].into_iter());
        assert_eq!(Object::<AccountId>::deserialize(map), alice());
        // #[derive(Deserialize)] alone reads this sequence as an AccountId.
        let seq = SeqDeserializer::<_, Error>::new(["alice"].into_iter());
        assert_eq!(AccountId::deserialize(seq), Ok(AccountId { id: "alice".into() }));
        let seq = SeqDeserializer::<_, Error>::new(["alice"].into_iter());
        assert_eq!(Object::<AccountId>::deserialize(seq), Ok(Object::NotAnObject));
        assert_eq!(Object::<AccountId>::deserialize(StrDeserializer::<Error>::new("alice")), Ok(Object::NotAnObject));
        assert_eq!(Object::<AccountId>::deserialize(UnitDeserializer::<Error>::new()), Ok(Object::NotAnObject));
        // An object still has to decode as the struct.
        let map = MapDeserializer::<_, Error>::new([("name", "alice")].into_iter());
        assert_eq!(Object::<AccountId>::deserialize(map).unwrap_err().to_string(), "missing field `id`");
    }

    #[test]
    fn database_errors_are_retried() {
        // Natively every db call fails, which shows the mapping to `Retry`.
        let result = trans_out(&Context::new(Op::Action), transfer(30));
        assert!(matches!(result, Err(BranchError::Retry(_))), "{result:?}");
    }

    #[test]
    fn flaky_asks_for_a_retry_until_its_attempt_is_past_the_retries() {
        let run = |attempt: u32, retries: i64| {
            flaky(&Context::new(Op::Action).with_attempt(attempt), Object::Object(Flaky { retries }))
        };
        assert_eq!(run(1, 2), Err(BranchError::retry("attempt 1 of 3")));
        assert_eq!(run(2, 2), Err(BranchError::retry("attempt 2 of 3")));
        assert_eq!(run(3, 2), Ok(FlakyDone { attempts: 3 }));
        assert_eq!(run(4, 2), Ok(FlakyDone { attempts: 4 }), "a later attempt succeeds too");
        assert_eq!(run(1, 0), Ok(FlakyDone { attempts: 1 }), "no retries: the first attempt succeeds");
        assert_eq!(run(1000, 1000), Err(BranchError::retry("attempt 1000 of 1001")));
        assert_eq!(run(1001, 1000), Ok(FlakyDone { attempts: 1001 }));
    }

    #[test]
    fn flaky_refuses_retries_out_of_range() {
        let ctx = Context::new(Op::Action);
        for retries in [-1, 1001, 5000, i64::MIN, i64::MAX] {
            assert_eq!(
                flaky(&ctx, Object::Object(Flaky { retries })),
                Err(BranchError::failure(format!("retries must be between 0 and 1000, got {retries}")))
            );
        }
    }
}
