//! The store suite: every behaviour the engine relies on, run against both
//! backends. Each test below is a plain `async fn(url)`; `on_both_stores!`
//! turns it into `sqlite::<name>` (a fresh SQLite file) and `postgres::<name>`
//! (a fresh Postgres database). Tests must not depend on which one they run on.

use std::collections::HashSet;

use super::{
    AlertCandidate, AlertCondition, Created, Lease, ListFilter, Parked, Progress, SignalSent, Store, StoreError,
    Subscriber, TopicName,
};
use crate::model::{
    BranchId, BranchOp, DatabaseName, Digest, Gid, HistoryEntry, JournalEntry, Millis, Mode, ModuleName, ModuleRecord,
    Op, OpStatus, Options, Status, StepAnswer, StepCall, StepTarget, Target, Transaction, TransactionState,
};

use crate::test_db::on_both_stores;

on_both_stores!(
    create_then_load_round_trips_every_field,
    create_with_an_existing_gid_returns_the_stored_state_and_changes_nothing,
    load_and_claim_of_an_unknown_gid_find_nothing,
    claim_on_a_free_transaction_takes_the_lease_and_bumps_the_epoch,
    claim_by_another_owner_fails_while_the_lease_is_live_and_succeeds_after_expiry,
    final_transactions_are_never_claimed,
    save_under_a_stale_epoch_is_fenced_and_writes_nothing,
    save_by_another_owner_under_the_current_epoch_is_fenced,
    save_updates_the_transaction_and_its_ops_but_not_lease_owner_or_epoch,
    save_inserts_an_op_that_is_not_stored_yet,
    release_clears_the_lease_and_fences_later_saves,
    save_and_release_writes_the_state_and_gives_the_lease_up_in_one_step,
    save_and_release_under_a_stale_lease_is_fenced_and_writes_nothing,
    release_under_a_stale_lease_changes_nothing,
    release_all_fences_the_leases_of_a_previous_life,
    claim_due_takes_only_due_unfinished_free_or_expired_transactions_oldest_first,
    claim_due_respects_the_limit_and_skips_what_it_just_claimed,
    concurrent_claim_due_calls_never_return_the_same_gid,
    unfinished_lists_only_non_final_transactions_oldest_first,
    list_returns_newest_first_and_respects_the_limit,
    module_put_then_get_serves_the_current_version_and_versions_by_digest,
    identical_bytes_under_two_names_are_stored_once,
    modules_lists_the_current_version_of_each_name_by_name,
    unknown_status_text_and_bad_json_are_reported_as_corrupt,
    reconnecting_keeps_the_data_and_applies_no_migration_twice,
    concurrent_writers_all_succeed,
    history_is_appended_and_read_back_in_order,
    list_filtered_pages_newest_first_by_status_mode_and_module,
    subscribing_twice_adds_once_and_keeps_the_first_subscription_time,
    removing_a_subscriber_that_is_not_there_removes_nothing,
    subscribers_are_listed_in_subscription_order_then_by_module_and_function,
    topics_are_isolated_from_each_other_and_listed_by_name,
    heartbeats_list_the_instances_heard_from_lately_and_a_forgotten_one_goes,
    journal_entries_are_appended_by_saves_and_read_back_in_seq_order,
    a_save_under_a_stale_epoch_writes_no_journal_entries,
    a_journal_entry_stored_with_other_content_is_corrupt_and_the_save_writes_nothing,
    an_undecodable_journal_entry_is_corrupt,
    send_signal_refuses_unknown_gids_other_modes_and_final_workflows_and_stores_nothing,
    send_signal_wakes_a_submitted_workflow_only_when_no_live_lease_drives_it,
    signals_are_read_back_by_name_in_arrival_order,
    a_workflow_keeps_at_most_max_signals,
    park_with_an_unseen_signal_writes_nothing_and_the_caller_keeps_its_lease,
    park_without_an_unseen_signal_writes_the_progress_and_a_later_signal_wakes_it,
    park_under_a_stale_lease_is_fenced_and_writes_nothing,
    park_of_a_create_is_refused,
    a_signal_racing_a_park_is_either_seen_by_the_park_or_wakes_the_workflow,
    journal_and_signals_go_with_their_transaction,
    alert_candidates_are_unfinished_transactions_over_the_retries_or_too_old_without_a_claim,
    an_alert_is_claimed_once_and_a_claim_given_back_makes_it_a_candidate_again,
    concurrent_claims_of_one_alert_have_one_winner,
    delete_finished_before_takes_old_finished_transactions_with_everything_stored_about_them,
);

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const T0: Millis = Millis(1_700_000_000_000);

fn at(offset_ms: i64) -> Millis {
    Millis(T0.0 + offset_ms)
}

async fn open(url: &str) -> Store {
    Store::connect(url).await.expect("connect to a fresh store")
}

fn gid(s: &str) -> Gid {
    Gid::parse(s).expect("valid gid")
}

fn op(branch: &str, op: Op, payload: &[u8]) -> BranchOp {
    BranchOp {
        branch_id: BranchId::from_trusted(branch),
        op,
        target: Target {
            module: ModuleName::from_trusted("bank"),
            digest: Digest::of(b"bank v1"),
            database: DatabaseName::default_name(),
            function: format!("{op}-{branch}"),
        },
        payload: payload.to_vec(),
        status: OpStatus::Prepared,
        attempts: 0,
        last_error: None,
        updated_at: T0,
    }
}

