//! One module per job kind.

mod grant;
mod notify;
mod otp;
mod pass;
mod unlock;

pub use pass::Pass;

use locker_core::jobs::{DoorJob, Envelope, GrantJob, JobKind};
use locker_core::store::job_runs::{self, Claim};

use crate::context::WorkerContext;
use crate::error::JobError;

/// Runs a job unless a delivery of it already did.
pub async fn run(ctx: &WorkerContext, envelope: &Envelope) -> Result<(), JobError> {
    let id = envelope.id;
    match envelope.kind {
        JobKind::Otp => {
            let job = envelope.decode().map_err(undecodable)?;
            let prepared = otp::prepare(ctx, id).await?;
            claimed(ctx, envelope, otp::run(ctx, id, job, prepared)).await
        }
        JobKind::Notify => {
            let job = envelope.decode().map_err(undecodable)?;
            claimed(ctx, envelope, notify::run(ctx, id, &envelope.trace_id, job)).await
        }
        JobKind::Unlock => door_job(ctx, envelope).await,
    }
}

/// Runs `work` under the job's claim: a duplicate delivery waits for the
/// first, then finds it done. When the work fails, the claim is given up so
/// a retry need not wait for its lease to run out.
async fn claimed(
    ctx: &WorkerContext,
    envelope: &Envelope,
    work: impl Future<Output = Result<(), JobError>>,
) -> Result<(), JobError> {
    let mut guard = match ctx
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
    let outcome = guard
        .hold_while(work)
        .await
        .unwrap_or_else(|lost| Err(JobError::Transient(lost.into())));
    match outcome {
        Ok(()) => guard.finish(ctx.clock.now_millis()).await?,
        Err(error) => {
            if let Err(release) = guard.release().await {
                tracing::warn!(error = %release, "cannot give the job up; it is free once its lease runs out");
            }
            return Err(error);
        }
    }
    Ok(())
}

/// A door's job needs no claim: each is its own guard against running
/// twice (an unlock's command is recorded once under the job's id, a
/// redelivery finds it and sends at most the same command again, which the
/// agent runs once; a grant publishes the state read when it runs). So none
/// holds a transaction open while it runs, nor asks first whether a delivery
/// already ran it: it is marked done with its work's last write where that
/// can carry the mark, else after (for the in-process queue's restart). An
/// unlock followed by a grant is marked done by the grant, the last.
async fn door_job(ctx: &WorkerContext, envelope: &Envelope) -> Result<(), JobError> {
    let job = envelope.decode().map_err(undecodable)?;
    let marked = match job {
        DoorJob::Unlock(job) if job.then_grant => {
            let grant = GrantJob {
                grant_locker_id: job.locker_id,
            };
            unlock::run(ctx, envelope.id, &envelope.trace_id, job).await?;
            grant::run(ctx, Some(envelope.id), grant).await?
        }
        DoorJob::Unlock(job) => unlock::run(ctx, envelope.id, &envelope.trace_id, job).await?,
        DoorJob::Grant(job) => grant::run(ctx, Some(envelope.id), job).await?,
    };
    if !marked {
        let now = ctx.clock.now_millis();
        job_runs::record_done(ctx.db.pool(), envelope.id, envelope.kind, now).await?;
    }
    Ok(())
}

fn undecodable(e: serde_json::Error) -> JobError {
    JobError::Permanent(format!("undecodable payload: {e}"))
}
