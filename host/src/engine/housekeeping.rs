//! Housekeeping: one background task per instance that, every
//! [`Housekeeping::every`], tells an operator's webhook about transactions
//! that need a person ([`Alerts`]) and deletes transactions finished longer
//! ago than the retention.
//!
//! # Alerts
//!
//! A transaction is alerted on once per condition
//! ([`AlertCondition`](crate::store::AlertCondition)):
//! `retries` when it or one of its ops has more than
//! [`Alerts::after_retries`] attempts, `unfinished` when it is still
//! unfinished [`Alerts::after_unfinished`] after its creation. Once, across
//! restarts and instances: an alert is claimed in the store before it is
//! sent ([`Store::claim_alert`], an insert-if-absent that only one claimer
//! wins). A send that fails gives its claim back ([`Store::unclaim_alert`]),
//! so the alert is tried again next round (by whichever instance claims it),
//! and ends the round's sending: the webhook is likely down. An instance
//! that dies between its claim and its send loses that one alert.
//!
//! # Retention
//!
//! Transactions finished before `now - retention` go with everything
//! stored about them, in batches of [`Housekeeping::batch`], each its own
//! store transaction, with a pause between batches and at most
//! [`Housekeeping::max_batches`] a round: the store's writers (on SQLite,
//! its single writer) are never held for long.
//!
//! Must not drive transactions or change any that is unfinished; reads time
//! only from the engine's [`Clock`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Clock, Engine, duration_ms};
use crate::model::Millis;
use crate::store::{AlertCandidate, Store};

/// What the housekeeping task does, and how often.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    /// How often a round runs.
    pub every: Duration,
    /// `None`: no alerts.
    pub alerts: Option<Alerts>,
    /// How long finished transactions are kept; `None`: forever.
    pub retention: Option<Duration>,
    /// Transactions deleted per store transaction.
    pub batch: u32,
    /// Batches per round, at most; the rest waits for the next round.
    pub max_batches: u32,
    /// The pause between two batches.
    pub pause: Duration,
}

impl Default for Housekeeping {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(5),
            alerts: None,
            retention: None,
            batch: 500,
            max_batches: 20,
            pause: Duration::from_millis(50),
        }
    }
}

/// Where alerts go and when a transaction is alerted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alerts {
    /// An `http://` URL; each alert is POSTed to it as JSON.
    pub webhook: String,
    /// A transaction or op with more attempts than this is alerted on.
    pub after_retries: u32,
    /// A transaction unfinished this long after its creation is alerted on.
    pub after_unfinished: Duration,
}

impl Alerts {
    pub const DEFAULT_AFTER_RETRIES: u32 = 10;
    pub const DEFAULT_AFTER_UNFINISHED: Duration = Duration::from_secs(3600);
}

/// How long one alert's POST may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Candidates of each condition looked at per round.
const CANDIDATES_PER_ROUND: u32 = 100;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Alerts sent.
    pub alerted: u32,
    /// Finished transactions deleted.
    pub deleted: u64,
}

/// Runs the rounds on the engine's store and clock.
pub struct Housekeeper {
    store: Store,
    clock: Arc<dyn Clock>,
    config: Housekeeping,
    webhook: Option<Webhook>,
}

