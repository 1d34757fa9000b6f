//! The outbox relay: publishes jobs to the queue and stamps them published.
//! A process hands the relay the jobs it has just committed
//! ([`Outgoing`]), which go out at once, without a look in the database; a
//! sweep publishes those no process handed over (it stopped first), once
//! they are older than a grace period. While the queue is unreachable jobs
//! wait, in memory and in the outbox; the api keeps accepting work.
//!
//! A worker process runs the jobs it commits itself when it serves their
//! kind ([`Outgoing::running_here`]): a door's closing and the notice it
//! writes, say. Such a job is stamped once settled as a delivery would be
//! (done, or its next try or dead letter published); should the process
//! stop first, the sweep publishes it as any other.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Outage, Reconnect};
use crate::queue::JobQueue;
use crate::store::outbox::{self, Pending};
use crate::{Clock, Db};

mod outgoing;

pub use outgoing::{Outgoing, RunHere};

const BATCH: usize = 100;
/// Publishers taking handed-over jobs side by side: a job committed while
/// one waits for its confirms goes out with the other.
const PUBLISHERS: usize = 2;
/// Jobs held in memory for publishing at most; past it, jobs are left to
/// the sweep (the queue is away, or no relay runs in this process).
const HELD_AT_MOST: usize = 10_000;
/// How often published jobs are stamped, all in one statement: the stamp
/// only keeps the sweep off them, so it can wait.
const STAMP_EVERY: Duration = Duration::from_millis(200);
const STAMPS_AT_ONCE: usize = 500;
/// How often the sweep looks for jobs no relay was handed (default).
const POLL: Duration = Duration::from_secs(1);
/// How long a job may wait for the relay it was handed to before a sweep
/// publishes it (default): its process may be publishing it still. Should
/// both publish it, the job's handler does its work once.
const GRACE: Duration = Duration::from_secs(5);

pub struct Relay {
    db: Db,
    queue: JobQueue,
    clock: Arc<dyn Clock>,
    outgoing: Outgoing,
    poll: Duration,
    grace: Duration,
}

impl Relay {
    pub fn new(db: Db, queue: JobQueue, clock: Arc<dyn Clock>, outgoing: Outgoing) -> Self {
        Self {
            db,
            queue,
            clock,
            outgoing,
            poll: POLL,
            grace: GRACE,
        }
    }

