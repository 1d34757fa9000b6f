//! The outbox relay: publishes jobs written by the api to the queue and
//! stamps them published. While the queue is unreachable jobs wait in the
//! outbox; the api keeps accepting work.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Outage, Reconnect};
use crate::db::notices::{Follower, Heard};
use crate::jobs::{Envelope, JobKind};
use crate::queue::JobQueue;
use crate::store::outbox::{self, Pending};
use crate::{Clock, Db};

const BATCH: i64 = 100;
/// Passes publishing at once where the database locks rows.
const PASSES: usize = 2;
/// Jobs written by other processes wake the relay through PostgreSQL's
/// `NOTIFY` on this channel (a trigger on the outbox raises it on commit);
/// the process hears it with its other channels ([`RelayWaker::follower`]).
const CHANNEL: &str = "outbox";
/// Should a notice be missed (the listening connection lost), jobs are still
/// found by polling at this pace.
const POLL: Duration = Duration::from_secs(1);

/// Wakes the relay right after a transaction that wrote jobs commits.
#[derive(Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Wakes the relay on every notice of jobs written, and on (re)starting
    /// to listen, to catch up with what was written meanwhile.
    pub fn follower(&self) -> Follower {
        let waker = self.clone();
        Follower::new(CHANNEL, move |heard| {
            if heard != Heard::Lost {
                waker.wake();
            }
        })
    }
}

pub struct Relay {
    db: Db,
    queue: JobQueue,
    clock: Arc<dyn Clock>,
    waker: RelayWaker,
    poll: Duration,
}

impl Relay {
    pub fn new(db: Db, queue: JobQueue, clock: Arc<dyn Clock>, waker: RelayWaker) -> Self {
        Self {
            db,
            queue,
            clock,
            waker,
            poll: POLL,
        }
    }

    /// Polls the outbox this often in case a notice is missed (default 1 s).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    pub async fn run(self, shutdown: CancellationToken) {
        if self.queue.is_in_process() {
            match outbox::requeue_unfinished(self.db.pool()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "re-queued jobs left unfinished by the last run"),
                Err(error) => tracing::warn!(%error, "cannot re-queue unfinished jobs"),
            }
        }
        // Where rows can be locked, passes run side by side, each on rows
        // the others do not hold: a job written while one pass waits for
        // its confirms goes out with the next, not after it.
        let passes = if self.db.backend().locks_rows() {
            PASSES
        } else {
            1
        };
        let relaying = (0..passes).map(|pass| self.relay(pass == 0, &shutdown));
        futures::future::join_all(relaying).await;
    }

    /// Publishes what is waiting each time it is woken (or polls). The
    /// `first` pass also reports the backlog.
    async fn relay(&self, first: bool, shutdown: &CancellationToken) {
        // Jobs wait in the outbox while the queue is away.
        let mut link = Reconnect::new(Outage::new("job queue (outbox relay)"));
        // The backlog gauge is read at most once a poll, not once a wake.
        let now = tokio::time::Instant::now();
        let mut counted = now.checked_sub(self.poll).unwrap_or(now);
        loop {
            let (wait, failing) = match self.publish_pending().await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {
                    link.recovered();
                    (self.poll, false)
                }
                Err(error) => (link.failed(&format!("{error:#}")), true),
            };
            // Also while publishing fails: the backlog is what shows it.
            if first && counted.elapsed() >= self.poll.min(POLL) {
                counted = tokio::time::Instant::now();
                if let Ok(waiting) = outbox::backlog(self.db.pool()).await {
                    crate::metrics::outbox_backlog(waiting);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.waker.0.notified(), if !failing => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Publishes one batch of waiting jobs; returns how many.
    pub async fn publish_pending(&self) -> anyhow::Result<usize> {
        let backend = self.db.backend();
        if backend.locks_rows() {
            // Rows are taken (marked published) and stay locked while they
            // are published, so several api instances relay side by side
            // without sending a job twice; a failed publish rolls back.
            let mut tx = self.db.pool().begin().await?;
            let rows =
                outbox::take_pending(&mut *tx, BATCH, self.clock.now_millis(), backend).await?;
            self.publish(&rows).await?;
            tx.commit().await?;
            Ok(rows.len())
        } else {
            // The database serves this process alone: no lock is held while
            // publishing.
            let rows = outbox::pending(self.db.pool(), BATCH, backend).await?;
            let ids = self.publish(&rows).await?;
            outbox::mark_published(self.db.pool(), &ids, self.clock.now_millis()).await?;
            Ok(rows.len())
        }
    }

    async fn publish(&self, rows: &[Pending]) -> anyhow::Result<Vec<i64>> {
        let mut envelopes = Vec::with_capacity(rows.len());
        for row in rows {
            let kind = JobKind::parse(&row.kind);
            let payload = serde_json::from_str(&row.payload);
            match (kind, payload) {
                (Some(kind), Ok(payload)) => envelopes.push(Envelope {
                    id: row.id,
                    kind,
                    attempt: 1,
                    trace_id: row.trace_id.clone(),
                    payload,
                    enqueued_at: Some(row.created_at),
                }),
                _ => {
                    tracing::error!(job_id = row.id, kind = %row.kind, "outbox row cannot be published; skipped")
                }
            }
        }
        if envelopes.is_empty() {
            return Ok(rows.iter().map(|r| r.id).collect());
        }
        match &self.queue {
            JobQueue::Amqp(q) => q.publish_batch(&envelopes).await?,
            JobQueue::Memory(q) => {
                for envelope in &envelopes {
                    q.publish(envelope)?;
                }
            }
        }
        Ok(rows.iter().map(|r| r.id).collect())
    }
}