impl Housekeeper {
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Housekeeping) -> Self {
        let webhook = config.alerts.as_ref().map(|a| Webhook::new(&a.webhook));
        Self { store, clock, config, webhook }
    }

    /// Whether there is anything to do at all.
    pub fn enabled(&self) -> bool {
        self.config.alerts.is_some() || self.config.retention.is_some()
    }

    /// One round: alerts, then retention. Store trouble is logged and the
    /// round goes on; the next round tries again.
    pub async fn round(&self) -> Round {
        let mut round = Round::default();
        if let (Some(alerts), Some(webhook)) = (&self.config.alerts, &self.webhook) {
            round.alerted = self.alert(alerts, webhook).await;
        }
        if let Some(retention) = self.config.retention {
            round.deleted = self.retain(retention).await;
        }
        round
    }

    /// Rounds every [`Housekeeping::every`] until `shutdown` says stop.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(self.config.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.wait_for(|stopping| *stopping) => return,
            }
            let round = self.round().await;
            if round != Round::default() {
                tracing::debug!(alerted = round.alerted, deleted = round.deleted, "housekeeping round");
            }
        }
    }

    async fn alert(&self, alerts: &Alerts, webhook: &Webhook) -> u32 {
        let now = self.clock.now();
        let before = earlier(now, alerts.after_unfinished);
        let candidates = match self.store.alert_candidates(alerts.after_retries, before, CANDIDATES_PER_ROUND).await {
            Ok(candidates) => candidates,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for transactions to alert on");
                return 0;
            }
        };
        let mut sent = 0;
        for candidate in candidates {
            let (gid, condition) = (&candidate.gid, candidate.condition);
            match self.store.claim_alert(gid, condition, now).await {
                Ok(true) => {}
                // Another instance has it, or had it in an earlier round.
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(%gid, %condition, error = %e, "could not claim an alert");
                    continue;
                }
            }
            match webhook.send(&candidate).await {
                Ok(()) => {
                    sent += 1;
                    tracing::info!(%gid, %condition, "alert sent");
                }
                Err(e) => {
                    tracing::warn!(%gid, %condition, error = %e, "could not send an alert; it is tried again next round");
                    if let Err(e) = self.store.unclaim_alert(gid, condition).await {
                        tracing::warn!(%gid, %condition, error = %e, "could not give back an alert's claim: it is lost");
                    }
                    break;
                }
            }
        }
        sent
    }

    async fn retain(&self, retention: Duration) -> u64 {
        let cutoff = earlier(self.clock.now(), retention);
        let batch = self.config.batch.max(1);
        let mut deleted = 0;
        for n in 0..self.config.max_batches {
            if n > 0 {
                tokio::time::sleep(self.config.pause).await;
            }
            match self.store.delete_finished_before(cutoff, batch).await {
                Ok(count) => {
                    deleted += count;
                    if count < u64::from(batch) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete finished transactions");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "deleted transactions finished before the retention");
        }
        deleted
    }
}

/// `ago` before `now`.
fn earlier(now: Millis, ago: Duration) -> Millis {
    Millis(now.0.saturating_sub(i64::try_from(duration_ms(ago)).unwrap_or(i64::MAX)))
}

impl Engine {
    /// Starts the housekeeping task, if it has anything to do; it stops at
    /// [`Engine::shutdown`].
    pub(super) fn spawn_housekeeping(&self) {
        let housekeeper = Housekeeper::new(
            self.inner.store.clone(),
            self.inner.clock.clone(),
            self.inner.config.housekeeping.clone(),
        );
        if housekeeper.enabled() {
            tokio::spawn(housekeeper.run(self.inner.shutdown.subscribe()));
        }
    }
}

/// POSTs alerts to the operator's URL.
struct Webhook {
    url: String,
    client: reqwest::Client,
}

impl Webhook {
    fn new(url: &str) -> Self {
        let client = reqwest::Client::builder().timeout(SEND_TIMEOUT).build().unwrap_or_default();
        Self { url: url.to_owned(), client }
    }

    /// Sends `alert` as JSON; anything but a 2xx answer is a failure.
    async fn send(&self, alert: &AlertCandidate) -> Result<(), String> {
        let response = self.client.post(&self.url).json(&body(alert)).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(format!("the webhook answered {status}")) }
    }
}

/// The JSON an alert is sent as; `created_at` is milliseconds since the Unix epoch.
fn body(alert: &AlertCandidate) -> serde_json::Value {
    serde_json::json!({
        "condition": alert.condition.as_str(),
        "gid": alert.gid.as_str(),
        "mode": alert.mode.as_str(),
        "status": alert.status.as_str(),
        "attempts": alert.attempts,
        "created_at": alert.created_at.0,
        "last_error": alert.last_error,
    })
}

#[cfg(test)]
mod tests {
    //! Alerts to a local webhook and retention, on an injected clock, on
    //! both store backends.

    use std::collections::{HashSet, VecDeque};
    use std::sync::Mutex;

    use serde_json::Value;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::engine::{
        BoxFuture, BranchCall, BranchExecutor, BranchResult, EngineConfig, ManualClock, Outcome, RetryPolicy,
    };
    use crate::model::{Gid, HistoryEntry, Status, TransactionState};
    use crate::store::Created;

    use crate::test_db::on_both_stores;

