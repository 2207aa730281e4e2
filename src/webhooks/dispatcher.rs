//! The webhook dispatcher: one actor per node that delivers the replicated outbox.
//!
//! Every node applies the same entries, so every node learns of every webhook job
//! (`Notice::Webhook`) and keeps it in its due-queue; only the Raft leader sends. A
//! delivery is a spawned task (the actor never awaits HTTP) that reports back with
//! `WebhookMsg::Attempted`. A 2xx answer, or giving up (24 h after the job was
//! created, tenant deleted, unusable URL), proposes `Op::WebhookDone` so the outbox
//! row goes away durably; anything else is retried with `backoff::next_delay`.
//! Delivery is at-least-once: a crash between the 2xx and the commit of
//! `WebhookDone` sends the same body (same `event_id`) again.
//!
//! Fairness: the due-queue is kept per tenant ([`super::fair::FairQueue`]); tenants take
//! turns and each has at most `tenant_concurrency` deliveries in flight, so one tenant's
//! slow receiver cannot hold every slot. Unless `allow_private`, the client resolves
//! host names through [`super::target::PublicOnly`] and literal internal addresses are
//! refused before connecting (SSRF guard); URLs are logged with credentials redacted.
//!
//! The queue is derived state: at start, and whenever this node becomes leader
//! again, it is refilled from `StateStore::webhook_jobs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

use super::backoff;
use super::fair::FairQueue;
use super::signature::{self, SIGNATURE_HEADER};
use super::target;
use crate::clock::now_ms;
use crate::consensus::Consensus;
use crate::state::{Notice, Op, WebhookJob};

/// How often due jobs are looked at (new jobs start at once, on their notice).
const TICK: Duration = Duration::from_millis(200);
/// Wait before proposing `WebhookDone` again after the proposal failed.
const RETIRE_RETRY: Duration = Duration::from_secs(1);
/// Wait before looking at a job again after the store could not be read.
const STORE_RETRY_MS: i64 = 1000;
/// How often a follower drops queued jobs that the leader has finished.
const PRUNE_EVERY_MS: i64 = 10_000;
/// Response bytes read (and thrown away) so the connection can go back to the pool.
const DRAIN_LIMIT: usize = 16 * 1024;

/// The actor that delivers status webhooks from the replicated outbox.
pub struct WebhookDispatcher;

/// What the dispatcher needs: the write path and store, its notice feed, and limits.
pub struct WebhookArgs {
    /// Proposes `Op::WebhookDone`; its store holds the outbox and the tenants' secrets.
    pub consensus: Arc<Consensus>,
    /// The store's webhook notices (`Notifier::webhooks`); other notices are ignored.
    pub notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    /// Deliveries in flight at most (0 is taken as 1).
    pub concurrency: usize,
    /// Deliveries in flight for one tenant at most (0 is taken as 1), so a slow receiver
    /// holds only its share of `concurrency`.
    pub tenant_concurrency: usize,
    /// Whether webhooks may go to internal addresses; off, they are refused (SSRF guard).
    pub allow_private: bool,
    /// Per-request timeout (contract: 5 s); connecting counts against it.
    pub timeout: Duration,
    /// How long after a job's `created_at` it is retried before being dropped (24 h).
    pub max_age: Duration,
}

/// Messages of the dispatcher. All are internal: the notice feed, the delivery tasks
/// and the timer send them.
#[derive(ractor_cluster::RactorMessage)]
pub enum WebhookMsg {
    /// A job was added to the outbox (or found there at start): queue it, due now.
    Due(String),
    /// A delivery task finished one attempt.
    Attempted {
        /// The job's event id.
        event_id: String,
        /// The job's tenant (its in-flight count goes down).
        tenant: String,
        /// What the receiver said.
        outcome: Attempt,
    },
    /// The `WebhookDone` proposal for a job came back.
    Retired {
        /// The job's event id.
        event_id: String,
        /// Committed; on false it is proposed again after `RETIRE_RETRY`.
        ok: bool,
    },
    /// Propose `WebhookDone` again for a job whose earlier proposal failed.
    Retire(String),
    /// Start due jobs; notice leadership changes.
    Tick,
}

