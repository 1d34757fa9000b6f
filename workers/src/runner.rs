//! The consume loop: take a job, run it, then settle it — ack once its effect
//! is committed, retry a passing failure after a growing delay, dead-letter a
//! permanent one or one out of tries. Jobs this process commits of a kind it
//! serves are run the same way without the trip through the queue
//! ([`run_here`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use locker_core::backoff::{Outage, Reconnect};
use locker_core::jobs::JobKind;
use locker_core::metrics;
use locker_core::queue::{Delivery, JobQueue};
use locker_core::relay::{Outgoing, RunHere};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::WorkerContext;
use crate::error::JobError;
use crate::jobs;

/// Jobs a consumer may hold unacknowledged.
const PREFETCH: u16 = 2;

/// Starts `concurrency` consumers for each kind; they stop when `shutdown`
/// is cancelled, finishing the job in hand.
pub fn spawn(
    ctx: Arc<WorkerContext>,
    queue: JobQueue,
    kinds: &[JobKind],
    concurrency: usize,
    shutdown: CancellationToken,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    // Every consumer of this process meets the same outage: said once.
    let outage = Outage::new("job queue");
    for &kind in kinds {
        for _ in 0..concurrency.max(1) {
            let (ctx, queue, outage) = (ctx.clone(), queue.clone(), outage.clone());
            set.spawn(serve(kind, ctx, queue, outage, shutdown.clone()));
        }
    }
    set
}

async fn serve(
    kind: JobKind,
    ctx: Arc<WorkerContext>,
    queue: JobQueue,
    outage: Outage,
    shutdown: CancellationToken,
) {
    let mut link = Reconnect::new(outage);
    loop {
        let consumer = tokio::select! {
            () = shutdown.cancelled() => return,
            consumer = queue.consume(kind, PREFETCH) => consumer,
        };
        let mut consumer = match consumer {
            Ok(consumer) => {
                link.recovered();
                consumer
            }
            Err(error) => {
                let delay = link.failed(&format!("{error:#}"));
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        loop {
            let delivery = tokio::select! {
                () = shutdown.cancelled() => return,
                delivery = consumer.next() => delivery,
            };
            match delivery {
                Some(delivery) => {
                    ctx.in_hand.fetch_add(1, Ordering::SeqCst);
                    execute(&ctx, delivery).await;
                    ctx.in_hand.fetch_sub(1, Ordering::SeqCst);
                }
                None => break,
            }
        }
    }
}

/// Runs the jobs this process committed and kept to run here (see
/// [`Outgoing::running_here`]) as they come, each as a delivery would be
/// run, until `shutdown`; then lets those in hand finish. Jobs handed over
/// and not begun are left in the outbox, for a sweep to publish.
pub async fn run_here(
    ctx: Arc<WorkerContext>,
    queue: JobQueue,
    relay: Outgoing,
    mut jobs: mpsc::UnboundedReceiver<RunHere>,
    shutdown: CancellationToken,
) {
    let mut running = JoinSet::new();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = jobs.recv() => next,
        };
        let Some(RunHere { job, room }) = next else {
            break;
        };
        let taken = ctx.clock.now_millis();
        let Some(envelope) = job.envelope() else {
            // As the relay does with such a row: no worker could run it.
            relay.settled(job.id, taken);
            continue;
        };
        let delivery = Delivery::here(envelope, queue.clone(), relay.clone(), taken);
        let ctx = ctx.clone();
        ctx.in_hand.fetch_add(1, Ordering::SeqCst);
        running.spawn(async move {
            execute(&ctx, delivery).await;
            ctx.in_hand.fetch_sub(1, Ordering::SeqCst);
            drop(room);
        });
        while running.try_join_next().is_some() {}
    }
    // Handed to the relay from now on.
    drop(jobs);
    while running.join_next().await.is_some() {}
}

/// Runs one job and settles it.
pub async fn execute(ctx: &WorkerContext, delivery: Delivery) {
    let envelope = &delivery.envelope;
    let span = tracing::info_span!(
        "job",
        id = envelope.id,
        kind = envelope.kind.as_str(),
        attempt = envelope.attempt,
        trace_id = %envelope.trace_id,
    );
    let result = jobs::run(ctx, envelope).instrument(span.clone()).await;
    let attempt = envelope.attempt;
    let kind = envelope.kind.as_str();
    let enqueued_at = envelope.enqueued_at;
    let settled = async {
        match result {
            Ok(()) => {
                tracing::info!("job done");
                metrics::job_settled(kind, "done");
                if let Some(enqueued) = enqueued_at {
                    let waited = ctx.clock.now_millis().saturating_sub(enqueued);
                    metrics::job_latency(kind, waited as f64 / 1000.0);
                }
                delivery.ack().await
            }
            Err(JobError::Permanent(reason)) => {
                metrics::job_settled(kind, "failed");
                delivery.dead(&reason).await
            }
            Err(JobError::Transient(error)) => match ctx.retry_delays.get(attempt as usize - 1) {
                Some(&delay) => {
                    tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "job failed; will retry");
                    metrics::job_settled(kind, "retried");
                    delivery.retry(delay).await
                }
                None => {
                    metrics::job_settled(kind, "dead_lettered");
                    delivery.dead(&format!("gave up after {attempt} tries: {error:#}")).await
                }
            },
        }
    }
    .instrument(span)
    .await;
    if let Err(error) = settled {
        tracing::warn!(
            error = format!("{error:#}"),
            "cannot settle job; the queue will deliver it again"
        );
    }
}
