//! Pickup passes (a stored item's PIN and QR token, as salted hashes) and
//! the entries and offline collections agents sent, each applied once.

use sqlx::{Any, AnyConnection, Executor, Row};

use crate::clock::Millis;
use crate::config::Backend;
use crate::db::lazily;
use crate::domain::ItemStatus;
use crate::jobs::JobKind;
use crate::store::job_runs::{mark_done, on_done_again};

const STORED: &str = ItemStatus::Stored.as_str();

/// A pass as it is kept: never the PIN or the token themselves.
pub struct NewPass {
    pub item_id: i64,
    pub salt: String,
    pub pin_hash: String,
    pub qr_hash: String,
    /// SHA-256 of the token, in hex: finds the pickup page.
    pub token_digest: String,
}

/// Keeps the item's pass while it is stored in a locker, and says which
/// locker; `None` when it already has one (every try of the notice derives
/// the same) or is no longer stored. Its notice job's own write, committed
/// lazily where the backend can (see `store::job_runs`).
pub async fn issue<'e>(
    executor: impl Executor<'e, Database = Any>,
    backend: Backend,
    pass: &NewPass,
    now: Millis,
) -> Result<Option<i64>, sqlx::Error> {
    let statement = lazily!(
        backend,
        [
            "INSERT INTO pickup_passes (item_id, locker_id, salt, pin_hash, qr_hash, token_digest, issued_at) \
             SELECT id, locker_id, $2, $3, $4, $5, $6 FROM items"
        ],
        ", ",
        [" WHERE id = $1 AND status = $7 AND locker_id IS NOT NULL \
             ON CONFLICT DO NOTHING RETURNING locker_id"]
    );
    sqlx::query_scalar(statement)
        .bind(pass.item_id)
        .bind(pass.salt.clone())
        .bind(pass.pin_hash.clone())
        .bind(pass.qr_hash.clone())
        .bind(pass.token_digest.clone())
        .bind(now)
        .bind(STORED)
        .fetch_optional(executor)
        .await
}

/// The locker of the item's pass; `None` when it has none.
pub async fn locker_of_pass<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT locker_id FROM pickup_passes WHERE item_id = $1")
        .bind(item_id)
        .fetch_optional(executor)
        .await
}

/// True when the item has a pass (so its locker's agent holds a grant).
pub async fn has_pass<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
) -> Result<bool, sqlx::Error> {
    Ok(locker_of_pass(executor, item_id).await?.is_some())
}

/// What the pickup page shows.
pub struct PassPage {
    pub status: ItemStatus,
    pub location: String,
    /// The locker's name, or `#id`.
    pub locker: String,
    pub collect_by: Option<Millis>,
}

/// The item a pickup token belongs to, by the token's digest.
pub async fn page<'e>(
    executor: impl Executor<'e, Database = Any>,
    token_digest: &str,
) -> Result<Option<PassPage>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.status, l.location, COALESCE(l.name, '#' || CAST(l.id AS TEXT)) AS locker, i.collect_by \
         FROM pickup_passes p JOIN items i ON i.id = p.item_id JOIN lockers l ON l.id = p.locker_id \
         WHERE p.token_digest = $1",
    )
    .bind(token_digest.to_owned())
    .fetch_optional(executor)
    .await?;
    row.map(|r| {
        let status: String = r.try_get("status")?;
        Ok(PassPage {
            status: ItemStatus::parse(&status)
                .ok_or_else(|| super::decode_error("status", &status))?,
            location: r.try_get("location")?,
            locker: r.try_get("locker")?,
            collect_by: r.try_get("collect_by")?,
        })
    })
    .transpose()
}

/// The pass of the item stored in a locker, for checking a code entered
/// there.
pub struct PassCheck {
    pub item_id: i64,
    pub salt: String,
    pub pin_hash: String,
    pub qr_hash: String,
    /// Cooling down after too many wrong codes (one count with the
    /// receiver's one-time codes) until then.
    pub locked_until: Option<Millis>,
}

pub async fn for_locker<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
) -> Result<Option<PassCheck>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.id, p.salt, p.pin_hash, p.qr_hash, i.otp_locked_until \
         FROM items i JOIN pickup_passes p ON p.item_id = i.id \
         WHERE i.locker_id = $1 AND i.status = $2",
    )
    .bind(locker_id)
    .bind(STORED)
    .fetch_optional(executor)
    .await?;
    row.map(|r| {
        Ok(PassCheck {
            item_id: r.try_get("id")?,
            salt: r.try_get("salt")?,
            pin_hash: r.try_get("pin_hash")?,
            qr_hash: r.try_get("qr_hash")?,
            locked_until: r.try_get("otp_locked_until")?,
        })
    })
    .transpose()
}