    on_both_stores!(
        a_transaction_stuck_retrying_is_alerted_once_by_the_engine_s_housekeeping,
        a_transaction_unfinished_too_long_is_alerted_once_across_restarts,
        an_alert_the_webhook_refuses_is_sent_again_next_round,
        instances_sharing_a_store_send_each_alert_once,
        retention_deletes_only_transactions_finished_before_it_with_their_ops_and_history,
        without_retention_nothing_is_deleted,
    );

    const T0: Millis = Millis(1_700_000_000_000);
    const DAY_MS: i64 = 86_400_000;

    /// A webhook on a local port: records each request (its request line and
    /// JSON body) and answers with the scripted statuses, then 200.
    #[derive(Clone)]
    struct Receiver {
        url: String,
        requests: Arc<Mutex<Vec<(String, Value)>>>,
        statuses: Arc<Mutex<VecDeque<u16>>>,
    }

    impl Receiver {
        async fn start(statuses: Vec<u16>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let receiver = Receiver {
                url: format!("http://{}/hooks/wasmtx", listener.local_addr().expect("address")),
                requests: Arc::default(),
                statuses: Arc::new(Mutex::new(statuses.into())),
            };
            let serving = receiver.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serving.clone().serve(stream));
                }
            });
            receiver
        }

        /// HTTP/1.1 requests on one connection, one after the other.
        async fn serve(self, stream: TcpStream) {
            let mut stream = BufReader::new(stream);
            loop {
                let mut request_line = String::new();
                if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                    return;
                }
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if stream.read_line(&mut header).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if header == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().expect("a content length");
                    }
                }
                let mut body = vec![0; length];
                stream.read_exact(&mut body).await.expect("the body");
                let json = serde_json::from_slice(&body).expect("a JSON body");
                self.requests.lock().unwrap().push((request_line.trim_end().to_owned(), json));
                let status = self.statuses.lock().unwrap().pop_front().unwrap_or(200);
                let answer = format!("HTTP/1.1 {status} Whatever\r\ncontent-length: 0\r\n\r\n");
                if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }

        fn bodies(&self) -> Vec<Value> {
            self.requests.lock().unwrap().iter().map(|(_, body)| body.clone()).collect()
        }

        /// Alerts to this receiver.
        fn alerts(&self, after_retries: u32, after_unfinished: Duration) -> Alerts {
            Alerts { webhook: self.url.clone(), after_retries, after_unfinished }
        }
    }

    /// Every branch call fails as a host error would: retried with backoff.
    struct Down;

    impl BranchExecutor for Down {
        fn execute(&self, _call: BranchCall) -> BoxFuture<'_, BranchResult> {
            Box::pin(async { BranchResult::of(Outcome::Error("bank is down".to_owned())) })
        }
    }

    fn housekeeper(store: &Store, clock: &ManualClock, config: Housekeeping) -> Housekeeper {
        Housekeeper::new(store.clone(), Arc::new(clock.clone()), config)
    }

    fn alerting(alerts: Alerts) -> Housekeeping {
        Housekeeping { alerts: Some(alerts), ..Housekeeping::default() }
    }

    fn retaining(days: i64, batch: u32, max_batches: u32) -> Housekeeping {
        Housekeeping {
            retention: Some(Duration::from_millis(u64::try_from(days * DAY_MS).unwrap())),
            batch,
            max_batches,
            pause: Duration::from_millis(1),
            ..Housekeeping::default()
        }
    }

    /// A saga created at `at`, not due for a day (no poller would claim it).
    fn saga(gid: &str, at: Millis) -> TransactionState {
        let mut state = crate::engine::fixture::saga(gid, 2, at);
        state.transaction.next_due = Some(at.plus_ms(86_400_000));
        state
    }

    fn finished(gid: &str, status: Status, finished_at: Millis) -> TransactionState {
        let mut state = saga(gid, Millis(finished_at.0 - DAY_MS));
        state.transaction.status = status;
        state.transaction.next_due = None;
        state.transaction.finished_at = Some(finished_at);
        state
    }

    async fn create(store: &Store, state: &TransactionState) {
        assert_eq!(store.create_transaction(state).await.expect("create"), Created::New);
    }

    fn gid(s: &str) -> Gid {
        Gid::parse(s).expect("valid gid")
    }

    /// Polls `done` every 10 ms for up to 10 s.
    async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn a_transaction_stuck_retrying_is_alerted_once_by_the_engine_s_housekeeping(url: String) {
        let receiver = Receiver::start(vec![]).await;
        let store = Store::connect(&url).await.expect("store");
        let clock = ManualClock::new(T0);
        let config = EngineConfig {
            node: "node-a".to_owned(),
            poll: Duration::from_millis(10),
            retry: RetryPolicy { base_ms: 1_000, cap_ms: 1_000 },
            housekeeping: Housekeeping {
                every: Duration::from_millis(20),
                ..alerting(receiver.alerts(3, Duration::from_secs(86_400)))
            },
            ..EngineConfig::default()
        };
        let engine = Engine::new(store.clone(), Arc::new(Down), Arc::new(clock.clone()), config);
        let poller = engine.start().await.expect("start");
        engine.submit(crate::engine::fixture::saga("stuck", 1, T0), false).await.expect("submit");
        let attempts = async || store.load(&gid("stuck")).await.expect("load").map_or(0, |s| s.ops[0].attempts);

        // Three attempts are allowed: nothing is sent for them.
        for attempt in 1..=3 {
            eventually(&format!("attempt {attempt}"), async || attempts().await == attempt).await;
            clock.advance_ms(1_000);
        }
        eventually("attempt 4", async || attempts().await == 4).await;
        eventually("the alert", async || !receiver.bodies().is_empty()).await;

        // More attempts, and many more rounds: no second alert.
        for attempt in 5..=7 {
            clock.advance_ms(1_000);
            eventually(&format!("attempt {attempt}"), async || attempts().await == attempt).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        engine.shutdown(Duration::from_secs(1)).await;
        poller.abort();

        let requests = receiver.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 1, "{requests:?}");
        let (request_line, body) = &requests[0];
        assert_eq!(request_line, "POST /hooks/wasmtx HTTP/1.1");
        assert_eq!(
            body,
            &serde_json::json!({
                "condition": "retries", "gid": "stuck", "mode": "saga", "status": "submitted",
                "attempts": 4, "created_at": T0.0, "last_error": "01 action: bank is down",
            })
        );
    }

    async fn a_transaction_unfinished_too_long_is_alerted_once_across_restarts(url: String) {
        let receiver = Receiver::start(vec![]).await;
        let store = Store::connect(&url).await.expect("store");
        let clock = ManualClock::new(T0);
        create(&store, &saga("slow", T0)).await;
        create(&store, &finished("done", Status::Succeeded, T0)).await;
        let config = alerting(receiver.alerts(10, Duration::from_secs(3600)));
        let first = housekeeper(&store, &clock, config.clone());

        clock.advance_ms(3_600_000);
        assert_eq!(first.round().await.alerted, 0, "not older than an hour yet");
        clock.advance_ms(1);
        assert_eq!(first.round().await.alerted, 1);
        assert_eq!(first.round().await.alerted, 0, "sent already");
        // A restart (a new housekeeper on the same store) does not send it again.
        let restarted = housekeeper(&Store::connect(&url).await.expect("store"), &clock, config);
        clock.advance_ms(DAY_MS);
        assert_eq!(restarted.round().await, Round::default());

        let bodies = receiver.bodies();
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        assert_eq!(
            bodies[0],
            serde_json::json!({
                "condition": "unfinished", "gid": "slow", "mode": "saga", "status": "submitted",
                "attempts": 0, "created_at": T0.0, "last_error": null,
            })
        );
    }

    async fn an_alert_the_webhook_refuses_is_sent_again_next_round(url: String) {
        let receiver = Receiver::start(vec![500]).await;
        let store = Store::connect(&url).await.expect("store");
        let clock = ManualClock::new(T0);
        create(&store, &saga("slow-1", T0)).await;
        create(&store, &saga("slow-2", T0)).await;
        let config = alerting(receiver.alerts(10, Duration::from_secs(60)));
        let housekeeper = housekeeper(&store, &clock, config);
        clock.advance_ms(60_001);

        assert_eq!(housekeeper.round().await.alerted, 0, "refused: the round stops sending");
        assert_eq!(receiver.bodies().len(), 1, "slow-2 was not tried after the refusal");
        assert_eq!(housekeeper.round().await.alerted, 2, "both, slow-1 again");
        assert_eq!(housekeeper.round().await.alerted, 0);

        let gids: Vec<Value> = receiver.bodies().iter().map(|b| b["gid"].clone()).collect();
        assert_eq!(gids, ["slow-1", "slow-1", "slow-2"]);
    }

    async fn instances_sharing_a_store_send_each_alert_once(url: String) {
        let receiver = Receiver::start(vec![]).await;
        let clock = ManualClock::new(T0);
        let config = alerting(receiver.alerts(10, Duration::from_secs(60)));
        let mut stores = Vec::new();
        for _ in 0..3 {
            stores.push(Store::connect(&url).await.expect("store"));
        }
        let instances: Vec<Housekeeper> = stores.iter().map(|s| housekeeper(s, &clock, config.clone())).collect();
        for i in 0..10 {
            create(&stores[0], &saga(&format!("slow-{i}"), T0)).await;
        }
        clock.advance_ms(60_001);

        let rounds: Vec<Round> = futures_util::future::join_all(instances.iter().map(Housekeeper::round)).await;

        assert_eq!(rounds.iter().map(|r| r.alerted).sum::<u32>(), 10, "{rounds:?}");
        let gids: HashSet<String> =
            receiver.bodies().iter().map(|b| b["gid"].as_str().expect("a gid").to_owned()).collect();
        assert_eq!((gids.len(), receiver.bodies().len()), (10, 10));
    }

    async fn retention_deletes_only_transactions_finished_before_it_with_their_ops_and_history(url: String) {
        let store = Store::connect(&url).await.expect("store");
        let clock = ManualClock::new(T0);
        let old_done = finished("old-done", Status::Succeeded, Millis(T0.0 - 8 * DAY_MS));
        let old_failed = finished("old-failed", Status::Failed, Millis(T0.0 - 7 * DAY_MS - 1));
        let recent = finished("recent", Status::Succeeded, Millis(T0.0 - 6 * DAY_MS));
        let running = saga("running", Millis(T0.0 - 30 * DAY_MS));
        for state in [&old_done, &old_failed, &recent, &running] {
            create(&store, state).await;
            let created = HistoryEntry::new(&state.transaction.gid, state.transaction.created_at, "created");
            store.append_history(&[created]).await.expect("history");
        }
        // One batch of one a round: the rest waits for the next round.
        let housekeeper = housekeeper(&store, &clock, retaining(7, 1, 1));

        assert_eq!(housekeeper.round().await.deleted, 1);
        assert!(store.load(&gid("old-done")).await.expect("load").is_none(), "finished longest ago goes first");
        assert_eq!(housekeeper.round().await.deleted, 1);
        assert_eq!(housekeeper.round().await.deleted, 0);

        for (state, kept) in [(&old_done, false), (&old_failed, false), (&recent, true), (&running, true)] {
            let g = &state.transaction.gid;
            assert_eq!(store.load(g).await.expect("load").as_ref(), kept.then_some(state), "{g}");
            assert_eq!(store.history(g, 10).await.expect("history").len(), usize::from(kept), "{g}");
        }
        // No op of a deleted transaction is left behind: its gid and ops can be stored anew.
        create(&store, &old_done).await;
        assert_eq!(store.load(&gid("old-done")).await.expect("load"), Some(old_done.clone()));

        // A day later `recent` is past the retention too; the unfinished one never is.
        clock.advance_ms(DAY_MS + 1);
        let housekeeper = Housekeeper::new(store.clone(), Arc::new(clock.clone()), retaining(7, 500, 20));
        assert_eq!(housekeeper.round().await.deleted, 2, "recent and the new old-done");
        assert_eq!(
            store.list(10).await.expect("list").iter().map(|t| t.gid.to_string()).collect::<Vec<_>>(),
            ["running"]
        );
    }

    async fn without_retention_nothing_is_deleted(url: String) {
        let store = Store::connect(&url).await.expect("store");
        let clock = ManualClock::new(T0);
        create(&store, &finished("ancient", Status::Succeeded, Millis(T0.0 - 3_650 * DAY_MS))).await;
        let housekeeper = housekeeper(&store, &clock, Housekeeping::default());

        assert!(!housekeeper.enabled());
        assert_eq!(housekeeper.round().await, Round::default());
        assert!(store.load(&gid("ancient")).await.expect("load").is_some());
    }
}
