//! Unlock a door: a command signed with the agent's key, sent at QoS 1, and
//! the agent's answer awaited. The command id is the job's, so a retry after
//! a lost answer cannot open the door twice: the agent refuses it as replayed.

use std::time::Duration;

use locker_core::jobs::UnlockJob;
use locker_core::store::doors::{self, NewCommand};
use locker_core::store::items;
use locker_protocol::{Command, agent_key};
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
    let key = agent_key(
        doors_link.config.agent_secret.expose_secret().as_bytes(),
        &agent_id,
    );
    let mut command = Command::signed(
        command_id.clone(),
        job.locker_id,
        now,
        now + doors_link.config.command_ttl.as_millis() as i64,
        key.as_bytes(),
    );
    command.trace_id = trace_id.to_owned();
    let record = NewCommand {
        id: &command_id,
        agent_id: &agent_id,
        locker_id: job.locker_id,
        item_id: job.item_id,
        purpose: job.purpose,
        issued_at: now,
        trace_id,
    };
    doors::record_command(pool, record).await?;
    if let Some(item_id) = job.item_id {
        items::set_unlock_command(pool, item_id, &command_id).await?;
    }
    let link = &doors_link.link;
    let deadline = tokio::time::Instant::now() + doors_link.config.ack_timeout;
    let mut ack_seen = std::pin::pin!(link.acks.notified());
    ack_seen.as_mut().enable();
    link.send(&agent_id, &command).await?;
    // Acks land in the database (whichever worker process receives them); a
    // notice from this process's link, or a poll, says when to look.
    let answer = loop {
        if let Some(answer) = doors::answer(pool, &command_id).await? {
            break Some(answer);
        }
        if tokio::time::Instant::now() >= deadline {
            break None;
        }
        tokio::select! {
            () = ack_seen.as_mut() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        ack_seen.set(link.acks.notified());
        ack_seen.as_mut().enable();
    };
    let last_try = attempt as usize > ctx.retry_delays.len();
    match answer {
        Some((true, _)) => Ok(()),
        // Executed by an earlier try whose answer was lost.
        Some((false, Some(reason))) if reason == "replayed" => Ok(()),
        Some((false, reason)) => {
            let reason = reason.unwrap_or_default();
            report_failure(ctx, &job, &format!("agent {agent_id} refused: {reason}")).await?;
            Err(JobError::Permanent(format!(
                "agent {agent_id} refused the unlock: {reason}"
            )))
        }
        None => {
            let why = format!(
                "no answer from agent {agent_id} within {:?}",
                doors_link.config.ack_timeout
            );
            if last_try {
                report_failure(ctx, &job, &why).await?;
            }
            Err(JobError::Transient(anyhow::anyhow!(why)))
        }
    }
}

/// The door did not open: the item stays as it is, flagged for admins.
async fn report_failure(ctx: &WorkerContext, job: &UnlockJob, why: &str) -> Result<(), JobError> {
    ctx.exchange.unlock_failed(job, why).await?;
    tracing::error!(locker_id = job.locker_id, item_id = ?job.item_id, why, "unlock failed");
    Ok(())
}