/// The result of one delivery attempt, as reported by its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx answer: delivered.
    Delivered(u16),
    /// Any other status: retried.
    Rejected(u16),
    /// No answer within the timeout: retried.
    Timeout,
    /// Connection or protocol failure, or a target refused as internal: retried.
    Failed(String),
    /// The request could not even be built (bad URL): given up at once.
    Invalid(String),
}

/// Where a known job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// In the due-queue under this time (ms since epoch).
    Queued(i64),
    /// A delivery task is running.
    InFlight,
    /// `WebhookDone` is being proposed.
    Retiring,
}

#[derive(Debug)]
struct Tracked {
    phase: Phase,
    /// Failed attempts so far (drives the backoff).
    failures: u32,
    /// Known once the row has been read (for logs and the deadline).
    message_id: String,
    tenant: String,
    created_at: Option<i64>,
}

/// The dispatcher's queue and deliveries in flight.
pub struct WebhookState {
    consensus: Arc<Consensus>,
    client: reqwest::Client,
    concurrency: usize,
    /// Deliveries in flight for one tenant at most.
    tenant_concurrency: usize,
    /// Whether webhooks may go to internal addresses.
    allow_private: bool,
    timeout: Duration,
    max_age_ms: i64,
    /// Every job this node knows of and has not finished.
    jobs: HashMap<String, Tracked>,
    /// The queued jobs, per tenant, taken in turns.
    due: FairQueue,
    in_flight: usize,
    /// Deliveries in flight per tenant (absent: none).
    in_flight_by_tenant: HashMap<String, usize>,
    /// The queue was filled from the outbox since this node was last a follower.
    synced: bool,
    last_prune: i64,
    forwarder: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

/// Builds the one HTTP client (and its connection pool) all deliveries share.
fn http_client(
    timeout: Duration,
    concurrency: usize,
    allow_private: bool,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = crate::http_client::builder();
    if !allow_private {
        builder = builder.dns_resolver(target::PublicOnly);
    }
    builder
        // A redirect is not a delivery: a POST would turn into a GET.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .user_agent(concat!("smsgw/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn count(result: &'static str) {
    metrics::counter!("smsgw_webhook_deliveries_total", "result" => result).increment(1);
}

/// The error and its causes on one line (reqwest's own text hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Sends one job once. Runs in its own task.
async fn deliver(
    client: reqwest::Client,
    job: WebhookJob,
    secrets: Vec<String>,
    timeout: Duration,
    allow_private: bool,
) -> Attempt {
    if !allow_private && let Some(why) = target::literal_problem(&job.url) {
        // A literal IP is connected to without the resolver: checked here.
        warn!(url = %target::redact(&job.url), reason = %why, "webhook refused: internal target (webhook_allow_private is off)");
        return Attempt::Failed(format!("refused: {why} (webhook_allow_private is off)"));
    }
    let t = now_ms().div_euclid(1000);
    let keys: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
    let sig = signature::sign_all(&keys, t, job.body.as_bytes());
    let req = client
        .post(&job.url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, sig)
        .body(job.body);
    match req.send().await {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let mut read = 0;
            while read < DRAIN_LIMIT {
                match resp.chunk().await {
                    Ok(Some(c)) => read += c.len(),
                    _ => break,
                }
            }
            if (200..300).contains(&status) {
                Attempt::Delivered(status)
            } else {
                Attempt::Rejected(status)
            }
        }
        // Without the URL: it may carry credentials (user:password@).
        Err(e) if e.is_timeout() => Attempt::Timeout,
        Err(e) if e.is_builder() => Attempt::Invalid(error_chain(&e.without_url())),
        Err(e) => Attempt::Failed(error_chain(&e.without_url())),
    }
}

impl WebhookState {
    /// The tenant of a job, read from the outbox ("" when it cannot be read: such jobs
    /// share one turn).
    fn tenant_of(&self, event_id: &str) -> String {
        match self.consensus.store().webhook_job(event_id) {
            Ok(Some(job)) => job.tenant,
            _ => String::new(),
        }
    }

    /// Queues a job of `tenant` not known yet, due at `due_ms`.
    fn add(&mut self, event_id: String, tenant: String, due_ms: i64) {
        if self.jobs.contains_key(&event_id) {
            return;
        }
        self.due.insert(&tenant, due_ms, event_id.clone());
        self.jobs.insert(
            event_id,
            Tracked {
                phase: Phase::Queued(due_ms),
                failures: 0,
                message_id: String::new(),
                tenant,
                created_at: None,
            },
        );
    }

