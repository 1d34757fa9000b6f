//! Send one notification, once. The deposit notice at a locker an agent
//! drives also issues the receiver's pickup pass and carries it.

use locker_core::jobs::{Message, NotifyJob};

use super::pass;
use crate::context::WorkerContext;
use crate::error::JobError;
use crate::messages;

pub async fn run(
    ctx: &WorkerContext,
    job_id: i64,
    trace_id: &str,
    job: NotifyJob,
) -> Result<(), JobError> {
    let pass = match &job.message {
        Message::ItemStored {
            pickup: Some(item_id),
            ..
        } => pass::issue(ctx, *item_id, trace_id).await?,
        _ => None,
    };
    let text = messages::render_with(&job.message, pass.as_ref());
    ctx.notifier()?.send(&job.to, &text, job_id).await
}