/// A submitted saga with two branches, due at `created_at`, not leased.
fn saga(id: &str, created_at: Millis) -> TransactionState {
    TransactionState {
        transaction: Transaction {
            gid: gid(id),
            mode: Mode::Saga,
            status: Status::Submitted,
            options: Options::default(),
            next_due: Some(created_at),
            attempts: 0,
            last_error: None,
            rollback_reason: None,
            created_at,
            updated_at: created_at,
            finished_at: None,
            lease_owner: None,
            lease_expires: None,
            epoch: 0,
        },
        ops: vec![
            op("01", Op::Action, br#"{"amount":30}"#),
            op("01", Op::Compensate, br#"{"amount":30}"#),
            op("02", Op::Action, br#"{"amount":30}"#),
            op("02", Op::Compensate, br#"{"amount":30}"#),
        ],
    }
}

fn with_status(mut state: TransactionState, status: Status) -> TransactionState {
    state.transaction.status = status;
    state
}

fn with_next_due(mut state: TransactionState, next_due: Option<Millis>) -> TransactionState {
    state.transaction.next_due = next_due;
    state
}

fn leased(mut state: TransactionState, owner: &str, until: Millis, epoch: i64) -> TransactionState {
    state.transaction.lease_owner = Some(owner.to_owned());
    state.transaction.lease_expires = Some(until);
    state.transaction.epoch = epoch;
    state
}

async fn create(store: &Store, state: &TransactionState) {
    let created = store.create_transaction(state).await.expect("create");
    assert_eq!(created, Created::New, "{} should be new", state.transaction.gid);
}

async fn load(store: &Store, id: &str) -> TransactionState {
    store.load(&gid(id)).await.expect("load").unwrap_or_else(|| panic!("{id} is stored"))
}

async fn claim(store: &Store, id: &str, owner: &str, now: Millis, until: Millis) -> Option<Lease> {
    store.claim(&gid(id), owner, now, until).await.expect("claim")
}

fn gids(leases: &[Lease]) -> Vec<&str> {
    leases.iter().map(|l| l.gid.as_str()).collect()
}

fn module(name: &str, bytes: &[u8], created_at: Millis) -> ModuleRecord {
    ModuleRecord {
        name: ModuleName::from_trusted(name),
        digest: Digest::of(bytes),
        world: "branch".to_owned(),
        functions: vec!["debit".to_owned(), "credit".to_owned()],
        database: DatabaseName::default_name(),
        instance_reuse: None,
        size: bytes.len() as u64,
        created_at,
        http_hosts: vec!["api.example.com".to_owned()],
    }
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

async fn create_then_load_round_trips_every_field(url: String) {
    let store = open(&url).await;
    let mut state = saga("order-1", T0);
    let t = &mut state.transaction;
    t.status = Status::Aborting;
    t.options = Options {
        timeout_to_fail: Some(60),
        retry_limit: Some(3),
        retry_interval: Some(2),
        max_retry_interval: Some(30),
        request_timeout: Some(5),
        branch_headers: vec![("x-tenant".to_owned(), "acme".to_owned())],
        concurrent: true,
        orders: [("1".to_owned(), vec![0])].into(),
        delay: Some(10),
    };
    t.next_due = Some(at(500));
    t.attempts = 4;
    t.last_error = Some("bank said 503".to_owned());
    t.rollback_reason = Some("insufficient funds".to_owned());
    t.updated_at = at(100);
    t.finished_at = Some(at(200));
    t.lease_owner = Some("node-a".to_owned());
    t.lease_expires = Some(at(10_000));
    t.epoch = 7;
    // Insertion order that is not sorted order, bytes that are not UTF-8, an empty payload.
    state.ops = vec![
        op("02", Op::Action, &[0, 159, 146, 150, 255]),
        op("01", Op::Action, b""),
        op("01", Op::Compensate, br#"{"amount":30}"#),
        op("02", Op::Compensate, b"\x00\x01"),
    ];
    state.ops[1].status = OpStatus::Failed;
    state.ops[1].attempts = 2;
    state.ops[1].last_error = Some("trap: unreachable".to_owned());
    state.ops[1].updated_at = at(42);

    create(&store, &state).await;

    assert_eq!(load(&store, "order-1").await, state);
}

async fn create_with_an_existing_gid_returns_the_stored_state_and_changes_nothing(url: String) {
    let store = open(&url).await;
    let original = saga("order-1", T0);
    create(&store, &original).await;

    let mut other = with_status(saga("order-1", at(5)), Status::Prepared);
    other.ops.push(op("03", Op::Action, b"{}"));
    let created = store.create_transaction(&other).await.expect("create again");

    assert_eq!(created, Created::Existing(original.clone()));
    assert_eq!(load(&store, "order-1").await, original);
    let ops = store.scalar_raw(&format!("SELECT COUNT(*) FROM {}branch_ops", tables(&store))).await.expect("count ops");
    assert_eq!(ops, 4);
}

async fn load_and_claim_of_an_unknown_gid_find_nothing(url: String) {
    let store = open(&url).await;

    assert_eq!(store.load(&gid("nope")).await.expect("load"), None);
    assert_eq!(claim(&store, "nope", "node-a", T0, at(1_000)).await, None);
}

async fn claim_on_a_free_transaction_takes_the_lease_and_bumps_the_epoch(url: String) {
    let store = open(&url).await;
    create(&store, &saga("order-1", T0)).await;

    let lease = claim(&store, "order-1", "node-a", T0, at(10_000)).await;

    let expected = Lease { gid: gid("order-1"), owner: "node-a".to_owned(), epoch: 1 };
    assert_eq!(lease, Some(expected));
    let t = load(&store, "order-1").await.transaction;
    assert_eq!(t.lease_owner.as_deref(), Some("node-a"));
    assert_eq!(t.lease_expires, Some(at(10_000)));
    assert_eq!(t.epoch, 1);

    // Already ours: renewed under a new epoch, which fences the old lease.
    let renewed = claim(&store, "order-1", "node-a", at(1), at(20_000)).await.expect("renew");
    assert_eq!(renewed.epoch, 2);
    assert_eq!(load(&store, "order-1").await.transaction.lease_expires, Some(at(20_000)));
}

async fn claim_by_another_owner_fails_while_the_lease_is_live_and_succeeds_after_expiry(url: String) {
    let store = open(&url).await;
    create(&store, &saga("order-1", T0)).await;
    claim(&store, "order-1", "node-a", T0, at(10_000)).await.expect("a claims");

    assert_eq!(claim(&store, "order-1", "node-b", at(5_000), at(20_000)).await, None);
    // Still live at the instant it expires.
    assert_eq!(claim(&store, "order-1", "node-b", at(10_000), at(20_000)).await, None);
    let t = load(&store, "order-1").await.transaction;
    assert_eq!((t.lease_owner.as_deref(), t.epoch), (Some("node-a"), 1));

    let lease = claim(&store, "order-1", "node-b", at(10_001), at(20_000)).await;

    assert_eq!(lease.map(|l| (l.owner, l.epoch)), Some(("node-b".to_owned(), 2)));
    assert_eq!(load(&store, "order-1").await.transaction.lease_owner.as_deref(), Some("node-b"));
}

async fn final_transactions_are_never_claimed(url: String) {
    let store = open(&url).await;
    create(&store, &with_status(saga("done", at(-5_000)), Status::Succeeded)).await;
    create(&store, &with_status(saga("gave-up", at(-5_000)), Status::Failed)).await;

    assert_eq!(claim(&store, "done", "node-a", T0, at(10_000)).await, None);
    assert_eq!(claim(&store, "gave-up", "node-a", T0, at(10_000)).await, None);
    let due = store.claim_due("node-a", T0, at(10_000), 10).await.expect("claim_due");
    assert!(due.is_empty(), "claimed final transactions: {due:?}");
    assert_eq!(load(&store, "done").await.transaction.epoch, 0);
}

async fn save_under_a_stale_epoch_is_fenced_and_writes_nothing(url: String) {
    let store = open(&url).await;
    create(&store, &saga("order-1", T0)).await;
    let stale = claim(&store, "order-1", "node-a", T0, at(1_000)).await.expect("a claims");
    claim(&store, "order-1", "node-b", at(2_000), at(12_000)).await.expect("b takes over");
    let before = load(&store, "order-1").await;

    let mut zombie = before.clone();
    zombie.transaction.status = Status::Succeeded;
    zombie.transaction.next_due = None;
    zombie.ops[0].status = OpStatus::Succeeded;
    zombie.ops.push(op("03", Op::Action, b"{}"));
    let result = store.save(&stale, &zombie.transaction, &zombie.ops).await;

    assert!(
        matches!(&result, Err(StoreError::Fenced { gid: g }) if g.as_str() == "order-1"),
        "expected Fenced, got {result:?}"
    );
    assert_eq!(load(&store, "order-1").await, before);
}

async fn save_by_another_owner_under_the_current_epoch_is_fenced(url: String) {
    let store = open(&url).await;
    create(&store, &saga("order-1", T0)).await;
    let lease = claim(&store, "order-1", "node-a", T0, at(10_000)).await.expect("claim");
    let before = load(&store, "order-1").await;
    let forged = Lease { owner: "node-b".to_owned(), ..lease };

    let mut changed = before.transaction.clone();
    changed.status = Status::Failed;
    let result = store.save(&forged, &changed, &[]).await;

    assert!(matches!(result, Err(StoreError::Fenced { .. })), "expected Fenced, got {result:?}");
    assert_eq!(load(&store, "order-1").await, before);
}

async fn save_updates_the_transaction_and_its_ops_but_not_lease_owner_or_epoch(url: String) {
    let store = open(&url).await;
    let original = saga("order-1", T0);
    create(&store, &original).await;
    let lease = claim(&store, "order-1", "node-a", T0, at(10_000)).await.expect("claim");
    let claimed = load(&store, "order-1").await;

    let mut tx = claimed.transaction.clone();
    tx.status = Status::Aborting;
    tx.next_due = Some(at(3_000));
    tx.attempts = 2;
    tx.last_error = Some("bank said 503".to_owned());
    tx.rollback_reason = Some("insufficient funds".to_owned());
    tx.updated_at = at(1_500);
    tx.finished_at = Some(at(1_600));
    tx.lease_expires = Some(at(30_000));
    // Not the store's to change on save: these must be ignored.
    tx.lease_owner = Some("someone-else".to_owned());
    tx.epoch = 99;
    tx.mode = Mode::Saga;
    tx.created_at = at(-1);
    let mut changed_op = claimed.ops[2].clone();
    changed_op.status = OpStatus::Failed;
    changed_op.attempts = 3;
    changed_op.last_error = Some("insufficient funds".to_owned());
    changed_op.updated_at = at(1_500);
    changed_op.payload = b"ignored: payload is immutable".to_vec();

    store.save(&lease, &tx, std::slice::from_ref(&changed_op)).await.expect("save");

    let saved = load(&store, "order-1").await;
    let expected_tx = Transaction { lease_owner: Some("node-a".to_owned()), epoch: 1, created_at: T0, ..tx };
    assert_eq!(saved.transaction, expected_tx);
    let mut expected_ops = original.ops.clone();
    expected_ops[2] = BranchOp { payload: original.ops[2].payload.clone(), ..changed_op };
    assert_eq!(saved.ops, expected_ops);
}

async fn save_inserts_an_op_that_is_not_stored_yet(url: String) {
    let store = open(&url).await;
    create(&store, &saga("order-1", T0)).await;
    let lease = claim(&store, "order-1", "node-a", T0, at(10_000)).await.expect("claim");
    let before = load(&store, "order-1").await;

    let added = op("03", Op::Action, b"late branch");
    store.save(&lease, &before.transaction, std::slice::from_ref(&added)).await.expect("save");

    let after = load(&store, "order-1").await;
    assert_eq!(after.ops.len(), 5);
    assert_eq!(after.ops[..4], before.ops[..]);
    assert_eq!(after.ops[4], added);
}

async fn release_clears_the_lease_and_fences_later_saves(url: String) {
    let store = open(&url).await;
    create(&store, &saga("order-1", T0)).await;
    let lease = claim(&store, "order-1", "node-a", T0, at(10_000)).await.expect("claim");

    store.release(&lease).await.expect("release");

    let t = load(&store, "order-1").await.transaction;
    assert_eq!((&t.lease_owner, t.lease_expires, t.epoch), (&None, None, 1));
    let result = store.save(&lease, &t, &[]).await;
    assert!(matches!(result, Err(StoreError::Fenced { .. })), "expected Fenced, got {result:?}");
    // Free again well before the old expiry.
    let next = claim(&store, "order-1", "node-b", at(1), at(10_000)).await;
    assert_eq!(next.map(|l| l.epoch), Some(2));
}

async fn save_and_release_writes_the_state_and_gives_the_lease_up_in_one_step(url: String) {
    let store = open(&url).await;
    create(&store, &saga("order-1", T0)).await;
    let lease = claim(&store, "order-1", "node-a", T0, at(10_000)).await.expect("claim");
    let mut state = load(&store, "order-1").await;
    state.transaction.status = Status::Succeeded;
    state.transaction.next_due = None;
    state.transaction.finished_at = Some(at(5));
    state.ops[0].status = OpStatus::Succeeded;

    store.save_and_release(&lease, &state.transaction, &state.ops[..1]).await.expect("save and release");

    let stored = load(&store, "order-1").await;
    assert_eq!(stored.transaction.status, Status::Succeeded);
    assert_eq!(stored.transaction.finished_at, Some(at(5)));
    assert_eq!(stored.ops[0].status, OpStatus::Succeeded);
    assert_eq!((&stored.transaction.lease_owner, stored.transaction.lease_expires), (&None, None));
    assert_eq!(stored.transaction.epoch, 1, "releasing does not bump the epoch");
    let again = store.save(&lease, &state.transaction, &[]).await;
    assert!(matches!(again, Err(StoreError::Fenced { .. })), "the released lease is gone: {again:?}");
}

async fn save_and_release_under_a_stale_lease_is_fenced_and_writes_nothing(url: String) {
    let store = open(&url).await;
    create(&store, &saga("order-1", T0)).await;
    let stale = claim(&store, "order-1", "node-a", T0, at(1_000)).await.expect("a claims");
    claim(&store, "order-1", "node-b", at(2_000), at(12_000)).await.expect("b takes over");
    let before = load(&store, "order-1").await;

    let mut zombie = before.clone();
    zombie.transaction.status = Status::Failed;
    let result = store.save_and_release(&stale, &zombie.transaction, &[]).await;

    assert!(matches!(result, Err(StoreError::Fenced { .. })), "expected Fenced, got {result:?}");
    assert_eq!(load(&store, "order-1").await, before, "b keeps its lease and nothing changed");
}

async fn release_under_a_stale_lease_changes_nothing(url: String) {
    let store = open(&url).await;
    create(&store, &saga("order-1", T0)).await;
    let stale = claim(&store, "order-1", "node-a", T0, at(1_000)).await.expect("a claims");
    claim(&store, "order-1", "node-b", at(2_000), at(12_000)).await.expect("b takes over");
    let before = load(&store, "order-1").await;

    store.release(&stale).await.expect("release is not an error when fenced");

    assert_eq!(load(&store, "order-1").await, before);
    assert_eq!(before.transaction.lease_owner.as_deref(), Some("node-b"));
}

async fn release_all_fences_the_leases_of_a_previous_life(url: String) {
    let store = open(&url).await;
    for id in ["t1", "t2", "t3"] {
        create(&store, &saga(id, T0)).await;
    }
    let old_life = claim(&store, "t1", "node-a", T0, at(60_000)).await.expect("claim t1");
    claim(&store, "t2", "node-a", T0, at(60_000)).await.expect("claim t2");
    claim(&store, "t3", "node-b", T0, at(60_000)).await.expect("claim t3");

    let released = store.release_all("node-a").await.expect("release_all");

    assert_eq!(released, 2);
    for id in ["t1", "t2"] {
        let t = load(&store, id).await.transaction;
        assert_eq!((t.lease_owner, t.lease_expires, t.epoch), (None, None, 2), "{id}");
    }
    let t3 = load(&store, "t3").await.transaction;
    assert_eq!((t3.lease_owner.as_deref(), t3.epoch), (Some("node-b"), 1));
    // The zombie of the previous life is fenced even if it reclaims nothing.
    let t1 = load(&store, "t1").await.transaction;
    let result = store.save(&old_life, &t1, &[]).await;
    assert!(matches!(result, Err(StoreError::Fenced { .. })), "expected Fenced, got {result:?}");
    assert_eq!(store.release_all("node-a").await.expect("second release_all"), 0);
}

async fn claim_due_takes_only_due_unfinished_free_or_expired_transactions_oldest_first(url: String) {
    let store = open(&url).await;
    let now = T0;
    create(&store, &with_next_due(saga("due-3s-ago", T0), Some(at(-3_000)))).await;
    create(&store, &with_next_due(saga("due-1s-ago", T0), Some(at(-1_000)))).await;
    create(&store, &with_next_due(saga("due-now", T0), Some(now))).await;
    create(&store, &with_next_due(saga("due-later", T0), Some(at(1_000)))).await;
    create(&store, &with_next_due(saga("never-due", T0), None)).await;
    create(&store, &with_status(with_next_due(saga("finished", T0), Some(at(-9_000))), Status::Succeeded)).await;
    create(&store, &leased(with_next_due(saga("leased-live", T0), Some(at(-8_000))), "node-b", at(5_000), 3)).await;
    create(&store, &leased(with_next_due(saga("leased-expired", T0), Some(at(-2_000))), "node-b", at(-1), 5)).await;
    create(&store, &leased(with_next_due(saga("mine-live", T0), Some(at(-7_000))), "node-a", at(5_000), 1)).await;

    let leases = store.claim_due("node-a", now, at(30_000), 100).await.expect("claim_due");

    assert_eq!(gids(&leases), ["due-3s-ago", "leased-expired", "due-1s-ago", "due-now"]);
    assert!(leases.iter().all(|l| l.owner == "node-a"));
    let epochs: Vec<i64> = leases.iter().map(|l| l.epoch).collect();
    assert_eq!(epochs, [1, 6, 1, 1]);
    let expired = load(&store, "leased-expired").await.transaction;
    assert_eq!((expired.lease_owner.as_deref(), expired.lease_expires), (Some("node-a"), Some(at(30_000))));
    // A lease this node holds live belongs to a driver already running: not re-claimed.
    assert_eq!(load(&store, "mine-live").await.transaction.epoch, 1);
    assert_eq!(load(&store, "leased-live").await.transaction.lease_owner.as_deref(), Some("node-b"));
}

async fn claim_due_respects_the_limit_and_skips_what_it_just_claimed(url: String) {
    let store = open(&url).await;
    for i in 0..5 {
        create(&store, &with_next_due(saga(&format!("t{i}"), T0), Some(at(-10 * (5 - i))))).await;
    }

    let first = store.claim_due("node-a", T0, at(30_000), 2).await.expect("first claim_due");
    let second = store.claim_due("node-b", T0, at(30_000), 10).await.expect("second claim_due");
    let third = store.claim_due("node-a", T0, at(30_000), 10).await.expect("third claim_due");

    assert_eq!(gids(&first), ["t0", "t1"]);
    assert_eq!(gids(&second), ["t2", "t3", "t4"]);
    assert!(third.is_empty(), "everything is leased: {third:?}");
    assert!(store.claim_due("node-a", T0, at(30_000), 0).await.expect("limit 0").is_empty());
}

async fn concurrent_claim_due_calls_never_return_the_same_gid(url: String) {
    let store = open(&url).await;
    let all: HashSet<String> = (0..40).map(|i| format!("t{i:02}")).collect();
    for id in &all {
        create(&store, &with_next_due(saga(id, T0), Some(at(-1)))).await;
    }

    let claimers = ["node-a", "node-b"].map(|owner| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due(owner, T0, at(60_000), 3).await.expect("claim_due");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch);
            }
        })
    });
    let [a, b] = claimers;
    let (a, b) = (a.await.expect("task a"), b.await.expect("task b"));

    let a_gids: HashSet<String> = a.iter().map(|l| l.gid.to_string()).collect();
    let b_gids: HashSet<String> = b.iter().map(|l| l.gid.to_string()).collect();
    assert_eq!(a_gids.len(), a.len(), "node-a got a gid twice");
    assert_eq!(b_gids.len(), b.len(), "node-b got a gid twice");
    assert!(a_gids.is_disjoint(&b_gids), "claimed by both: {:?}", a_gids.intersection(&b_gids));
    assert_eq!(&a_gids | &b_gids, all);
    for lease in a.iter().chain(&b) {
        assert_eq!(
            load(&store, lease.gid.as_str()).await.transaction.lease_owner.as_deref(),
            Some(lease.owner.as_str())
        );
    }
}

async fn unfinished_lists_only_non_final_transactions_oldest_first(url: String) {
    let store = open(&url).await;
    let statuses = [Status::Prepared, Status::Succeeded, Status::Submitted, Status::Failed, Status::Aborting];
    for (i, status) in statuses.into_iter().enumerate() {
        create(&store, &with_status(saga(&format!("t{i}-{status}"), at(i as i64)), status)).await;
    }

    let unfinished = store.unfinished(100).await.expect("unfinished");
    let limited = store.unfinished(2).await.expect("unfinished limited");

    let names: Vec<&str> = unfinished.iter().map(Gid::as_str).collect();
    assert_eq!(names, ["t0-prepared", "t2-submitted", "t4-aborting"]);
    assert_eq!(limited, unfinished[..2]);
}

async fn list_returns_newest_first_and_respects_the_limit(url: String) {
    let store = open(&url).await;
    // created_at ties are broken by insertion order, newest first.
    for (id, created) in [("a", at(0)), ("b", at(2)), ("c", at(1)), ("d", at(2))] {
        create(&store, &saga(id, created)).await;
    }

    let all = store.list(10).await.expect("list");
    let two = store.list(2).await.expect("list 2");

    let names: Vec<&str> = all.iter().map(|t| t.gid.as_str()).collect();
    assert_eq!(names, ["d", "b", "c", "a"]);
    assert_eq!(two, all[..2]);
    assert_eq!(all[0], load(&store, "d").await.transaction);
}

// ---------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------

async fn module_put_then_get_serves_the_current_version_and_versions_by_digest(url: String) {
    let store = open(&url).await;
    let v1 = module("bank", b"bank v1 bytes", at(0));
    let mut v2 = module("bank", b"bank v2 bytes \x00\xff", at(1));
    v2.world = "branch-v2".to_owned();
    v2.functions = vec!["transfer".to_owned()];
    v2.database = DatabaseName::parse("ledger").expect("database name");
    v2.instance_reuse = Some(100);

    store.put_module(&v1, b"bank v1 bytes").await.expect("put v1");
    store.put_module(&v2, b"bank v2 bytes \x00\xff").await.expect("put v2");

    assert_eq!(store.module(&v1.name).await.expect("module"), Some(v2.clone()));
    assert_eq!(store.module_version(&v1.name, &v1.digest).await.expect("v1"), Some(v1.clone()));
    assert_eq!(store.module_version(&v2.name, &v2.digest).await.expect("v2"), Some(v2.clone()));
    assert_eq!(store.module_bytes(&v1.digest).await.expect("bytes v1").as_deref(), Some(&b"bank v1 bytes"[..]));
    assert_eq!(
        store.module_bytes(&v2.digest).await.expect("bytes v2").as_deref(),
        Some(&b"bank v2 bytes \x00\xff"[..])
    );
    let unknown = Digest::of(b"never uploaded");
    assert_eq!(store.module(&ModuleName::from_trusted("shop")).await.expect("unknown name"), None);
    assert_eq!(store.module_version(&v1.name, &unknown).await.expect("unknown version"), None);
    assert_eq!(store.module_bytes(&unknown).await.expect("unknown bytes"), None);
}

async fn identical_bytes_under_two_names_are_stored_once(url: String) {
    let store = open(&url).await;
    let bytes = b"the same component";
    let bank = module("bank", bytes, at(0));
    let shop = module("shop", bytes, at(1));

    store.put_module(&bank, bytes).await.expect("put bank");
    store.put_module(&shop, bytes).await.expect("put shop");
    store.put_module(&bank, bytes).await.expect("put bank again");

    let t = tables(&store);
    assert_eq!(store.scalar_raw(&format!("SELECT COUNT(*) FROM {t}module_blobs")).await.expect("blobs"), 1);
    assert_eq!(store.scalar_raw(&format!("SELECT COUNT(*) FROM {t}module_versions")).await.expect("versions"), 3);
    assert_eq!(store.module_bytes(&bank.digest).await.expect("bytes").as_deref(), Some(&bytes[..]));
    assert_eq!(store.module_version(&bank.name, &bank.digest).await.expect("bank's row"), Some(bank.clone()));
    assert_eq!(store.module_version(&shop.name, &shop.digest).await.expect("shop's row"), Some(shop.clone()));
    assert_eq!(store.modules().await.expect("modules"), [bank, shop]);
}

async fn modules_lists_the_current_version_of_each_name_by_name(url: String) {
    let store = open(&url).await;
    let zeta_v1 = module("zeta", b"zeta 1", at(0));
    let alpha = module("alpha", b"alpha 1", at(1));
    let zeta_v2 = module("zeta", b"zeta 2", at(2));
    let zeta_back_to_v1 = module("zeta", b"zeta 1", at(3));
    assert!(store.modules().await.expect("empty").is_empty());

    let uploads: [(&ModuleRecord, &[u8]); 3] = [(&zeta_v1, b"zeta 1"), (&alpha, b"alpha 1"), (&zeta_v2, b"zeta 2")];
    for (record, bytes) in uploads {
        store.put_module(record, bytes).await.expect("put");
    }
    assert_eq!(store.modules().await.expect("modules"), [alpha.clone(), zeta_v2]);

    // Re-uploading an older version makes it current again.
    store.put_module(&zeta_back_to_v1, b"zeta 1").await.expect("put again");
    assert_eq!(store.modules().await.expect("modules"), [alpha, zeta_back_to_v1]);
}

// ---------------------------------------------------------------------------
// Decoding, connecting, concurrency
// ---------------------------------------------------------------------------

async fn unknown_status_text_and_bad_json_are_reported_as_corrupt(url: String) {
    let store = open(&url).await;
    create(&store, &saga("bad-status", T0)).await;
    create(&store, &saga("bad-options", T0)).await;
    create(&store, &saga("bad-op", T0)).await;
    store.put_module(&module("bad-functions", b"m", T0), b"m").await.expect("put");
    let t = tables(&store);
    let plant = [
        format!("UPDATE {t}transactions SET status = 'exploded' WHERE gid = 'bad-status'"),
        format!("UPDATE {t}transactions SET options = '{{not json' WHERE gid = 'bad-options'"),
        format!("UPDATE {t}branch_ops SET op = 'teleport' WHERE gid = 'bad-op' AND branch_id = '01' AND op = 'action'"),
        format!("UPDATE {t}module_versions SET functions = '42' WHERE name = 'bad-functions'"),
    ];
    for sql in &plant {
        assert_eq!(store.execute_raw(sql).await.expect(sql), 1, "{sql}");
    }

    for id in ["bad-status", "bad-options", "bad-op"] {
        let result = store.load(&gid(id)).await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{id}: expected Corrupt, got {result:?}");
    }
    let listed = store.list(10).await;
    assert!(matches!(listed, Err(StoreError::Corrupt(_))), "list: expected Corrupt, got {listed:?}");
    let m = store.module(&ModuleName::from_trusted("bad-functions")).await;
    assert!(matches!(m, Err(StoreError::Corrupt(_))), "module: expected Corrupt, got {m:?}");
}

async fn reconnecting_keeps_the_data_and_applies_no_migration_twice(url: String) {
    let first = open(&url).await;
    let state = saga("order-1", T0);
    create(&first, &state).await;
    let version_query = match first.backend() {
        "sqlite" => "SELECT user_version FROM pragma_user_version",
        _ => "SELECT COUNT(*) FROM _sqlx_migrations",
    };
    let migrations = first.scalar_raw(version_query).await.expect("migrations");
    first.close().await;
    drop(first);

    let second = open(&url).await;

    assert_eq!(load(&second, "order-1").await, state);
    let again = second.scalar_raw(version_query).await.expect("migrations");
    assert_eq!(again, migrations);
}

/// The prefix of the coordinator's tables on this backend.
fn tables(store: &Store) -> &'static str {
    if store.backend() == "sqlite" { "wasmtx_" } else { "wasmtx." }
}

