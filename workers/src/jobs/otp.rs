//! Issue a one-time code: 6 digits, its Argon2id hash stored in place of any
//! earlier code, the code itself only sent, never logged or stored.
//!
//! The code is HMAC-SHA256 of the job's id under `OTP_SECRET`: unguessable
//! without the secret, and the same on every try of the job. A try after one
//! that stored the code (and perhaps sent it) sends that same code again, so
//! a retry never changes what the receiver holds.

use hmac::{Hmac, Mac};
use locker_core::jobs::OtpJob;
use locker_core::store::codes::{self, NewCode, Stored};
use locker_core::store::items;
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::context::WorkerContext;
use crate::error::JobError;
use crate::messages;

/// A job's code and its hash, made before the job is claimed: a hash waits
/// its turn on the hashing threads, and no connection or claim is held
/// meanwhile (a duplicate delivery hashes in vain; that is rare).
pub struct Prepared {
    code: String,
    hash: String,
}

pub async fn prepare(ctx: &WorkerContext, job_id: i64) -> Result<Prepared, JobError> {
    let code = code_for(ctx.code_secret()?.expose_secret().as_bytes(), job_id);
    let hash = ctx.hasher.hash(code.clone().into()).await?;
    Ok(Prepared { code, hash })
}

pub async fn run(
    ctx: &WorkerContext,
    job_id: i64,
    job: OtpJob,
    Prepared { code, hash }: Prepared,
) -> Result<(), JobError> {
    let pool = ctx.db.pool();
    let now = ctx.clock.now_millis();
    let new = NewCode {
        item_id: job.item_id,
        contact: &job.contact,
        hash: &hash,
        expires_at: now + ctx.exchange.rules().otp_expiry.as_millis() as i64,
        job_id,
    };
    // Where the item is comes with the store. Not stored when an earlier
    // try of this job stored it: then the same code is sent again, its
    // lifetime and tries as they were.
    let place = match codes::store(pool, ctx.db.backend(), new, now).await? {
        Stored::At(place) => place,
        Stored::Not if codes::issuer(pool, job.item_id).await? == Some(job_id) => {
            items::whereabouts(pool, job.item_id).await?
        }
        Stored::Not => {
            tracing::info!(
                item_id = job.item_id,
                "item gone or no longer waiting, or a newer code exists; none issued"
            );
            return Ok(());
        }
    };
    let Some(place) = place else {
        tracing::info!(item_id = job.item_id, "item in no locker; no code sent");
        return Ok(());
    };
    let minutes = ctx.exchange.rules().otp_expiry.as_secs().div_ceil(60);
    let text = messages::code(&code, &place.location, &place.locker, minutes);
    ctx.notifier()?.send(&job.contact, &text, job_id).await?;
    tracing::info!(item_id = job.item_id, "code issued");
    Ok(())
}

/// The code job `job_id` sends: six decimal digits of HMAC-SHA256 of
/// `lockerx-otp:{job_id}` under the secret (the bias of reducing 64 bits
/// modulo 10^6 is below 10^-13).
fn code_for(secret: &[u8], job_id: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("lockerx-otp:{job_id}").as_bytes());
    let digest = mac.finalize().into_bytes();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("32 bytes"));
    format!("{:06}", n % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::code_for;

    #[test]
    fn a_job_has_one_code_and_jobs_have_different_ones() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let code = code_for(secret, 42);
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(code, code_for(secret, 42));
        let others: std::collections::HashSet<_> = (0..1000).map(|j| code_for(secret, j)).collect();
        assert!(others.len() > 990, "codes of different jobs differ");
        assert_ne!(code, code_for(b"another secret, just as long....", 42));
    }
}
