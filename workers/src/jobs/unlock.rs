//! Unlock a door: one command per unlock job, signed with the agent's key
//! and sent at QoS 1. The job ends once the command is recorded and sent;
//! waiting for the agent's answer is the tracker's ([`crate::doors::tracker`]),
//! so a slow or absent agent never holds a consumer.
//!
//! The command (id `job-{job id}`) gets its lifetime when it is first issued;
//! every copy sends the very same signed bytes, so no copy outlives the
//! first. A new command is never made for the same job: once a command can
//! no longer run with no answer that it ran, the unlock is reported failed
//! for an admin. Together with the agent keeping executed ids until then
//! (docs/mqtt-protocol.md), a door opens at most once per job, whatever is
//! retried or redelivered.

use locker_core::clock::Millis;
use locker_core::jobs::UnlockJob;
use locker_core::store::doors::{self, NewCommand, Outstanding};
use locker_core::store::items;

use crate::context::WorkerContext;
use crate::error::JobError;

/// Runs the job; true when its done mark was recorded with its command.
pub async fn run(
    ctx: &WorkerContext,
    job_id: i64,
    trace_id: &str,
    job: UnlockJob,
) -> Result<bool, JobError> {
    let Some(doors_link) = &ctx.doors else {
        return Err(JobError::Permanent(
            "this worker has no MQTT broker configured".into(),
        ));
    };
    let pool = ctx.db.pool();
    let command_id = format!("job-{job_id}");
    let now = ctx.clock.now_millis();
    let config = &doors_link.config;
    let record = NewCommand {
        id: &command_id,
        job_id,
        // A grant to send after: the job ends with it.
        ends_job: !job.then_grant,
        locker_id: job.locker_id,
        item_id: job.item_id,
        purpose: job.purpose,
        issued_at: now,
        expires_at: now + config.command_ttl.as_millis() as Millis,
        trace_id,
    };
    let resend_at = now + config.ack_timeout.as_millis() as Millis;
    let mut conn = pool.acquire().await?;
    let Some(issued) = doors::issue_command(&mut conn, record, resend_at, ctx.db.backend()).await?
    else {
        let locker = job.locker_id;
        return Err(match doors::agent_of(&mut *conn, locker).await? {
            None => JobError::Permanent(format!("locker {locker} no longer exists")),
            Some(None) => JobError::Permanent(format!("locker {locker} has no agent")),
            // Given an agent just now: the next try finds it.
            Some(Some(_)) => anyhow::anyhow!("locker {locker} was given an agent meanwhile").into(),
        });
    };
    // A redelivery of a job whose command was answered or given up, or that
    // can no longer run: the tracker has it (and reports it failed), and its
    // item has moved on or is flagged.
    if !issued.outstanding || now > issued.expires_at {
        return Ok(issued.job_done);
    }
    if let Some(item_id) = job.item_id
        && !issued.item_named
    {
        items::set_unlock_command(&mut *conn, item_id, &command_id).await?;
    }
    drop(conn);
    let command = Outstanding {
        id: command_id,
        agent_id: issued.agent_id,
        locker_id: job.locker_id,
        issued_at: issued.issued_at,
        expires_at: issued.expires_at,
        trace_id: trace_id.to_owned(),
        next_send_at: resend_at,
    };
    // Queued for the broker; should it never get there, the tracker sends
    // the command again when its answer is overdue.
    doors_link.link.send(config, &command).await?;
    Ok(issued.job_done)
}