/// Many tasks creating, claiming and saving at once: on SQLite this is where a
/// missing `BEGIN IMMEDIATE` or busy timeout would surface as `SQLITE_BUSY`.
async fn concurrent_writers_all_succeed(url: String) {
    let store = open(&url).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("t{i:02}");
                let state = saga(&id, T0);
                store.create_transaction(&state).await?;
                let lease = store.claim(&state.transaction.gid, "node-a", T0, at(60_000)).await?;
                let lease = lease.expect("a new transaction is free");
                let done = Transaction { status: Status::Succeeded, next_due: None, ..state.transaction };
                store.save(&lease, &done, &state.ops).await?;
                store.release(&lease).await?;
                store.load(&done.gid).await
            })
        })
        .collect();

    for task in tasks {
        let loaded = task.await.expect("task").expect("every write succeeds");
        assert_eq!(loaded.map(|s| s.transaction.status), Some(Status::Succeeded));
    }
    assert!(store.unfinished(100).await.expect("unfinished").is_empty());
}

// ---------------------------------------------------------------------------
// Backend-independent
// ---------------------------------------------------------------------------

#[tokio::test]
async fn connect_rejects_an_unsupported_scheme_without_echoing_the_url() {
    let result = Store::connect("mysql://root:hunter2@db/coordinator").await;

    let Err(StoreError::Config(message)) = result else {
        panic!("expected Config, got {result:?}");
    };
    assert!(message.contains("mysql"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn connect_to_an_unreachable_postgres_is_unavailable() {
    // Port 1 on loopback: connection refused at once.
    let result = Store::connect("postgres://postgres@127.0.0.1:1/none").await;

    assert!(matches!(result, Err(StoreError::Unavailable(_))), "expected Unavailable, got {result:?}");
}

#[tokio::test]
async fn sqlite_connect_creates_missing_parent_directories() {
    let root = std::env::temp_dir().join(format!("wasmtx-test-{}", uuid::Uuid::new_v4().simple()));
    let file = root.join("a").join("b").join("coordinator.db");

    let store = Store::connect(&format!("sqlite:{}", file.display())).await.expect("connect");

    assert_eq!(store.backend(), "sqlite");
    assert!(file.exists(), "{} was not created", file.display());
    create(&store, &saga("order-1", T0)).await;
    store.close().await;
    std::fs::remove_dir_all(&root).expect("clean up");
}

#[tokio::test]
async fn sqlite_in_memory_store_keeps_its_data_while_open() {
    let store = open("sqlite::memory:").await;
    let state = saga("order-1", T0);

    create(&store, &state).await;
    let lease = claim(&store, "order-1", "node-a", T0, at(1_000)).await.expect("claim");
    store.save(&lease, &state.transaction, &[]).await.expect("save");

    assert_eq!(load(&store, "order-1").await.ops, state.ops);
    assert_eq!(store.unfinished(10).await.expect("unfinished"), [gid("order-1")]);
}

/// `synchronous` is NORMAL (1): the writer fsyncs the WAL itself before it
/// acknowledges a batch of commits (see `crate::sqlite`), which is as durable
/// as FULL for every acknowledged write.
#[tokio::test]
async fn sqlite_store_uses_wal_with_foreign_keys_and_the_writer_s_own_fsync() {
    let store = open(&crate::test_db::fresh_sqlite()).await;

    // `scalar_raw` runs on the writer connection, whose settings matter.
    let synchronous = store.scalar_raw("SELECT synchronous FROM pragma_synchronous").await.expect("pragma");
    let foreign_keys = store.scalar_raw("SELECT foreign_keys FROM pragma_foreign_keys").await.expect("pragma");
    let wal =
        store.scalar_raw("SELECT COUNT(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'").await.expect("pragma");
    assert_eq!((synchronous, foreign_keys, wal), (1, 1, 1));
}

#[test]
fn the_final_statuses_named_in_sql_are_the_models() {
    // The backends filter non-final rows with `status NOT IN ('succeeded', 'failed')`.
    for text in ["prepared", "submitted", "aborting", "succeeded", "failed"] {
        let status = Status::parse(text).expect("a model status");
        assert_eq!(status.is_final(), ["succeeded", "failed"].contains(&text), "{text}");
    }
}

async fn history_is_appended_and_read_back_in_order(url: String) {
    let store = open(&url).await;
    let entry = |g: &str, kind: &str, at_ms: i64| HistoryEntry::new(&gid(g), at(at_ms), kind);
    let attempt = HistoryEntry {
        branch_id: Some(BranchId::from_index(1)),
        op: Some(Op::Compensate),
        attempt: Some(3),
        outcome: Some("error".to_owned()),
        detail: Some("down".to_owned()),
        duration_ms: Some(12),
        ..entry("order-1", "attempt", 2)
    };
    let abort =
        HistoryEntry { actor: Some("ops".to_owned()), detail: Some("why".to_owned()), ..entry("order-1", "abort", 3) };
    store
        .append_history(&[entry("order-1", "created", 1), entry("order-2", "created", 1), attempt.clone()])
        .await
        .unwrap();
    store.append_history(std::slice::from_ref(&abort)).await.unwrap();
    store.append_history(&[]).await.unwrap();
    assert_eq!(store.history(&gid("order-1"), 10).await.unwrap(), [entry("order-1", "created", 1), attempt, abort]);
    assert_eq!(store.history(&gid("order-1"), 1).await.unwrap().len(), 1, "the limit holds");
    assert!(store.history(&gid("order-3"), 10).await.unwrap().is_empty());
}

async fn list_filtered_pages_newest_first_by_status_mode_and_module(url: String) {
    let store = open(&url).await;
    for i in 0..30 {
        let mut state = saga(&format!("t-{i:02}"), at(i));
        if i % 3 == 0 {
            state.transaction.status = Status::Failed;
        }
        if i % 5 == 0 {
            state.transaction.mode = Mode::Tcc;
        }
        if i % 2 == 0 {
            for op in &mut state.ops {
                op.target.module = ModuleName::parse("other").unwrap();
            }
        }
        create(&store, &state).await;
    }
    let page = |filter: ListFilter| {
        let store = store.clone();
        async move { store.list_filtered(&filter).await.unwrap().into_iter().map(|t| t.gid.to_string()).collect::<Vec<_>>() }
    };
    let names = |pick: &dyn Fn(i64) -> bool| {
        (0..30).rev().filter(|i| pick(*i)).map(|i| format!("t-{i:02}")).collect::<Vec<_>>()
    };
    let all = ListFilter { limit: 100, ..ListFilter::default() };
    assert_eq!(page(all.clone()).await, names(&|_| true));
    assert_eq!(page(ListFilter { status: Some("failed".into()), ..all.clone() }).await, names(&|i| i % 3 == 0));
    assert_eq!(page(ListFilter { mode: Some("tcc".into()), ..all.clone() }).await, names(&|i| i % 5 == 0));
    assert_eq!(page(ListFilter { module: Some("other".into()), ..all.clone() }).await, names(&|i| i % 2 == 0));
    let both = ListFilter { status: Some("failed".into()), module: Some("other".into()), ..all.clone() };
    assert_eq!(page(both).await, names(&|i| i % 6 == 0));
    // Pages of 4 after a cursor continue exactly where the last one ended.
    let first = page(ListFilter { limit: 4, ..all.clone() }).await;
    let second = page(ListFilter { limit: 4, cursor: first.last().cloned(), ..all.clone() }).await;
    assert_eq!([first, second].concat(), names(&|i| i >= 22));
}

// ---------------------------------------------------------------------------
// Topics
// ---------------------------------------------------------------------------

fn topic(name: &str) -> TopicName {
    TopicName::parse(name).expect("valid topic name")
}

fn subscriber(t: &str, module: &str, function: &str, created_at: Millis) -> Subscriber {
    Subscriber {
        topic: topic(t),
        module: ModuleName::parse(module).expect("valid module name"),
        function: function.to_owned(),
        created_at,
    }
}

async fn subscribe(store: &Store, s: &Subscriber) -> bool {
    store.add_subscriber(&s.topic, &s.module, &s.function, s.created_at).await.expect("add subscriber")
}

async fn subscribing_twice_adds_once_and_keeps_the_first_subscription_time(url: String) {
    let store = open(&url).await;
    let first = subscriber("orders", "bank", "trans-in", at(0));
    let later = Subscriber { created_at: at(5), ..first.clone() };

    assert!(subscribe(&store, &first).await, "the first subscription is added");
    assert!(!subscribe(&store, &later).await, "the second finds it there");

    assert_eq!(store.subscribers(&first.topic).await.expect("subscribers"), std::slice::from_ref(&first));
    assert_eq!(store.topics().await.expect("topics"), [first]);
}

async fn removing_a_subscriber_that_is_not_there_removes_nothing(url: String) {
    let store = open(&url).await;
    let kept = subscriber("orders", "bank", "trans-in", at(0));
    subscribe(&store, &kept).await;

    let remove = |t: &str, m: &str, f: &str| {
        let store = store.clone();
        let (t, m, f) = (topic(t), ModuleName::parse(m).expect("module name"), f.to_owned());
        async move { store.remove_subscriber(&t, &m, &f).await.expect("remove subscriber") }
    };
    assert!(!remove("payments", "bank", "trans-in").await, "unknown topic");
    assert!(!remove("orders", "shop", "trans-in").await, "another module");
    assert!(!remove("orders", "bank", "trans-out").await, "another function");
    assert_eq!(store.subscribers(&kept.topic).await.expect("subscribers"), std::slice::from_ref(&kept));

    assert!(remove("orders", "bank", "trans-in").await, "the subscriber itself");
    assert!(!remove("orders", "bank", "trans-in").await, "removed already");
    assert!(store.subscribers(&kept.topic).await.expect("subscribers").is_empty());
    assert!(store.topics().await.expect("topics").is_empty(), "a topic without subscribers is gone");

    // Removed, it can be subscribed again, at its new time.
    let again = Subscriber { created_at: at(9), ..kept };
    assert!(subscribe(&store, &again).await);
    assert_eq!(store.subscribers(&again.topic).await.expect("subscribers"), [again]);
}

async fn subscribers_are_listed_in_subscription_order_then_by_module_and_function(url: String) {
    let store = open(&url).await;
    // Names whose order differs between byte order and a locale's (which
    // skips punctuation): both backends must agree with byte order.
    let in_order = [
        subscriber("orders", "zeta", "notify", at(0)),
        subscriber("orders", "a-b", "x", at(1)),
        subscriber("orders", "a_b", "x", at(1)),
        subscriber("orders", "ab", "x", at(1)),
        subscriber("orders", "bank", "trans-in", at(2)),
        subscriber("orders", "bank", "trans_in", at(2)),
        subscriber("orders", "bank", "transin", at(2)),
        subscriber("orders", "alpha", "late", at(3)),
    ];
    for s in in_order.iter().rev() {
        assert!(subscribe(&store, s).await, "{s:?}");
    }

    assert_eq!(store.subscribers(&topic("orders")).await.expect("subscribers"), in_order);
}

async fn topics_are_isolated_from_each_other_and_listed_by_name(url: String) {
    let store = open(&url).await;
    let created = subscriber("orders.created", "bank", "trans-in", at(2));
    let created_too = subscriber("orders.created", "shop", "ship", at(3));
    let same_function_elsewhere = subscriber("orders-created", "bank", "trans-in", at(0));
    let other = subscriber("audit", "ledger", "record", at(1));
    for s in [&created, &created_too, &same_function_elsewhere, &other] {
        assert!(subscribe(&store, s).await, "{s:?}");
    }

    assert_eq!(store.subscribers(&created.topic).await.expect("subscribers"), [created.clone(), created_too.clone()]);
    assert_eq!(store.subscribers(&other.topic).await.expect("subscribers"), std::slice::from_ref(&other));
    assert!(store.subscribers(&topic("orders")).await.expect("a prefix is not a topic").is_empty());
    assert_eq!(
        store.topics().await.expect("topics"),
        [other.clone(), same_function_elsewhere.clone(), created.clone(), created_too.clone()],
        "by topic name in byte order ('-' before '.'), then in subscription order"
    );

    // Removing from one topic leaves the same function on another subscribed.
    assert!(store.remove_subscriber(&created.topic, &created.module, &created.function).await.expect("remove"));
    assert_eq!(
        store.subscribers(&same_function_elsewhere.topic).await.expect("subscribers"),
        [same_function_elsewhere]
    );
    assert_eq!(store.subscribers(&created.topic).await.expect("subscribers"), [created_too]);
}

/// Every filter of the transaction list is served by an index on SQLite (the
/// embedded default), never by a scan of every transaction.
#[test]
fn every_list_filter_is_served_by_an_index() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    for migration in [
        include_str!("../../migrations/sqlite/0001_coordinator.sql"),
        include_str!("../../migrations/sqlite/0002_http_hosts.sql"),
        include_str!("../../migrations/sqlite/0003_history.sql"),
    ] {
        conn.execute_batch(migration).unwrap();
    }
    let sql = super::queries::Sql::new("main.wasmtx_");
    let some = |s: &str| Some(s.to_owned());
    for (filter, index) in [
        (ListFilter { status: some("failed"), ..ListFilter::default() }, "wasmtx_transactions_status"),
        (ListFilter { mode: some("tcc"), ..ListFilter::default() }, "wasmtx_transactions_mode"),
        (ListFilter { module: some("bank"), ..ListFilter::default() }, "wasmtx_branch_ops_module"),
    ] {
        let (text, params) = sql.list_filtered(&ListFilter { limit: 10, ..filter });
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {text}")).unwrap();
        let mut bound: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p as &dyn rusqlite::ToSql).collect();
        bound.push(&10);
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(bound.iter()), |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.iter().any(|step| step.contains(index)), "{text}: {plan:?}");
        assert!(!plan.iter().any(|step| step == "SCAN wasmtx_transactions"), "{text}: {plan:?}");
    }
}

