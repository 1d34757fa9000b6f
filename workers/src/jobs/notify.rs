//! Send one notification, once.

use locker_core::jobs::NotifyJob;

use crate::context::WorkerContext;
use crate::error::JobError;
use crate::messages;

pub async fn run(ctx: &WorkerContext, job_id: i64, job: NotifyJob) -> Result<(), JobError> {
    ctx.notifier()?
        .send(&job.to, &messages::render(&job.message), job_id)
        .await
}