    /// Moves a known job back into the due-queue.
    fn requeue(&mut self, event_id: &str, due_ms: i64) {
        if let Some(t) = self.jobs.get_mut(event_id) {
            if let Phase::Queued(old) = t.phase {
                self.due.remove(&t.tenant, old, event_id);
            }
            t.phase = Phase::Queued(due_ms);
            self.due.insert(&t.tenant, due_ms, event_id.to_string());
        }
    }

    fn forget(&mut self, event_id: &str) {
        if let Some(t) = self.jobs.remove(event_id)
            && let Phase::Queued(due) = t.phase
        {
            self.due.remove(&t.tenant, due, event_id);
        }
    }

    /// Adds every job of the outbox that is not known yet, due now.
    fn sync_outbox(&mut self) -> Result<(), crate::state::StoreError> {
        let now = now_ms();
        for job in self.consensus.store().webhook_jobs()? {
            self.add(job.event_id, job.tenant, now);
        }
        self.synced = true;
        Ok(())
    }

    /// On a follower: drops queued jobs whose row the leader has removed.
    fn prune(&mut self) {
        let queued: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, t)| matches!(t.phase, Phase::Queued(_)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in queued {
            if let Ok(None) = self.consensus.store().webhook_job(&id) {
                self.forget(&id);
            }
        }
    }

    /// Starts due jobs while this node leads and there is room.
    fn pump(&mut self, myself: &ActorRef<WebhookMsg>) {
        if !self.consensus.is_leader() {
            return;
        }
        let now = now_ms();
        while self.in_flight < self.concurrency {
            let (busy, cap) = (&self.in_flight_by_tenant, self.tenant_concurrency);
            let Some((_tenant, _due, id)) = self
                .due
                .pop_due(now, |t| busy.get(t).is_some_and(|n| *n >= cap))
            else {
                break;
            };
            if let Some(t) = self.jobs.get_mut(&id) {
                // Out of the queue; `start` decides where it goes next.
                t.phase = Phase::InFlight;
            }
            self.start(myself, id, now);
        }
    }

    /// Reads the job and either gives up on it or spawns one delivery attempt.
    fn start(&mut self, myself: &ActorRef<WebhookMsg>, event_id: String, now: i64) {
        let mut job = match self.consensus.store().webhook_job(&event_id) {
            Ok(Some(job)) => job,
            Ok(None) => {
                // Finished by an earlier leader (or by us before a restart).
                self.forget(&event_id);
                return;
            }
            Err(e) => {
                warn!(event_id = %event_id, error = %e, "cannot read webhook job");
                self.requeue(&event_id, now + STORE_RETRY_MS);
                return;
            }
        };
        let Some(t) = self.jobs.get_mut(&event_id) else {
            return;
        };
        t.message_id.clone_from(&job.message_id);
        if t.created_at.is_none() {
            // First seen here (a restart, or a new leader): its earlier attempts are not
            // known, so the backoff continues from what the job's age implies instead of
            // starting again at 1 s.
            let age = Duration::from_millis(u64::try_from(now - job.created_at).unwrap_or(0));
            t.failures = t.failures.max(backoff::failures_within(age));
        }
        t.created_at = Some(job.created_at);
        let failures = t.failures;

        if now.saturating_sub(job.created_at) >= self.max_age_ms {
            count("gave_up");
            warn!(
                event_id = %event_id, message_id = %job.message_id, tenant = %job.tenant,
                attempts = failures, "webhook not delivered within its retry period; dropped"
            );
            self.retire(myself, event_id);
            return;
        }
        // Its secrets as they are now: the current one, and the one a rotation replaced
        // while its overlap lasts (both signed).
        let tenant = {
            let cfg = self.consensus.store().config();
            cfg.webhook_secrets(&job.tenant, now)
                .zip(cfg.tenants.get(&job.tenant).map(|t| t.callback_url.clone()))
        };
        let Some((secret, tenant_url)) = tenant else {
            self.give_up(myself, event_id, &job, "tenant no longer exists");
            return;
        };

        // The URL as it is now: the message's own, else its tenant's current one (a
        // customer who fixes a wrong URL gets the pending events there).
        let own_url = match self.consensus.store().get_message(&job.message_id) {
            Ok(Some(m)) => m.callback_url.as_deref().map(str::to_string),
            // Gone (retention) or unreadable: the URL the job was made for.
            _ => Some(job.url.clone()),
        };
        match own_url.or(tenant_url) {
            Some(url) => job.url = url,
            None => {
                self.give_up(
                    myself,
                    event_id,
                    &job,
                    "the tenant's callback URL was removed",
                );
                return;
            }
        }

        self.in_flight += 1;
        let tenant = self
            .jobs
            .get(&event_id)
            .map(|t| t.tenant.clone())
            .unwrap_or_default();
        *self.in_flight_by_tenant.entry(tenant.clone()).or_default() += 1;
        let span = tracing::info_span!(
            "webhook",
            event_id = %event_id,
            message_id = %job.message_id,
            tenant = %job.tenant
        );
        let client = self.client.clone();
        let timeout = self.timeout;
        let allow_private = self.allow_private;
        let me = myself.clone();
        tokio::spawn(
            async move {
                debug!(attempt = failures + 1, url = %target::redact(&job.url), "delivering webhook");
                let outcome = deliver(client, job, secret, timeout, allow_private).await;
                let _ = me.send_message(WebhookMsg::Attempted {
                    event_id,
                    tenant,
                    outcome,
                });
            }
            .instrument(span),
        );
    }

