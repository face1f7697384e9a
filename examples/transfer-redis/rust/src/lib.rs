//! A bank transfer over Redis: balances as keys, as saga and TCC branches.
//!
//! The module imports `kv` (world `kv-branch`): upload it bound to a Redis
//! database (`--database wallet=redis://127.0.0.1:6379/0`). It takes the
//! same payloads and answers with the same messages as the SQL transfer
//! module (`examples/transfer/rust`), so one saga may debit an account kept
//! in MySQL with that module and credit one kept in Redis with this one.
//!
//! Keys (under the binding's prefix): `balance:<id>` holds an account's
//! balance, `frozen:<id>` what a TCC try has set aside.
//!
//! | function | payload | does |
//! |---|---|---|
//! | `setup` | `{"accounts":[{"id":"alice","balance":100}]}` | sets balances, clears frozen amounts; returns `{"accounts":n}` |
//! | `trans-out` | `{"from","to","amount"}` | debits `from`; refuses a missing account or short funds |
//! | `trans-out-revert` | same | credits `from` back |
//! | `trans-in` | same | credits `to`; refuses a missing account or an overflow |
//! | `trans-in-revert` | same | debits `to` back |
//! | `balance` | `{"id":"alice"}` | returns `{"id":"alice","balance":70,"frozen":0}` |
//! | `try-out` | `{"from","to","amount"}` | TCC: moves `amount` of `from` from its balance to frozen |
//! | `confirm-out` | same | TCC: the frozen amount leaves `from` |
//! | `cancel-out` | same | TCC: the frozen amount goes back to `from`'s balance |
//! | `try-in` | same | TCC: refuses a missing `to` or an overflow; reserves nothing |
//! | `confirm-in` | same | TCC: credits `to` |
//! | `cancel-in` | same | TCC: nothing to undo |
//!
//! Each call's reads and writes form one transaction (the host's): a debit
//! that read a balance another transfer changed meanwhile is run again, so
//! `get` then `incr_by` needs no lock. Business refusals are failures (never
//! retried); store errors are retries.

use serde::{Deserialize, Serialize};
use wasmtx_guest::{BranchError, Context, kv, log};

/// The largest amount a transfer step accepts, as in the SQL module.
const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

#[derive(Deserialize)]
struct Setup {
    accounts: Vec<Account>,
}

#[derive(Deserialize)]
struct Account {
    id: String,
    balance: i64,
}

#[derive(Serialize)]
struct SetupDone {
    accounts: usize,
}

#[derive(Deserialize)]
struct Transfer {
    from: String,
    to: String,
    amount: i64,
}

impl Transfer {
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

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Serialize)]
struct Balance {
    id: String,
    balance: i64,
    frozen: i64,
}

fn balance_key(id: &str) -> String {
    format!("balance:{id}")
}

fn frozen_key(id: &str) -> String {
    format!("frozen:{id}")
}

fn missing_account(id: &str) -> BranchError {
    BranchError::failure(format!("account {id} does not exist"))
}

/// The balance of an existing account, or the refusal.
fn balance_of(id: &str) -> Result<i64, BranchError> {
    kv::get_i64(&balance_key(id))?.ok_or_else(|| missing_account(id))
}

fn setup(_ctx: &Context, setup: Setup) -> Result<SetupDone, BranchError> {
    for account in &setup.accounts {
        kv::set(&balance_key(&account.id), account.balance.to_string())?;
        kv::delete(&frozen_key(&account.id))?;
    }
    Ok(SetupDone { accounts: setup.accounts.len() })
}

fn debit(id: &str, amount: i64) -> Result<(), BranchError> {
    if balance_of(id)? < amount {
        return Err(BranchError::failure(format!("insufficient funds in {id}")));
    }
    kv::incr_by(&balance_key(id), -amount)?;
    Ok(())
}

/// Refuses a missing account or a credit past `i64::MAX`.
fn check_credit(id: &str, amount: i64) -> Result<(), BranchError> {
    if balance_of(id)? > i64::MAX - amount {
        return Err(BranchError::failure(format!("balance of {id} would overflow")));
    }
    Ok(())
}

fn trans_out(ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    debit(&t.from, t.amount()?)?;
    log::info!("{}: debited {} from {}", ctx.gid(), t.amount, t.from);
    Ok(())
}

fn trans_out_revert(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    // A compensation must not refuse: it runs only after its action committed.
    kv::incr_by(&balance_key(&t.from), t.amount()?)?;
    Ok(())
}

fn trans_in(ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    let amount = t.amount()?;
    check_credit(&t.to, amount)?;
    kv::incr_by(&balance_key(&t.to), amount)?;
    log::info!("{}: credited {} to {}", ctx.gid(), amount, t.to);
    Ok(())
}

fn trans_in_revert(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    kv::incr_by(&balance_key(&t.to), -t.amount()?)?;
    Ok(())
}

fn balance(_ctx: &Context, a: Id) -> Result<Balance, BranchError> {
    let balance = balance_of(&a.id)?;
    let frozen = kv::get_i64(&frozen_key(&a.id))?.unwrap_or(0);
    Ok(Balance { id: a.id, balance, frozen })
}

fn try_out(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    let amount = t.amount()?;
    debit(&t.from, amount)?;
    kv::incr_by(&frozen_key(&t.from), amount)?;
    Ok(())
}

fn confirm_out(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    kv::incr_by(&frozen_key(&t.from), -t.amount()?)?;
    Ok(())
}

fn cancel_out(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    let amount = t.amount()?;
    kv::incr_by(&frozen_key(&t.from), -amount)?;
    kv::incr_by(&balance_key(&t.from), amount)?;
    Ok(())
}

fn try_in(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    check_credit(&t.to, t.amount()?)
}

fn confirm_in(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    kv::incr_by(&balance_key(&t.to), t.amount()?)?;
    Ok(())
}

fn cancel_in(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    t.amount()?;
    Ok(())
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
}
