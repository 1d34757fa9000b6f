//! The receiver's pickup pass, issued with the deposit notice: an 8-digit
//! PIN for the keypad and a token for the pickup page's QR code, both
//! HMAC-SHA256 of the item's id under `OTP_SECRET` (so every try of every
//! notice of an item carries the same), kept only as hashes under a
//! per-item salt. Issuing it sends the locker agent's offline grant.

use hmac::{Hmac, Mac};
use locker_core::clock::Millis;
use locker_core::jobs::{GrantJob, Job};
use locker_core::store::outbox::{self, OutboxTx};
use locker_core::store::pickups::{self, NewPass, token_digest};
use locker_protocol::pass_hash;
use locker_protocol::signing::hex;
use secrecy::ExposeSecret;
use sha2::Sha256;

use super::grant;
use crate::context::WorkerContext;
use crate::error::JobError;

/// What the receiver is sent.
pub struct Pass {
    pub pin: String,
    /// The pickup page, when `PUBLIC_URL` is set.
    pub link: Option<String>,
}

/// The item's pass, stored on first issue; `None` when the item no longer
/// waits in its locker (nothing to open).
pub async fn issue(
    ctx: &WorkerContext,
    item_id: i64,
    trace_id: &str,
) -> Result<Option<Pass>, JobError> {
    let secret = ctx.code_secret()?.expose_secret().as_bytes();
    let pin = pin_for(secret, item_id);
    let token = token_for(secret, item_id);
    let salt = hex(&derive(secret, "salt", item_id)[..16]);
    let pass = NewPass {
        item_id,
        pin_hash: pass_hash(&salt, &pin),
        qr_hash: pass_hash(&salt, &token),
        token_digest: token_digest(&token),
        salt,
    };
    let now = ctx.clock.now_millis();
    let db = &ctx.db;
    if ctx.doors.is_some() {
        return Ok(issue_granting_here(ctx, &pass, trace_id, now)
            .await?
            .then(|| handed(ctx, pin, &token)));
    }
    let mut tx = OutboxTx::new(db.begin().await?, db.backend());
    if let Some(locker_id) = pickups::issue(&mut *tx, db.backend(), &pass, now).await? {
        let job = Job::Grant(GrantJob {
            grant_locker_id: locker_id,
        });
        tx.enqueue(&job, trace_id, now);
    } else if !pickups::has_pass(&mut *tx, item_id).await? {
        return Ok(None);
    }
    tx.commit(ctx.exchange.relay())
        .await
        .map_err(sqlx::Error::from)?;
    Ok(Some(handed(ctx, pin, &token)))
}

/// Keeps the pass, in a process that drives doors: the locker's grant goes
/// out from here, read under the pass's lock as a grant job reads it, with
/// no job to queue and deliver. Every run of the notice sends it, so a stop
/// between the pass and its grant loses nothing; a grant that cannot go
/// out now is queued as a job. False when the item no longer waits in its
/// locker.
async fn issue_granting_here(
    ctx: &WorkerContext,
    pass: &NewPass,
    trace_id: &str,
    now: Millis,
) -> Result<bool, JobError> {
    let pool = ctx.db.pool();
    let locker_id = match pickups::issue(pool, ctx.db.backend(), pass, now).await? {
        Some(locker_id) => locker_id,
        None => match pickups::locker_of_pass(pool, pass.item_id).await? {
            Some(locker_id) => locker_id,
            None => return Ok(false),
        },
    };
    let job = GrantJob {
        grant_locker_id: locker_id,
    };
    if let Err(error) = grant::run(ctx, None, job.clone()).await {
        tracing::warn!(%error, locker_id, "cannot send the locker's grant now; queued");
        let written = outbox::enqueue(pool, &Job::Grant(job), trace_id, now).await?;
        ctx.exchange.relay().committed(vec![written]);
    }
    Ok(true)
}

/// The pass as the receiver is sent it.
fn handed(ctx: &WorkerContext, pin: String, token: &str) -> Pass {
    let link = ctx
        .public_url
        .as_ref()
        .map(|url| format!("{url}/pickup/{token}"));
    Pass { pin, link }
}

fn derive(secret: &[u8], what: &str, item_id: i64) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("lockerx-pickup-{what}:{item_id}").as_bytes());
    mac.finalize().into_bytes().into()
}

/// Eight decimal digits (the bias of 64 bits modulo 10^8 is below 10^-11).
fn pin_for(secret: &[u8], item_id: i64) -> String {
    let digest = derive(secret, "pin", item_id);
    let n = u64::from_be_bytes(digest[..8].try_into().expect("32 bytes"));
    format!("{:08}", n % 100_000_000)
}

/// 128 bits, as 32 hex characters: what the QR code holds.
fn token_for(secret: &[u8], item_id: i64) -> String {
    hex(&derive(secret, "token", item_id)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn an_item_has_one_pass_and_items_have_different_ones() {
        let pin = pin_for(SECRET, 7);
        assert_eq!(pin.len(), 8);
        assert!(pin.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(pin, pin_for(SECRET, 7));
        let token = token_for(SECRET, 7);
        assert_eq!(token.len(), 32);
        assert_ne!(token, token_for(SECRET, 8));
        let pins: std::collections::HashSet<_> = (0..1000).map(|i| pin_for(SECRET, i)).collect();
        assert!(pins.len() > 995);
        assert_ne!(pin, pin_for(b"another secret, just as long....", 7));
    }
}