    /// Sweeps the outbox this often (default 1 s).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Sweeps up jobs no relay published this long after they were written
    /// (default 5 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
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
        // Every loop meets the same outage: said once.
        let outage = Outage::new("job queue (outbox relay)");
        let publishing = (0..PUBLISHERS).map(|_| self.publish_handed(outage.clone(), &shutdown));
        // Stamps go on until the last publish has ended.
        let stamped = CancellationToken::new();
        let relaying = async {
            tokio::join!(
                futures::future::join_all(publishing),
                self.sweep(outage.clone(), &shutdown)
            );
            stamped.cancel();
        };
        tokio::join!(relaying, self.stamp(&stamped));
    }

    /// Publishes the jobs handed over as they come; those it cannot are
    /// tried again, after a growing wait.
    async fn publish_handed(&self, outage: Outage, shutdown: &CancellationToken) {
        let mut link = Reconnect::new(outage);
        let mut failed: Vec<Pending> = Vec::new();
        loop {
            if failed.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.outgoing.handed() => {}
                }
            }
            let room = BATCH.saturating_sub(failed.len());
            let mut jobs = std::mem::take(&mut failed);
            jobs.extend(self.outgoing.take(room));
            if jobs.is_empty() {
                continue;
            }
            // Stamped with when they were taken, as the sweep stamps its own.
            let taken = self.clock.now_millis();
            match self.publish(&jobs).await {
                Ok(()) => {
                    link.recovered();
                    let stamps: Vec<_> = jobs.iter().map(|job| (job.id, taken)).collect();
                    self.outgoing.settled_all(&stamps);
                    // More may have come while these were confirmed.
                    self.outgoing.look_again();
                }
                Err(error) => {
                    let wait = link.failed(&format!("{error:#}"));
                    failed = jobs;
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Stamps settled jobs, a batch at a time, until `stop` and once more.
    async fn stamp(&self, stop: &CancellationToken) {
        loop {
            let last = tokio::select! {
                () = stop.cancelled() => true,
                () = tokio::time::sleep(STAMP_EVERY) => false,
            };
            let jobs = self.outgoing.take_settled();
            // A statement's text grows with its jobs: a backlog goes in parts.
            for part in jobs.chunks(STAMPS_AT_ONCE) {
                if let Err(error) = outbox::mark_published(self.db.pool(), part).await {
                    tracing::warn!(%error, jobs = part.len(), "cannot stamp jobs published; will try again");
                    self.outgoing.settled_all(part);
                }
            }
            if last {
                return;
            }
        }
    }

    /// Publishes, each poll, the jobs written more than the grace period
    /// ago and never published. How old a job is, is told by its id: the
    /// sweep takes jobs up to the newest id it saw a grace period ago, by
    /// this process's monotonic clock, so no two hosts' clocks need agree.
    async fn sweep(&self, outage: Outage, shutdown: &CancellationToken) {
        let mut link = Reconnect::new(outage);
        let mut seen: VecDeque<(Instant, i64)> = VecDeque::new();
        if self.queue.is_in_process()
            && let Ok((newest, _)) = outbox::survey(self.db.pool()).await
            && let Some(long_ago) = Instant::now().checked_sub(self.grace)
        {
            // The database serves this process alone: what it holds was
            // left by the last run, and no one else publishes it.
            seen.push_back((long_ago, newest));
        }
        loop {
            let wait = match self.sweep_once(&mut seen).await {
                Ok(()) => {
                    link.recovered();
                    self.poll
                }
                Err(error) => link.failed(&format!("{error:#}")),
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn sweep_once(&self, seen: &mut VecDeque<(Instant, i64)>) -> anyhow::Result<()> {
        let (newest, waiting) = outbox::survey(self.db.pool()).await?;
        crate::metrics::outbox_backlog(waiting);
        let now = Instant::now();
        seen.push_back((now, newest));
        // The newest id seen at least a grace period ago; kept for the
        // passes to come.
        let mut through = None;
        while let Some(&(at, _)) = seen.front() {
            if now.duration_since(at) < self.grace {
                break;
            }
            through = seen.pop_front();
        }
        if let Some((at, id)) = through {
            seen.push_front((at, id));
            if waiting > 0 {
                while self.publish_pending(id).await? == BATCH {}
            }
        }
        Ok(())
    }

    /// Publishes one batch of jobs up to id `through` that no relay has
    /// published; returns how many.
    pub async fn publish_pending(&self, through: i64) -> anyhow::Result<usize> {
        let backend = self.db.backend();
        let limit = BATCH as i64;
        if backend.locks_rows() {
            // Rows are taken (marked published) and stay locked while they
            // are published, so several relays sweep side by side without
            // sending a job twice; a failed publish rolls back.
            let mut tx = self.db.pool().begin().await?;
            let now = self.clock.now_millis();
            let rows = outbox::take_pending(&mut *tx, through, limit, now, backend).await?;
            self.publish(&rows).await?;
            tx.commit().await?;
            Ok(rows.len())
        } else {
            // The database serves this process alone: no lock is held while
            // publishing.
            let now = self.clock.now_millis();
            let rows = outbox::pending(self.db.pool(), through, limit, backend).await?;
            self.publish(&rows).await?;
            let stamps: Vec<_> = rows.iter().map(|row| (row.id, now)).collect();
            outbox::mark_published(self.db.pool(), &stamps).await?;
            Ok(rows.len())
        }
    }

    async fn publish(&self, rows: &[Pending]) -> anyhow::Result<()> {
        let envelopes: Vec<_> = rows.iter().filter_map(Pending::envelope).collect();
        if envelopes.is_empty() {
            return Ok(());
        }
        match &self.queue {
            JobQueue::Amqp(q) => q.publish_batch(&envelopes).await?,
            JobQueue::Memory(q) => {
                for envelope in &envelopes {
                    q.publish(envelope)?;
                }
            }
        }
        Ok(())
    }
}
