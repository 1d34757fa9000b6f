//! The consume loop: take a job, run it, then settle it — ack once its effect
//! is committed, retry a passing failure after a growing delay, dead-letter a
//! permanent one or one out of tries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use locker_core::jobs::JobKind;
use locker_core::queue::{Delivery, JobQueue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::WorkerContext;
use crate::error::JobError;
use crate::jobs;

/// Jobs a consumer may hold unacknowledged.
const PREFETCH: u16 = 2;
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

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
    for &kind in kinds {
        for _ in 0..concurrency.max(1) {
            set.spawn(serve(kind, ctx.clone(), queue.clone(), shutdown.clone()));
        }
    }
    set
}

async fn serve(
    kind: JobKind,
    ctx: Arc<WorkerContext>,
    queue: JobQueue,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_secs(1);
    loop {
        let consumer = tokio::select! {
            () = shutdown.cancelled() => return,
            consumer = queue.consume(kind, PREFETCH) => consumer,
        };
        let mut consumer = match consumer {
            Ok(consumer) => {
                delay = Duration::from_secs(1);
                consumer
            }
            Err(error) => {
                tracing::warn!(kind = kind.as_str(), error = format!("{error:#}"), retry_in = ?delay, "cannot consume jobs");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
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
    let settled = async {
        match result {
            Ok(()) => {
                tracing::info!("job done");
                delivery.ack().await
            }
            Err(JobError::Permanent(reason)) => delivery.dead(&reason).await,
            Err(JobError::Transient(error)) => match ctx.retry_delays.get(attempt as usize - 1) {
                Some(&delay) => {
                    tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "job failed; will retry");
                    delivery.retry(delay).await
                }
                None => delivery.dead(&format!("gave up after {attempt} tries: {error:#}")).await,
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
