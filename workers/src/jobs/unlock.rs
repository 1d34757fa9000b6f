//! Unlock a door: one command per unlock job, signed with the agent's key
//! and sent at QoS 1, then the agent's answer awaited.
//!
//! The command (id `job-{job id}`) gets its lifetime when it is first issued;
//! every try sends the very same signed bytes, so no copy outlives the first.
//! A new command is never made for the same job: once a command can no longer
//! run (its expiry passed by more than the agents' clock allowance) with no
//! answer that it ran, the unlock is reported failed for an admin. Together
//! with the agent keeping executed ids until then (docs/mqtt-protocol.md),
//! a door opens at most once per job, whatever is retried or redelivered.

use std::time::Duration;

use locker_core::clock::Millis;
use locker_core::jobs::UnlockJob;
use locker_core::store::doors::{self, NewCommand};
use locker_core::store::items;
use locker_protocol::{AckReason, CLOCK_ALLOWANCE_MS, Command, agent_key};
use secrecy::ExposeSecret;

use crate::context::WorkerContext;
use crate::error::JobError;

pub async fn run(
    ctx: &WorkerContext,
    job_id: i64,
    attempt: u32,
    trace_id: &str,
    job: UnlockJob,
) -> Result<(), JobError> {
    let Some(doors_link) = &ctx.doors else {
        return Err(JobError::Permanent(
            "this worker has no MQTT broker configured".into(),
        ));
    };
    let pool = ctx.db.pool();
    let agent_id = match doors::agent_of(pool, job.locker_id).await? {
        None => {
            return Err(JobError::Permanent(format!(
                "locker {} no longer exists",
                job.locker_id
            )));
        }
        Some(None) => {
            return Err(JobError::Permanent(format!(
                "locker {} has no agent",
                job.locker_id
            )));
        }
        Some(Some(agent)) => agent,
    };
    let command_id = format!("job-{job_id}");
    let now = ctx.clock.now_millis();
    let record = NewCommand {
        id: &command_id,
        agent_id: &agent_id,
        locker_id: job.locker_id,
        item_id: job.item_id,
        purpose: job.purpose,
        issued_at: now,
        expires_at: now + doors_link.config.command_ttl.as_millis() as Millis,
        trace_id,
    };
    let mut conn = pool.acquire().await?;
    let (issued_at, expires_at) = doors::issue_command(&mut conn, record).await?;
    if let Some(item_id) = job.item_id {
        items::set_unlock_command(&mut *conn, item_id, &command_id).await?;
    }
    drop(conn);
    // Past this, no agent whose clock is within the allowance runs it.
    let runnable_until = expires_at + CLOCK_ALLOWANCE_MS;

    if let Some(settled) = settle(ctx, &job, &agent_id, &command_id).await? {
        return settled;
    }
    if now > runnable_until {
        return give_up(
            ctx,
            &job,
            &format!("agent {agent_id} did not answer before the command expired"),
        )
        .await;
    }

    let key = agent_key(
        doors_link.config.agent_secret.expose_secret().as_bytes(),
        &agent_id,
    );
    let mut command = Command::signed(
        command_id.clone(),
        job.locker_id,
        issued_at,
        expires_at,
        key.as_bytes(),
    );
    command.trace_id = trace_id.to_owned();
    let link = &doors_link.link;
    let until_expired = Duration::from_millis((runnable_until - now).max(0) as u64);
    let deadline = tokio::time::Instant::now() + doors_link.config.ack_timeout.min(until_expired);
    let mut ack_seen = std::pin::pin!(link.acks.notified());
    ack_seen.as_mut().enable();
    link.send(&agent_id, &command).await?;
    // Acks land in the database (whichever worker process receives them); a
    // notice from this process's link, or a poll, says when to look.
    loop {
        if let Some(settled) = settle(ctx, &job, &agent_id, &command_id).await? {
            return settled;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            () = ack_seen.as_mut() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        ack_seen.set(link.acks.notified());
        ack_seen.as_mut().enable();
    }
    let why = format!(
        "no answer from agent {agent_id} within {:?}",
        doors_link.config.ack_timeout
    );
    let last_try = attempt as usize > ctx.retry_delays.len();
    if last_try || ctx.clock.now_millis() > runnable_until {
        return give_up(ctx, &job, &why).await;
    }
    Err(JobError::Transient(anyhow::anyhow!(why)))
}

/// What the best answer so far settles: done when the command ran, failed
/// when it was refused; `None` while there is no answer.
async fn settle(
    ctx: &WorkerContext,
    job: &UnlockJob,
    agent_id: &str,
    command_id: &str,
) -> Result<Option<Result<(), JobError>>, JobError> {
    let pool = ctx.db.pool();
    if doors::opened_under(pool, command_id).await? {
        return Ok(Some(Ok(())));
    }
    Ok(match doors::answer(pool, command_id).await? {
        None => None,
        // Ran, or ran before and this copy was recognised.
        Some((true, _)) | Some((false, Some(AckReason::Replayed))) => Some(Ok(())),
        Some((false, reason)) => {
            let reason = reason.map_or("no reason", AckReason::as_str);
            Some(give_up(ctx, job, &format!("agent {agent_id} refused: {reason}")).await)
        }
    })
}

/// The door did not open: the item stays as it is, flagged for admins (until
/// an answer that it ran after all arrives).
async fn give_up(ctx: &WorkerContext, job: &UnlockJob, why: &str) -> Result<(), JobError> {
    ctx.exchange.unlock_failed(job, why).await?;
    tracing::error!(locker_id = job.locker_id, item_id = ?job.item_id, why, "unlock failed");
    Err(JobError::Permanent(format!("unlock failed: {why}")))
}