/// What a locker's agent should hold: the latest pass issued there, and
/// whether its item may still be opened with it (stored, and until when).
pub struct GrantState {
    pub agent_id: String,
    pub item_id: i64,
    pub salt: String,
    pub pin_hash: String,
    pub qr_hash: String,
    /// `Some(deadline)` while the item is stored.
    pub open_until: Option<Millis>,
}

/// Reads the locker's grant state and locks the pass row until the end of
/// the transaction, so that two processes publish a locker's grants in the
/// order of the states they read. With `done_job`, the read also marks that
/// job done, within the same transaction (where writes chain). Committed
/// lazily where the backend can (see `store::job_runs`): every try of a
/// job pushes its grant again, and a door job's done mark guards nothing on
/// PostgreSQL (its command, recorded once, does).
pub async fn grant_state(
    conn: &mut AnyConnection,
    backend: Backend,
    locker_id: i64,
    now: Millis,
    done_job: Option<i64>,
) -> Result<Option<GrantState>, sqlx::Error> {
    let statement = lazily!(
        backend,
        ["UPDATE pickup_passes SET issued_at = issued_at"],
        " FROM ",
        [
            " WHERE item_id = (SELECT MAX(item_id) FROM pickup_passes WHERE locker_id = $1) \
             RETURNING item_id"
        ]
    );
    let latest: Option<i64> = sqlx::query_scalar(statement)
        .bind(locker_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(item_id) = latest else {
        return Ok(None);
    };
    // Read after the lock is held, so it sees the state of any grant
    // committed before.
    macro_rules! read {
        () => {
            "SELECT l.agent_id, p.salt, p.pin_hash, p.qr_hash, i.status, i.collect_by \
             FROM pickup_passes p JOIN items i ON i.id = p.item_id \
             JOIN lockers l ON l.id = p.locker_id WHERE p.item_id = $1"
        };
    }
    let row = match done_job {
        None => sqlx::query(read!()).bind(item_id),
        Some(job_id) => sqlx::query(concat!(
            "WITH done AS (",
            mark_done!("$2", "$3", "$4"),
            on_done_again!(),
            ") ",
            read!()
        ))
        .bind(item_id)
        .bind(job_id)
        .bind(JobKind::Unlock.as_str())
        .bind(now),
    }
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let Some(agent_id) = r.try_get::<Option<String>, _>("agent_id")? else {
        return Ok(None);
    };
    let status: String = r.try_get("status")?;
    let collect_by: Option<Millis> = r.try_get("collect_by")?;
    Ok(Some(GrantState {
        agent_id,
        item_id,
        salt: r.try_get("salt")?,
        pin_hash: r.try_get("pin_hash")?,
        qr_hash: r.try_get("qr_hash")?,
        open_until: collect_by.filter(|by| status == STORED && *by > now),
    }))
}

/// An entry or a collection an agent sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Entry,
    Collection,
}

impl RequestKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Entry => "entry",
            Self::Collection => "collection",
        }
    }
}

/// Records the reply to an agent's request; false when it was recorded
/// before (a copy: its effect already happened).
pub async fn record<'e>(
    executor: impl Executor<'e, Database = Any>,
    agent_id: &str,
    id: &str,
    kind: RequestKind,
    locker_id: i64,
    reason: Option<&str>,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO pickup_requests (agent_id, id, kind, locker_id, ok, reason, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(agent_id.to_owned())
    .bind(id.to_owned())
    .bind(kind.as_str())
    .bind(locker_id)
    .bind(i64::from(reason.is_none()))
    .bind(reason.map(str::to_owned))
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The reply recorded for a request: `Some(None)` for accepted,
/// `Some(Some(reason))` for refused, `None` when it is new.
pub async fn reply_of<'e>(
    executor: impl Executor<'e, Database = Any>,
    agent_id: &str,
    id: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    let row = sqlx::query("SELECT reason FROM pickup_requests WHERE agent_id = $1 AND id = $2")
        .bind(agent_id.to_owned())
        .bind(id.to_owned())
        .fetch_optional(executor)
        .await?;
    row.map(|r| r.try_get("reason")).transpose()
}

/// How a pickup token is found: its SHA-256, in hex. The token is 128
/// random-looking bits, so its digest needs no salt.
pub fn token_digest(token: &str) -> String {
    use sha2::{Digest, Sha256};
    locker_protocol::signing::hex(&Sha256::digest(token.as_bytes()))
}
