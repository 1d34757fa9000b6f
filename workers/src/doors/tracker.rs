//! Unlock commands waiting for their agent's answer. An unlock job records
//! its command and sends it once; from then on the command is tracked here,
//! by its `next_send_at`, in the database, so any process serving unlocks
//! takes the next step of any command, and each step is taken once:
//!
//! - unanswered for `UNLOCK_ACK_TIMEOUT_SECONDS` while it can still run
//!   (until its `expires_at`): the same bytes are sent again;
//! - past `expires_at`, it waits for a late answer until no agent whose clock
//!   is within the allowance can run it, then the unlock is reported failed.
//!
//! An answer, or the door seen opening under the command, ends the tracking.

use std::sync::Arc;
use std::time::Duration;

use locker_core::backoff::{Outage, Reconnect};
use locker_core::clock::Millis;
use locker_core::store::doors::{self, Outstanding};
use locker_protocol::CLOCK_ALLOWANCE_MS;
use tokio_util::sync::CancellationToken;

use crate::context::{Doors, WorkerContext};

/// How often due commands are looked for.
const TICK: Duration = Duration::from_millis(250);
/// Commands taken in one pass.
const BATCH: i64 = 100;

pub async fn run(ctx: Arc<WorkerContext>, shutdown: CancellationToken) {
    let mut link = Reconnect::new(Outage::new("database (command tracker)"));
    loop {
        let wait = match pass(&ctx).await {
            Ok(taken) if taken as i64 == BATCH => continue,
            Ok(_) => {
                link.recovered();
                TICK
            }
            Err(error) => link.failed(&format!("{error:#}")),
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Takes the next step of every command due now; returns how many were due.
pub async fn pass(ctx: &WorkerContext) -> anyhow::Result<usize> {
    let Some(doors_link) = &ctx.doors else {
        return Ok(0);
    };
    let pool = ctx.db.pool();
    let now = ctx.clock.now_millis();
    let due = doors::due_commands(pool, now, BATCH).await?;
    for command in &due {
        let runnable_until = command.expires_at + CLOCK_ALLOWANCE_MS;
        if now > runnable_until {
            let why = format!(
                "no answer from agent {} before the command expired",
                command.agent_id
            );
            ctx.exchange.unlock_failed(&command.id, &why).await?;
        } else if now > command.expires_at {
            // No copy can start now; a late answer may still come.
            doors::reschedule(
                pool,
                &command.id,
                command.next_send_at,
                runnable_until + 1,
                false,
            )
            .await?;
        } else {
            let next = now + doors_link.config.ack_timeout.as_millis() as Millis;
            if doors::reschedule(pool, &command.id, command.next_send_at, next, true).await? {
                resend(doors_link, command).await;
            }
        }
    }
    Ok(due.len())
}

async fn resend(doors_link: &Doors, command: &Outstanding) {
    tracing::info!(command_id = %command.id, agent_id = %command.agent_id, "no answer yet; command sent again");
    if let Err(error) = doors_link.link.send(&doors_link.config, command).await {
        tracing::warn!(command_id = %command.id, error = format!("{error:#}"), "cannot send the command again");
    }
}
