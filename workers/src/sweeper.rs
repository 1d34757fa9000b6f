//! Deadlines, swept on a timer: drops whose door was never opened are
//! cancelled, receivers are reminded before their deadline, items not
//! collected in time expire (the rules are the
//! exchange's; any number of workers may sweep).

use std::time::Duration;

use locker_core::exchange;
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;

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
pub async fn sweep(ctx: &WorkerContext) -> Result<(usize, usize), exchange::Error> {
    let cancelled = ctx.exchange.cancel_unopened_drops().await?.len();
    let reminded = ctx.exchange.remind_receivers().await?.len();
    let expired = ctx.exchange.expire_uncollected().await?.len();
    if cancelled + reminded + expired > 0 {
        tracing::info!(cancelled, reminded, expired, "deadlines swept");
    }
    Ok((cancelled, expired))
}