    /// Drops a job that can never be delivered: counted, logged with `why`, retired.
    fn give_up(
        &mut self,
        myself: &ActorRef<WebhookMsg>,
        event_id: String,
        job: &WebhookJob,
        why: &str,
    ) {
        count("gave_up");
        warn!(
            event_id = %event_id, message_id = %job.message_id, tenant = %job.tenant,
            "{why}; webhook dropped"
        );
        self.retire(myself, event_id);
    }

    /// Proposes `WebhookDone` in a task; the answer comes back as `Retired`.
    fn retire(&mut self, myself: &ActorRef<WebhookMsg>, event_id: String) {
        let Some(t) = self.jobs.get_mut(&event_id) else {
            return;
        };
        if let Phase::Queued(due) = t.phase {
            self.due.remove(&t.tenant, due, &event_id);
        }
        t.phase = Phase::Retiring;
        let consensus = self.consensus.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let ok = match consensus
                .propose(Op::WebhookDone {
                    event_id: event_id.clone(),
                })
                .await
            {
                Ok(_) => true,
                Err(e) => {
                    debug!(event_id = %event_id, error = %e, "cannot remove webhook job yet");
                    false
                }
            };
            let _ = me.send_message(WebhookMsg::Retired { event_id, ok });
        });
    }

    /// Handles the report of one delivery attempt.
    fn attempted(
        &mut self,
        myself: &ActorRef<WebhookMsg>,
        event_id: String,
        tenant: &str,
        outcome: Attempt,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(n) = self.in_flight_by_tenant.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight_by_tenant.remove(tenant);
            }
        }
        let Some(t) = self.jobs.get_mut(&event_id) else {
            return;
        };
        t.failures = t
            .failures
            .saturating_add(u32::from(!matches!(outcome, Attempt::Delivered(_))));
        let (failures, created_at) = (t.failures, t.created_at);
        let (message_id, tenant) = (t.message_id.clone(), t.tenant.clone());
        let why = match outcome {
            Attempt::Delivered(status) => {
                count("ok");
                debug!(event_id = %event_id, message_id = %message_id, tenant = %tenant, status, "webhook delivered");
                self.retire(myself, event_id);
                return;
            }
            Attempt::Invalid(e) => {
                count("gave_up");
                warn!(
                    event_id = %event_id, message_id = %message_id, tenant = %tenant, error = %e,
                    "webhook cannot be sent (bad callback URL); dropped"
                );
                self.retire(myself, event_id);
                return;
            }
            Attempt::Rejected(status) => {
                count("error");
                format!("answered {status}")
            }
            Attempt::Timeout => {
                count("timeout");
                format!("no answer within {:?}", self.timeout)
            }
            Attempt::Failed(e) => {
                count("error");
                e
            }
        };
        let now = now_ms();
        let wait = backoff::next_delay(failures, rand::random()).as_millis() as i64;
        let mut due = now.saturating_add(wait);
        if let Some(c) = created_at {
            // The try at the deadline is where the job is given up.
            due = due.min(c.saturating_add(self.max_age_ms));
        }
        info!(
            event_id = %event_id, message_id = %message_id, tenant = %tenant,
            attempts = failures, retry_in_ms = due - now, reason = %why, "webhook not delivered; will retry"
        );
        self.requeue(&event_id, due);
    }

    fn tick(&mut self) {
        let now = now_ms();
        if self.consensus.is_leader() {
            if !self.synced
                && let Err(e) = self.sync_outbox()
            {
                warn!(error = %e, "cannot read the webhook outbox");
            }
        } else {
            self.synced = false;
            if now.saturating_sub(self.last_prune) >= PRUNE_EVERY_MS {
                self.last_prune = now;
                self.prune();
            }
        }
    }
}

