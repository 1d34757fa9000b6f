//! One module per job kind.

mod grant;
mod notify;
mod otp;
mod pass;
mod unlock;

pub use pass::Pass;

use locker_core::jobs::{DoorJob, Envelope, JobKind};
use locker_core::store::job_runs::Claim;

use crate::context::WorkerContext;
use crate::error::JobError;

/// Runs a job unless a delivery of it already did: the claim makes a
/// duplicate wait for the first, then find it done.
pub async fn run(ctx: &WorkerContext, envelope: &Envelope) -> Result<(), JobError> {
    let guard = match ctx
        .claims
        .claim(&ctx.db, envelope.id, envelope.kind)
        .await?
    {
        Claim::Done => {
            tracing::info!("already done; duplicate delivery ignored");
            return Ok(());
        }
        Claim::Mine(guard) => guard,
    };
    let undecodable =
        |e: serde_json::Error| JobError::Permanent(format!("undecodable payload: {e}"));
    match envelope.kind {
        JobKind::Otp => otp::run(ctx, envelope.id, envelope.decode().map_err(undecodable)?).await?,
        JobKind::Notify => {
            let job = envelope.decode().map_err(undecodable)?;
            notify::run(ctx, envelope.id, &envelope.trace_id, job).await?;
        }
        JobKind::Unlock => match envelope.decode().map_err(undecodable)? {
            DoorJob::Unlock(job) => unlock::run(ctx, envelope.id, &envelope.trace_id, job).await?,
            DoorJob::Grant(job) => grant::run(ctx, job).await?,
        },
    }
    guard.finish(ctx.clock.now_millis()).await?;
    Ok(())
}
