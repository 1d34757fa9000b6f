//! Send a locker's agent its offline pickup grant: what it needs to check
//! the stored item's PIN and QR code while the site is offline (their salted
//! hashes, the item's deadline), or, once the item has left, the grant's
//! revocation. Retained on the locker's grant topic, so an agent that was
//! away, or replaced, gets the current one when it subscribes.
//!
//! The state is read when the job runs, with the pass row locked until the
//! grant is handed to the MQTT client: of two jobs for a locker, the later
//! state is published last.

use locker_core::jobs::{GrantJob, JobKind};
use locker_core::store::{job_runs, pickups};
use locker_protocol::{Grant, GrantState};

use crate::context::WorkerContext;
use crate::error::JobError;

/// Sends the grant; with `done`, the job whose work it is, true when that
/// job's done mark was recorded with the grant.
pub async fn run(ctx: &WorkerContext, done: Option<i64>, job: GrantJob) -> Result<bool, JobError> {
    let Some(doors) = &ctx.doors else {
        return Err(JobError::Permanent(
            "this worker has no MQTT broker configured".into(),
        ));
    };
    let locker_id = job.grant_locker_id;
    let now = ctx.clock.now_millis();
    // Where writes chain, the job is marked done by the read that locks the
    // pass; else by a statement of its own, in the same transaction.
    let chained = ctx.db.backend().chains_writes();
    let mut tx = ctx.db.begin().await?;
    let Some(state) = pickups::grant_state(
        &mut tx,
        ctx.db.backend(),
        locker_id,
        now,
        done.filter(|_| chained),
    )
    .await?
    else {
        tracing::info!(
            locker_id,
            "no pass or no agent at the locker; no grant sent"
        );
        return Ok(false);
    };
    let grant = match state.open_until {
        Some(until) => Grant {
            locker_id,
            item_id: state.item_id,
            state: GrantState::Granted,
            salt: state.salt,
            pin_hash: state.pin_hash,
            qr_hash: state.qr_hash,
            expires_at: until,
            max_attempts: ctx.exchange.rules().otp_failure_cap,
            sig: String::new(),
        },
        None => Grant {
            locker_id,
            item_id: state.item_id,
            state: GrantState::Revoked,
            salt: String::new(),
            pin_hash: String::new(),
            qr_hash: String::new(),
            expires_at: 0,
            max_attempts: 0,
            sig: String::new(),
        },
    };
    doors
        .link
        .send_grant(&doors.config, &state.agent_id, grant)
        .await?;
    if let Some(job_id) = done
        && !chained
    {
        job_runs::record_done(&mut *tx, job_id, JobKind::Unlock, now).await?;
    }
    tx.commit().await?;
    tracing::info!(locker_id, item_id = state.item_id, "offline grant sent");
    Ok(done.is_some())
}
