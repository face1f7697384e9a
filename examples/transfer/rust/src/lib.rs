//! A bank transfer as saga branches: the reference wasmtx example module.
//!
//! Functions (JSON payloads; see `examples/transfer/README.md`):
//!
//! | function | payload | does |
//! |---|---|---|
//! | `setup` | `{"accounts":[{"id":"alice","balance":100}]}` | creates `accounts`, upserts balances; returns `{"accounts":n}` |
//! | `trans-out` | `{"from","to","amount"}` | debits `from`; refuses a missing account or short funds |
//! | `trans-out-revert` | same | credits `from` back |
//! | `trans-in` | same | credits `to`; refuses a missing account |
//! | `trans-in-revert` | same | debits `to` back |
//! | `balance` | `{"id":"alice"}` | returns `{"id":"alice","balance":70}` |
//!
//! Every statement runs unchanged on SQLite and Postgres (`$N` placeholders,
//! `BIGINT`, `ON CONFLICT ... DO UPDATE`). Business refusals are failures
//! (never retried); database errors are retries. The Python, JavaScript and C
//! versions of this module follow this one, messages included.

use serde::{Deserialize, Serialize};
use wasmtx_guest::{BranchError, Context, db, log};

/// An account and the balance `setup` gives it.
#[derive(Debug, Deserialize)]
struct Account {
    id: String,
    balance: i64,
}

#[derive(Debug, Deserialize)]
struct Setup {
    accounts: Vec<Account>,
}

#[derive(Debug, Serialize, PartialEq)]
struct SetupDone {
    accounts: usize,
}

/// Payload of the four transfer steps: the action and its compensation get the
/// same payload.
#[derive(Debug, Deserialize)]
struct Transfer {
    from: String,
    to: String,
    amount: i64,
}

impl Transfer {
    /// The amount, refused unless positive.
    fn amount(&self) -> Result<i64, BranchError> {
        if self.amount <= 0 {
            return Err(BranchError::failure(format!("amount must be a positive integer, got {}", self.amount)));
        }
        Ok(self.amount)
    }
}

#[derive(Debug, Deserialize)]
struct AccountId {
    id: String,
}

#[derive(Debug, Serialize, PartialEq)]
struct Balance {
    id: String,
    balance: i64,
}

fn setup(_ctx: &Context, setup: Setup) -> Result<SetupDone, BranchError> {
    db::execute("CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)", &[])?;
    for account in &setup.accounts {
        db::execute(
            "INSERT INTO accounts (id, balance) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET balance = excluded.balance",
            &[account.id.as_str().into(), account.balance.into()],
        )?;
    }
    Ok(SetupDone { accounts: setup.accounts.len() })
}

fn trans_out(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
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

fn trans_out_revert(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    let amount = t.amount()?;
    db::execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", &[amount.into(), t.from.as_str().into()])?;
    Ok(())
}

fn trans_in(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    let amount = t.amount()?;
    let credited = db::execute(
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
        &[amount.into(), t.to.as_str().into()],
    )?;
    if credited == 0 {
        return Err(missing_account(&t.to));
    }
    Ok(())
}

fn trans_in_revert(_ctx: &Context, t: Transfer) -> Result<(), BranchError> {
    let amount = t.amount()?;
    db::execute("UPDATE accounts SET balance = balance - $1 WHERE id = $2", &[amount.into(), t.to.as_str().into()])?;
    Ok(())
}

fn balance(_ctx: &Context, account: AccountId) -> Result<Balance, BranchError> {
    match balance_of(&account.id)? {
        Some(balance) => Ok(Balance { id: account.id, balance }),
        None => Err(missing_account(&account.id)),
    }
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

wasmtx_guest::export_branch! {
    "setup" => setup,
    "trans-out" => trans_out,
    "trans-out-revert" => trans_out_revert,
    "trans-in" => trans_in,
    "trans-in-revert" => trans_in_revert,
    "balance" => balance,
}

// The database is only reachable inside the host; these tests cover what is
// decided before the first statement. The end-to-end tests run the component.
#[cfg(test)]
mod tests {
    use wasmtx_guest::Op;

    use super::*;

    fn transfer(amount: i64) -> Transfer {
        Transfer { from: "alice".into(), to: "bob".into(), amount }
    }

    #[test]
    fn non_positive_amounts_are_refused_by_every_step() {
        let ctx = Context::new(Op::Action);
        type Step = fn(&Context, Transfer) -> Result<(), BranchError>;
        let steps: [Step; 4] = [trans_out, trans_out_revert, trans_in, trans_in_revert];
        for step in steps {
            for amount in [0, -5] {
                assert_eq!(
                    step(&ctx, transfer(amount)),
                    Err(BranchError::failure(format!("amount must be a positive integer, got {amount}")))
                );
            }
        }
    }

    #[test]
    fn database_errors_are_retried() {
        // Natively every db call fails, which shows the mapping to `Retry`.
        let result = trans_out(&Context::new(Op::Action), transfer(30));
        assert!(matches!(result, Err(BranchError::Retry(_))), "{result:?}");
    }
}
