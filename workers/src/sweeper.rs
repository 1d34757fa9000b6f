//! Deadlines: drops whose door was never opened are cancelled (the locker is
//! free again), items not collected in time expire; both senders are told.
//! Each is one conditional update, so any number of workers may sweep.

use std::time::Duration;

use locker_core::exchange::{self, item_entry};
use locker_core::jobs::Message;
use locker_core::store::{audit, items};
use tokio_util::sync::CancellationToken;

use crate::runner::WorkerContext;

const TRACE: &str = "sweeper";

pub async fn run(ctx: &WorkerContext, every: Duration, shutdown: CancellationToken) {
    loop {
        if let Err(error) = sweep(ctx).await {
            tracing::warn!(%error, "deadline sweep failed");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// One pass; returns how many items were cancelled and expired.
pub async fn sweep(ctx: &WorkerContext) -> Result<(usize, usize), sqlx::Error> {
    let now = ctx.clock.now_millis();
    let mut tx = ctx.db.begin().await?;
    let cancelled = items::cancel_unopened(&mut tx, now).await?;
    for item in &cancelled {
        exchange::vacate(
            &mut tx,
            item,
            "item.cancelled",
            None,
            TRACE,
            now,
            |item, location| Message::DropCancelled { item, location },
        )
        .await?;
    }
    let expired = items::expire_uncollected(&mut tx, now).await?;
    for item in &expired {
        exchange::tell_sender(&mut tx, item, TRACE, now, |item, location| {
            Message::ItemExpired { item, location }
        })
        .await?;
        audit::record(&mut *tx, item_entry(now, None, "item.expired", item)).await?;
    }
    tx.commit().await?;
    if !cancelled.is_empty() || !expired.is_empty() {
        tracing::info!(
            cancelled = cancelled.len(),
            expired = expired.len(),
            "deadlines swept"
        );
    }
    Ok((cancelled.len(), expired.len()))
}
