//! Issue a one-time code: 6 digits from the OS's CSPRNG, its Argon2id hash
//! stored in place of any earlier code, the code itself only sent, never
//! logged or stored.

use locker_core::jobs::OtpJob;
use locker_core::store::codes::{self, NewCode};
use locker_core::store::items;
use rand::Rng;
use rand::rngs::OsRng;

use crate::context::WorkerContext;
use crate::error::JobError;
use crate::messages;

pub async fn run(ctx: &WorkerContext, job_id: i64, job: OtpJob) -> Result<(), JobError> {
    let pool = ctx.db.pool();
    let Some((_item, location, locker)) = items::whereabouts(pool, job.item_id).await? else {
        tracing::info!(item_id = job.item_id, "item gone; no code issued");
        return Ok(());
    };

    let code = format!("{:06}", OsRng.gen_range(0..1_000_000u32));
    let hash = ctx.hasher.hash(code.clone().into()).await?;
    let now = ctx.clock.now_millis();
    let new = NewCode {
        item_id: job.item_id,
        contact: &job.contact,
        hash: &hash,
        expires_at: now + ctx.exchange.rules().otp_expiry.as_millis() as i64,
        job_id,
    };
    if codes::store(pool, new, now).await? {
        let minutes = ctx.exchange.rules().otp_expiry.as_secs().div_ceil(60);
        let text = messages::code(&code, &location, &locker, minutes);
        ctx.notifier.send(&job.contact, &text).await?;
        tracing::info!(item_id = job.item_id, "code issued");
    } else {
        tracing::info!(
            item_id = job.item_id,
            "item no longer waiting, or a newer code exists; none issued"
        );
    }
    Ok(())
}