async fn heartbeats_list_the_instances_heard_from_lately_and_a_forgotten_one_goes(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let beat = |node: &str, at: i64, in_flight: u64| super::Instance {
        node: node.to_owned(),
        version: "0.1.0".to_owned(),
        started_at: Millis(1_000),
        heartbeat_at: Millis(at),
        in_flight,
    };
    store.heartbeat(&beat("node-b", 5_000, 2)).await.unwrap();
    store.heartbeat(&beat("node-a", 2_000, 0)).await.unwrap();
    store.heartbeat(&beat("node-a", 6_000, 7)).await.unwrap();
    assert_eq!(store.instances(Millis(0)).await.unwrap(), [beat("node-a", 6_000, 7), beat("node-b", 5_000, 2)]);
    assert_eq!(store.instances(Millis(5_500)).await.unwrap(), [beat("node-a", 6_000, 7)], "b not heard from since");
    store.forget_instance("node-a").await.unwrap();
    store.forget_instance("node-a").await.unwrap();
    assert_eq!(store.instances(Millis(0)).await.unwrap(), [beat("node-b", 5_000, 2)]);
}

// ---------------------------------------------------------------------------
// Workflows: journal, signals, parking
// ---------------------------------------------------------------------------

/// A submitted workflow (its `run` op only), due at `created_at`, not leased.
fn workflow(id: &str, created_at: Millis) -> TransactionState {
    let mut state = saga(id, created_at);
    state.transaction.mode = Mode::Workflow;
    state.ops = vec![op("00", Op::Run, br#"{"order":7}"#)];
    state
}

/// Journal entry `seq`: a step call (bytes that are not UTF-8 in its
/// payload and output) for odd seqs, a `random` for even ones.
fn entry(seq: u32, value: u64) -> JournalEntry {
    let (call, answer) = if seq % 2 == 1 {
        let target = |function: &str| StepTarget { module: "bank".to_owned(), function: function.to_owned() };
        (
            StepCall::Call {
                branch_id: BranchId::from_index(seq as usize),
                action: target("trans-out"),
                compensate: Some(target("trans-out-undo")),
                payload: vec![0, 159, 146, 150, 255],
            },
            StepAnswer::Ok { output: value.to_be_bytes().to_vec() },
        )
    } else {
        (StepCall::Random, StepAnswer::Value { value })
    };
    JournalEntry { seq, call, answer, at: at(i64::from(seq)) }
}

fn save_with(lease: &Lease, tx: &Transaction, release: bool, journal: Vec<JournalEntry>) -> Progress {
    Progress::Save { lease: lease.clone(), transaction: tx.clone(), ops: Vec::new(), release, journal }
}

async fn journal(store: &Store, id: &str) -> Vec<JournalEntry> {
    store.journal(&gid(id)).await.expect("journal")
}

async fn signal(store: &Store, id: &str, name: &str, payload: &[u8], now: Millis) -> SignalSent {
    store.send_signal(&gid(id), name, payload, now).await.expect("send_signal")
}

async fn count(store: &Store, table: &str) -> i64 {
    store.scalar_raw(&format!("SELECT COUNT(*) FROM {}{table}", tables(store))).await.expect("count")
}

async fn journal_entries_are_appended_by_saves_and_read_back_in_seq_order(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    create(&store, &workflow("wf-2", T0)).await;
    let lease = claim(&store, "wf-1", "node-a", T0, at(10_000)).await.expect("claim");
    let tx = load(&store, "wf-1").await.transaction;

    store.write(&save_with(&lease, &tx, false, vec![entry(2, 7), entry(1, 42)])).await.expect("first save");
    // A retried save repeats entry 2 as it is: accepted, stored once.
    store.write(&save_with(&lease, &tx, false, vec![entry(2, 7), entry(3, 9)])).await.expect("second save");
    store.save(&lease, &tx, &[]).await.expect("a plain save appends nothing");

    assert_eq!(journal(&store, "wf-1").await, [entry(1, 42), entry(2, 7), entry(3, 9)]);
    assert!(journal(&store, "wf-2").await.is_empty(), "another workflow's journal is its own");
    assert!(journal(&store, "unknown").await.is_empty());
}

async fn a_save_under_a_stale_epoch_writes_no_journal_entries(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    let stale = claim(&store, "wf-1", "node-a", T0, at(1_000)).await.expect("a claims");
    claim(&store, "wf-1", "node-b", at(2_000), at(12_000)).await.expect("b takes over");
    let before = load(&store, "wf-1").await;

    let result = store.write(&save_with(&stale, &before.transaction, true, vec![entry(1, 1)])).await;

    assert!(matches!(result, Err(StoreError::Fenced { .. })), "expected Fenced, got {result:?}");
    assert!(journal(&store, "wf-1").await.is_empty());
    assert_eq!(load(&store, "wf-1").await, before);
}

async fn a_journal_entry_stored_with_other_content_is_corrupt_and_the_save_writes_nothing(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    let lease = claim(&store, "wf-1", "node-a", T0, at(10_000)).await.expect("claim");
    let tx = load(&store, "wf-1").await.transaction;
    store.write(&save_with(&lease, &tx, false, vec![entry(1, 42)])).await.expect("save");
    let before = load(&store, "wf-1").await;

    let changed = Transaction { status: Status::Succeeded, next_due: None, ..tx };
    let result = store.write(&save_with(&lease, &changed, true, vec![entry(1, 43), entry(2, 5)])).await;

    assert!(matches!(&result, Err(StoreError::Corrupt(m)) if m.contains("journal entry 1")), "got {result:?}");
    assert_eq!(journal(&store, "wf-1").await, [entry(1, 42)], "neither entry is written");
    assert_eq!(load(&store, "wf-1").await, before, "nor the state");
}

async fn an_undecodable_journal_entry_is_corrupt(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    create(&store, &workflow("wf-2", T0)).await;
    let t = tables(&store);
    store
        .execute_raw(&format!("INSERT INTO {t}journal (gid, seq, entry) VALUES ('wf-1', 1, '{{not json')"))
        .await
        .expect("plant bad JSON");
    let misplaced = serde_json::to_string(&entry(2, 1)).expect("encode");
    store
        .execute_raw(&format!("INSERT INTO {t}journal (gid, seq, entry) VALUES ('wf-2', 1, '{misplaced}')"))
        .await
        .expect("plant an entry under another seq");

    for id in ["wf-1", "wf-2"] {
        let result = store.journal(&gid(id)).await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{id}: expected Corrupt, got {result:?}");
    }
}

async fn send_signal_refuses_unknown_gids_other_modes_and_final_workflows_and_stores_nothing(url: String) {
    let store = open(&url).await;
    create(&store, &saga("saga-1", T0)).await;
    create(&store, &with_status(workflow("done", T0), Status::Succeeded)).await;
    create(&store, &with_status(workflow("gave-up", T0), Status::Failed)).await;
    let before = [load(&store, "saga-1").await, load(&store, "done").await, load(&store, "gave-up").await];

    assert_eq!(signal(&store, "unknown", "go", b"x", T0).await, SignalSent::UnknownGid);
    assert_eq!(signal(&store, "saga-1", "go", b"x", T0).await, SignalSent::NotWorkflow(Mode::Saga));
    assert_eq!(signal(&store, "done", "go", b"x", T0).await, SignalSent::Finished(Status::Succeeded));
    assert_eq!(signal(&store, "gave-up", "go", b"x", T0).await, SignalSent::Finished(Status::Failed));

    assert_eq!(count(&store, "signals").await, 0);
    let after = [load(&store, "saga-1").await, load(&store, "done").await, load(&store, "gave-up").await];
    assert_eq!(after, before);
}

async fn send_signal_wakes_a_submitted_workflow_only_when_no_live_lease_drives_it(url: String) {
    let store = open(&url).await;
    let now = at(5_000);
    create(&store, &with_next_due(workflow("free", T0), None)).await;
    create(&store, &with_next_due(workflow("due-earlier", T0), Some(at(1_000)))).await;
    create(&store, &with_next_due(workflow("due-later", T0), Some(at(60_000)))).await;
    create(&store, &leased(with_next_due(workflow("expired", T0), None), "node-b", at(4_999), 3)).await;
    create(&store, &leased(with_next_due(workflow("live", T0), None), "node-b", now, 3)).await;
    create(&store, &with_next_due(with_status(workflow("aborting", T0), Status::Aborting), None)).await;
    let live_before = load(&store, "live").await;

    for (id, wake, next_due) in [
        ("free", true, Some(now)),
        ("due-earlier", true, Some(at(1_000))),
        ("due-later", true, Some(now)),
        ("expired", true, Some(now)),
        ("live", false, None),
        ("aborting", false, None),
    ] {
        assert_eq!(signal(&store, id, "go", id.as_bytes(), now).await, SignalSent::Sent { wake }, "{id}");
        let t = load(&store, id).await.transaction;
        assert_eq!(t.next_due, next_due, "{id}");
        assert_eq!(store.signals(&gid(id), "go").await.expect("signals"), [id.as_bytes()], "{id}");
    }
    assert_eq!(load(&store, "live").await, live_before, "a live owner's row is left alone");
    let expired = load(&store, "expired").await.transaction;
    assert_eq!((expired.lease_owner.as_deref(), expired.epoch), (Some("node-b"), 3), "waking claims nothing");
    let woken = store.claim_due("node-a", now, at(30_000), 10).await.expect("claim_due");
    assert_eq!(gids(&woken), ["due-earlier", "free", "due-later", "expired"]);
}

async fn signals_are_read_back_by_name_in_arrival_order(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    create(&store, &workflow("wf-2", T0)).await;

    for (id, name, payload) in [
        ("wf-1", "approve", &b"first"[..]),
        ("wf-1", "cancel", b"stop"),
        ("wf-2", "approve", b"elsewhere"),
        ("wf-1", "approve", b"\x00\xff second"),
        ("wf-1", "approve", b""),
    ] {
        assert!(matches!(signal(&store, id, name, payload, T0).await, SignalSent::Sent { .. }), "{id} {name}");
    }

    let signals = |id: &str, name: &str| {
        let (store, gid, name) = (store.clone(), gid(id), name.to_owned());
        async move { store.signals(&gid, &name).await.expect("signals") }
    };
    assert_eq!(signals("wf-1", "approve").await, [&b"first"[..], b"\x00\xff second", b""]);
    assert_eq!(signals("wf-1", "cancel").await, [b"stop"]);
    assert_eq!(signals("wf-2", "approve").await, [b"elsewhere"]);
    assert!(signals("wf-1", "approv").await.is_empty());
    assert!(signals("unknown", "approve").await.is_empty());
}

async fn a_workflow_keeps_at_most_max_signals(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    create(&store, &workflow("wf-2", T0)).await;
    for i in 0..super::MAX_SIGNALS {
        let name = if i % 2 == 0 { "a" } else { "b" };
        assert!(matches!(signal(&store, "wf-1", name, b"x", T0).await, SignalSent::Sent { .. }), "signal {i}");
    }
    assert_eq!(signal(&store, "wf-1", "c", b"one too many", T0).await, SignalSent::TooMany);
    assert!(store.signals(&gid("wf-1"), "c").await.expect("signals").is_empty(), "nothing stored");
    // Another workflow has its own allowance.
    assert!(matches!(signal(&store, "wf-2", "a", b"x", T0).await, SignalSent::Sent { .. }));
}

async fn park_with_an_unseen_signal_writes_nothing_and_the_caller_keeps_its_lease(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    let lease = claim(&store, "wf-1", "node-a", T0, at(10_000)).await.expect("claim");
    let tx = load(&store, "wf-1").await.transaction;
    store.write(&save_with(&lease, &tx, false, vec![entry(1, 42)])).await.expect("save");
    assert_eq!(signal(&store, "wf-1", "approve", b"yes", at(1)).await, SignalSent::Sent { wake: false });
    signal(&store, "wf-1", "other", b"not awaited", at(2)).await;
    let before = load(&store, "wf-1").await;

    let waiting = Transaction { next_due: None, updated_at: at(3), ..before.transaction.clone() };
    let progress = save_with(&lease, &waiting, true, vec![entry(2, 5)]);
    let parked = store.park(&progress, "approve", 0).await.expect("park");

    assert_eq!(parked, Parked::SignalWaiting);
    assert_eq!(load(&store, "wf-1").await, before, "status, lease and due time unchanged");
    assert_eq!(journal(&store, "wf-1").await, [entry(1, 42)], "no journal entry written");
    // Still the caller's: it takes the signal and saves under the same lease.
    store.write(&save_with(&lease, &before.transaction, false, vec![entry(2, 5)])).await.expect("save");
}

async fn park_without_an_unseen_signal_writes_the_progress_and_a_later_signal_wakes_it(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    let lease = claim(&store, "wf-1", "node-a", T0, at(10_000)).await.expect("claim");
    signal(&store, "wf-1", "approve", b"seen already", at(1)).await;
    let mut waiting = load(&store, "wf-1").await.transaction;
    waiting.next_due = None;
    waiting.attempts = 2;
    waiting.updated_at = at(3);

    let progress = save_with(&lease, &waiting, true, vec![entry(1, 42), entry(2, 5)]);
    let parked = store.park(&progress, "approve", 1).await.expect("park");

    assert_eq!(parked, Parked::Parked);
    let stored = load(&store, "wf-1").await.transaction;
    let expected = Transaction { lease_owner: None, lease_expires: None, epoch: 1, ..waiting };
    assert_eq!(stored, expected, "fields written, lease released");
    assert_eq!(journal(&store, "wf-1").await, [entry(1, 42), entry(2, 5)]);
    assert!(store.claim_due("node-b", at(5), at(30_000), 10).await.expect("claim_due").is_empty(), "parked");

    assert_eq!(signal(&store, "wf-1", "approve", b"next", at(6)).await, SignalSent::Sent { wake: true });
    let woken = store.claim_due("node-b", at(6), at(30_000), 10).await.expect("claim_due");
    assert_eq!(gids(&woken), ["wf-1"]);
}

async fn park_under_a_stale_lease_is_fenced_and_writes_nothing(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    let stale = claim(&store, "wf-1", "node-a", T0, at(1_000)).await.expect("a claims");
    claim(&store, "wf-1", "node-b", at(2_000), at(12_000)).await.expect("b takes over");
    let before = load(&store, "wf-1").await;
    let waiting = Transaction { next_due: None, ..before.transaction.clone() };

    for (seen, signals) in [(0, 0), (0, 1)] {
        if signals > 0 {
            signal(&store, "wf-1", "approve", b"yes", at(2_500)).await;
        }
        let result = store.park(&save_with(&stale, &waiting, true, vec![entry(1, 1)]), "approve", seen).await;
        assert!(matches!(result, Err(StoreError::Fenced { .. })), "{signals} signals: expected Fenced, got {result:?}");
    }
    assert_eq!(load(&store, "wf-1").await, before);
    assert!(journal(&store, "wf-1").await.is_empty());
}

async fn park_of_a_create_is_refused(url: String) {
    let store = open(&url).await;

    let result = store.park(&Progress::Create(workflow("wf-1", T0)), "approve", 0).await;

    assert!(matches!(result, Err(StoreError::Config(_))), "expected Config, got {result:?}");
    assert_eq!(store.load(&gid("wf-1")).await.expect("load"), None);
}

/// The property [`Store::park`] exists for: a signal sent while its
/// workflow parks is either counted by the park (which then does not park)
/// or finds the workflow parked and wakes it; never neither.
async fn a_signal_racing_a_park_is_either_seen_by_the_park_or_wakes_the_workflow(url: String) {
    let store = open(&url).await;
    for i in 0..30 {
        let id = format!("wf-{i:02}");
        create(&store, &with_next_due(workflow(&id, T0), None)).await;
        let lease = claim(&store, &id, "node-a", T0, at(60_000)).await.expect("claim");
        let tx = load(&store, &id).await.transaction;
        let parking = {
            let store = store.clone();
            let progress = save_with(&lease, &tx, true, vec![entry(1, 1)]);
            tokio::spawn(async move { store.park(&progress, "approve", 0).await })
        };
        let sending = {
            let (store, gid) = (store.clone(), gid(&id));
            tokio::spawn(async move { store.send_signal(&gid, "approve", b"yes", at(10)).await })
        };
        let parked = parking.await.expect("park task").expect("park");
        let sent = sending.await.expect("send task").expect("send_signal");

        let woken = sent == SignalSent::Sent { wake: true };
        assert_eq!(parked == Parked::Parked, woken, "{id}: {parked:?} and {sent:?}");
        let t = load(&store, &id).await.transaction;
        if woken {
            assert_eq!((t.lease_owner, t.next_due), (None, Some(at(10))), "{id}");
        } else {
            assert_eq!(t.lease_owner.as_deref(), Some("node-a"), "{id}");
        }
    }
}

async fn journal_and_signals_go_with_their_transaction(url: String) {
    let store = open(&url).await;
    create(&store, &workflow("wf-1", T0)).await;
    create(&store, &workflow("wf-2", T0)).await;
    for id in ["wf-1", "wf-2"] {
        let lease = claim(&store, id, "node-a", T0, at(10_000)).await.expect("claim");
        let tx = load(&store, id).await.transaction;
        store.write(&save_with(&lease, &tx, false, vec![entry(1, 1), entry(2, 2)])).await.expect("save");
        signal(&store, id, "approve", b"yes", at(1)).await;
    }

    let t = tables(&store);
    assert_eq!(store.execute_raw(&format!("DELETE FROM {t}transactions WHERE gid = 'wf-1'")).await.expect("delete"), 1);

    assert!(journal(&store, "wf-1").await.is_empty());
    assert!(store.signals(&gid("wf-1"), "approve").await.expect("signals").is_empty());
    assert_eq!((count(&store, "journal").await, count(&store, "signals").await), (2, 1), "wf-2 keeps its own");
}

#[test]
fn a_branch_commit_on_postgres_refuses_to_carry_journal_entries() {
    let state = workflow("wf-1", T0);
    let lease = Lease { gid: gid("wf-1"), owner: "node-a".to_owned(), epoch: 1 };

    let plain = super::progress_json_postgres(&save_with(&lease, &state.transaction, false, Vec::new()));
    let journaled = super::progress_json_postgres(&save_with(&lease, &state.transaction, false, vec![entry(1, 1)]));

    assert!(plain.is_ok(), "{plain:?}");
    assert!(
        matches!(&journaled, Err(StoreError::Config(m)) if m.contains("written by its driver")),
        "expected a refusal, got {journaled:?}"
    );
}

// ---------------------------------------------------------------------------
// Alerts and retention
// ---------------------------------------------------------------------------

/// `state` finished as `status` at `finished_at`.
fn finished(mut state: TransactionState, status: Status, finished_at: Millis) -> TransactionState {
    state.transaction.status = status;
    state.transaction.next_due = None;
    state.transaction.finished_at = Some(finished_at);
    state
}

async fn candidates(
    store: &Store,
    retries: u32,
    unfinished_before: Millis,
    limit: u32,
) -> Vec<(AlertCondition, String)> {
    let found = store.alert_candidates(retries, unfinished_before, limit).await.expect("alert_candidates");
    found.into_iter().map(|c| (c.condition, c.gid.to_string())).collect()
}

async fn alert_candidates_are_unfinished_transactions_over_the_retries_or_too_old_without_a_claim(url: String) {
    let store = open(&url).await;
    let recent = at(60_000);
    let mut op_retried = saga("op-retried", recent);
    op_retried.ops[2].attempts = 11;
    op_retried.ops[2].last_error = Some("bank said 503".to_owned());
    op_retried.ops[0].attempts = 3;
    op_retried.ops[0].last_error = Some("an older error".to_owned());
    let mut tx_retried = with_status(saga("tx-retried", recent), Status::Aborting);
    tx_retried.transaction.attempts = 12;
    tx_retried.transaction.last_error = Some("timed out".to_owned());
    let mut at_the_limit = saga("at-the-limit", recent);
    at_the_limit.ops[0].attempts = 10;
    let mut failed = finished(saga("failed", T0), Status::Failed, at(1));
    failed.ops[0].attempts = 50;
    let old = with_status(saga("old", T0), Status::Prepared);
    let old_done = finished(saga("old-done", T0), Status::Succeeded, at(2));
    for state in [&op_retried, &tx_retried, &at_the_limit, &failed, &old, &old_done] {
        create(&store, state).await;
    }

    let found = store.alert_candidates(10, at(30_000), 100).await.expect("alert_candidates");

    let expect = |condition, state: &TransactionState, attempts, last_error: Option<&str>| AlertCandidate {
        condition,
        gid: state.transaction.gid.clone(),
        mode: state.transaction.mode,
        status: state.transaction.status,
        attempts,
        created_at: state.transaction.created_at,
        last_error: last_error.map(str::to_owned),
    };
    assert_eq!(
        found,
        [
            expect(AlertCondition::Retries, &op_retried, 11, Some("bank said 503")),
            expect(AlertCondition::Retries, &tx_retried, 12, Some("timed out")),
            expect(AlertCondition::Unfinished, &old, 0, None),
        ]
    );
    assert_eq!(
        candidates(&store, 10, at(60_001), 1).await,
        [(AlertCondition::Retries, "op-retried".to_owned()), (AlertCondition::Unfinished, "op-retried".to_owned())],
        "at most `limit` of each condition, oldest first"
    );
    assert_eq!(candidates(&store, 20, T0, 100).await, [], "nothing over 20 attempts, nothing created before T0");
}

async fn an_alert_is_claimed_once_and_a_claim_given_back_makes_it_a_candidate_again(url: String) {
    let store = open(&url).await;
    let mut stuck = saga("stuck", T0);
    stuck.ops[0].attempts = 11;
    create(&store, &stuck).await;
    let both = [(AlertCondition::Retries, "stuck".to_owned()), (AlertCondition::Unfinished, "stuck".to_owned())];
    assert_eq!(candidates(&store, 10, at(1), 10).await, both);

    assert!(store.claim_alert(&gid("stuck"), AlertCondition::Retries, at(5)).await.expect("claim"));
    assert!(!store.claim_alert(&gid("stuck"), AlertCondition::Retries, at(6)).await.expect("claim again"));
    assert_eq!(
        candidates(&store, 10, at(1), 10).await,
        [(AlertCondition::Unfinished, "stuck".to_owned())],
        "a claim hides only its own condition"
    );
    let reopened = open(&url).await;
    assert!(!reopened.claim_alert(&gid("stuck"), AlertCondition::Retries, at(7)).await.expect("claim after restart"));

    store.unclaim_alert(&gid("stuck"), AlertCondition::Retries).await.expect("unclaim");
    assert_eq!(candidates(&store, 10, at(1), 10).await, both);
    assert!(store.claim_alert(&gid("stuck"), AlertCondition::Retries, at(8)).await.expect("claim once more"));
    assert!(!store.claim_alert(&gid("unknown"), AlertCondition::Retries, at(8)).await.expect("claim unknown"));
    assert_eq!(count(&store, "alerts").await, 1, "nothing claimed for an unknown gid");
}

/// Instances sharing a store: of many claimers of one alert, exactly one sends.
async fn concurrent_claims_of_one_alert_have_one_winner(url: String) {
    let store = open(&url).await;
    create(&store, &saga("stuck", T0)).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_alert(&gid("stuck"), AlertCondition::Unfinished, at(i)).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += u32::from(task.await.expect("task").expect("claim"));
    }
    assert_eq!(won, 1);
}

async fn delete_finished_before_takes_old_finished_transactions_with_everything_stored_about_them(url: String) {
    let store = open(&url).await;
    create(&store, &finished(saga("old-1", T0), Status::Succeeded, at(100))).await;
    create(&store, &finished(saga("old-2", T0), Status::Failed, at(300))).await;
    create(&store, &finished(saga("recent", T0), Status::Succeeded, at(5_000))).await;
    create(&store, &saga("running", T0)).await;
    // A workflow with a journal, a signal and an alert, then finished.
    create(&store, &workflow("old-wf", T0)).await;
    let lease = claim(&store, "old-wf", "node-a", T0, at(10_000)).await.expect("claim");
    let tx = load(&store, "old-wf").await.transaction;
    store.write(&save_with(&lease, &tx, false, vec![entry(1, 1)])).await.expect("save");
    signal(&store, "old-wf", "approve", b"yes", at(1)).await;
    assert!(store.claim_alert(&gid("old-wf"), AlertCondition::Unfinished, at(2)).await.expect("claim alert"));
    let done = Transaction { status: Status::Succeeded, next_due: None, finished_at: Some(at(200)), ..tx };
    store.save_and_release(&lease, &done, &[]).await.expect("finish");
    for id in ["old-1", "old-2", "old-wf", "recent", "running"] {
        store.append_history(&[HistoryEntry::new(&gid(id), at(1), "created")]).await.expect("history");
    }
    assert!(store.claim_alert(&gid("running"), AlertCondition::Unfinished, at(2)).await.expect("claim alert"));

    // Two at a time, finished longest ago first.
    assert_eq!(store.delete_finished_before(at(1_000), 2).await.expect("delete"), 2);
    assert!(store.load(&gid("old-1")).await.expect("load").is_none());
    assert!(store.load(&gid("old-wf")).await.expect("load").is_none());
    assert!(store.load(&gid("old-2")).await.expect("load").is_some(), "finished last of the old ones");
    assert_eq!(store.delete_finished_before(at(1_000), 2).await.expect("delete"), 1);
    assert_eq!(store.delete_finished_before(at(1_000), 2).await.expect("delete"), 0);

    let kept: HashSet<String> = store.list(100).await.expect("list").into_iter().map(|t| t.gid.to_string()).collect();
    assert_eq!(kept, HashSet::from(["recent".to_owned(), "running".to_owned()]));
    assert_eq!(count(&store, "branch_ops").await, 8, "the kept transactions' ops only");
    assert_eq!(count(&store, "history").await, 2, "the kept transactions' history only");
    assert_eq!(
        (count(&store, "journal").await, count(&store, "signals").await, count(&store, "alerts").await),
        (0, 0, 1),
        "the deleted workflow's journal, signal and alert are gone; the running one's alert stays"
    );
    assert!(store.history(&gid("old-1"), 10).await.expect("history").is_empty());
}

/// Retention and the alert scans on SQLite (the embedded default) are
/// served by indexes, never by a scan of every transaction.
#[test]
fn retention_and_alert_scans_are_served_by_an_index() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    for migration in [
        include_str!("../../migrations/sqlite/0001_coordinator.sql"),
        include_str!("../../migrations/sqlite/0002_http_hosts.sql"),
        include_str!("../../migrations/sqlite/0003_history.sql"),
        include_str!("../../migrations/sqlite/0004_topics.sql"),
        include_str!("../../migrations/sqlite/0005_instances.sql"),
        include_str!("../../migrations/sqlite/0006_workflows.sql"),
        include_str!("../../migrations/sqlite/0007_alerts.sql"),
    ] {
        conn.execute_batch(migration).unwrap();
    }
    let sql = super::queries::Sql::new("main.wasmtx_");
    for (text, index) in [
        (&sql.finished_before, "wasmtx_transactions_finished_at"),
        (&sql.alert_retries, "wasmtx_transactions_status"),
        (&sql.alert_unfinished, "wasmtx_transactions_status"),
    ] {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {text}")).unwrap();
        let plan: Vec<String> =
            stmt.query_map(rusqlite::params![1, 10], |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect();
        assert!(plan.iter().any(|step| step.contains(index)), "{text}: {plan:?}");
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN t") || step == "SCAN wasmtx_transactions"),
            "{text}: {plan:?}"
        );
    }
}

#[test]
fn the_unfinished_statuses_named_in_sql_are_the_models() {
    let named: Vec<&str> = super::queries::UNFINISHED_STATUSES.split(", ").map(|s| s.trim_matches('\'')).collect();
    for text in ["prepared", "submitted", "aborting", "succeeded", "failed"] {
        let status = Status::parse(text).expect("a model status");
        assert_eq!(!status.is_final(), named.contains(&text), "{text}");
    }
}