impl Actor for WebhookDispatcher {
    type Msg = WebhookMsg;
    type State = WebhookState;
    type Arguments = WebhookArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WebhookMsg>,
        args: WebhookArgs,
    ) -> Result<WebhookState, ActorProcessingErr> {
        let concurrency = args.concurrency.max(1);
        let tenant_concurrency = args.tenant_concurrency.clamp(1, concurrency);
        let client = http_client(args.timeout, concurrency, args.allow_private)
            .map_err(|e| ActorProcessingErr::from(error_chain(&e)))?;
        let me = myself.clone();
        let mut notices = args.notices;
        let forwarder = tokio::spawn(async move {
            while let Some(n) = notices.recv().await {
                if let Notice::Webhook { event_id } = n
                    && me.send_message(WebhookMsg::Due(event_id)).is_err()
                {
                    break;
                }
            }
        });
        let ticker = myself.send_interval(TICK, || WebhookMsg::Tick);
        let mut st = WebhookState {
            consensus: args.consensus,
            client,
            concurrency,
            tenant_concurrency,
            allow_private: args.allow_private,
            timeout: args.timeout,
            max_age_ms: i64::try_from(args.max_age.as_millis()).unwrap_or(i64::MAX),
            jobs: HashMap::new(),
            due: FairQueue::default(),
            in_flight: 0,
            in_flight_by_tenant: HashMap::new(),
            synced: false,
            last_prune: now_ms(),
            forwarder,
            ticker,
        };
        if let Err(e) = st.sync_outbox() {
            st.forwarder.abort();
            st.ticker.abort();
            return Err(ActorProcessingErr::from(format!(
                "cannot read the webhook outbox: {e}"
            )));
        }
        info!(
            jobs = st.jobs.len(),
            concurrency,
            tenant_concurrency,
            allow_private = args.allow_private,
            "webhook dispatcher started"
        );
        metrics::gauge!("smsgw_webhook_queue").set(st.jobs.len() as f64);
        Ok(st)
    }

    async fn post_start(
        &self,
        myself: ActorRef<WebhookMsg>,
        st: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
        st.pump(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WebhookMsg>,
        msg: WebhookMsg,
        st: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WebhookMsg::Due(event_id) => {
                let tenant = st.tenant_of(&event_id);
                st.add(event_id, tenant, now_ms());
            }
            WebhookMsg::Attempted {
                event_id,
                tenant,
                outcome,
            } => st.attempted(&myself, event_id, &tenant, outcome),
            WebhookMsg::Retired { event_id, ok: true } => st.forget(&event_id),
            WebhookMsg::Retired {
                event_id,
                ok: false,
            } => {
                // Detached timer: it sends `Retire` on its own (or finds the actor gone).
                drop(myself.send_after(RETIRE_RETRY, move || WebhookMsg::Retire(event_id)));
            }
            WebhookMsg::Retire(event_id) => match st.consensus.store().webhook_job(&event_id) {
                // Already removed (our earlier proposal did commit, or another leader's).
                Ok(None) => st.forget(&event_id),
                _ => st.retire(&myself, event_id),
            },
            WebhookMsg::Tick => st.tick(),
        }
        st.pump(&myself);
        metrics::gauge!("smsgw_webhook_queue").set(st.jobs.len() as f64);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WebhookMsg>,
        st: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
        st.forwarder.abort();
        st.ticker.abort();
        Ok(())
    }
}
