//! One-time codes: issued (hash only), tried (each try counted before it is
//! checked), and a cool-down after too many wrong ones. A code is only ever
//! held by a `STORED` item (for its receiver) or an `EXPIRED` one (for its
//! sender, to take it back).

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Executor, Row};

use crate::clock::Millis;
use crate::config::Backend;
use crate::db::lazily;
use crate::domain::ItemStatus;
use crate::store::items::{Whereabouts, whereabouts_in, whereabouts_of_items};
use crate::store::rate_limits::Gate;

const STORED: &str = ItemStatus::Stored.as_str();
const EXPIRED: &str = ItemStatus::Expired.as_str();

pub struct NewCode<'a> {
    pub item_id: i64,
    pub contact: &'a str,
    pub hash: &'a str,
    pub expires_at: Millis,
    /// The job issuing it; a code from an older job never replaces a newer
    /// one, nor a job its own (a retry sends the code it stored).
    pub job_id: i64,
}

/// What storing a code did.
pub enum Stored {
    /// Stored, for the item at this place (`None`: in no locker), read by
    /// the same statement.
    At(Option<Whereabouts>),
    /// Nothing stored: the item has moved on, the contact is no longer the
    /// one it waits for, or it holds a newer code.
    Not,
}

/// Stores a new code for the item, replacing the current one and its count
/// of wrong tries: for its receiver while it is stored, for its sender (by
/// their account's email) once it has expired. Its code job's own write,
/// committed lazily where the backend can (see `store::job_runs`).
pub async fn store<'e>(
    executor: impl Executor<'e, Database = Any>,
    backend: Backend,
    code: NewCode<'_>,
    now: Millis,
) -> Result<Stored, sqlx::Error> {
    let statement = lazily!(
        backend,
        [
            "UPDATE items SET otp_hash = $3, otp_expires_at = $4, otp_job_id = $5, otp_attempts = 0, updated_at = $6"
        ],
        " FROM ",
        [
            " WHERE id = $1 \
               AND ((status = $7 AND (receiver_email = $2 OR receiver_phone = $2)) \
                 OR (status = $8 AND $2 = (SELECT email FROM users WHERE users.id = items.sender_id))) \
               AND (otp_job_id IS NULL OR otp_job_id < $5) \
             RETURNING name, ",
            whereabouts_of_items!()
        ]
    );
    let row = sqlx::query(statement)
        .bind(code.item_id)
        .bind(code.contact.to_owned())
        .bind(code.hash.to_owned())
        .bind(code.expires_at)
        .bind(code.job_id)
        .bind(now)
        .bind(STORED)
        .bind(EXPIRED)
        .fetch_optional(executor)
        .await?;
    match row {
        Some(row) => Ok(Stored::At(whereabouts_in(&row)?)),
        None => Ok(Stored::Not),
    }
}

/// The job that issued the item's current code, if it has one.
pub async fn issuer<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let job: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT otp_job_id FROM items WHERE id = $1 AND status IN ($2, $3) AND otp_hash IS NOT NULL",
    )
    .bind(item_id)
    .bind(STORED)
    .bind(EXPIRED)
    .fetch_optional(executor)
    .await?;
    Ok(job.flatten())
}

/// A try against the current code of the item in a locker, counted
/// before the code is checked so parallel guesses cannot exceed the limit.
/// `None` when there is no usable code (none, expired, used up, or cooling down).
pub async fn take_attempt<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
    max_attempts: i64,
    now: Millis,
) -> Result<Option<Attempt>, sqlx::Error> {
    let query = sqlx::query(AssertSqlSafe(format!(
        "{TAKE_ATTEMPT} RETURNING {ATTEMPT_COLUMNS}"
    )));
    let row = bind_attempt(query, locker_id, max_attempts, now)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(attempt_from).transpose()
}

/// A try counted on the item's code, bound as [`bind_attempt`] binds it.
const TAKE_ATTEMPT: &str = "UPDATE items SET otp_attempts = otp_attempts + 1 \
     WHERE locker_id = $1 AND status IN ($4, $5) AND otp_hash IS NOT NULL \
       AND otp_expires_at > $2 AND otp_attempts < $3 \
       AND (otp_locked_until IS NULL OR otp_locked_until <= $2)";

/// What a try returns, read by [`attempt_from`].
const ATTEMPT_COLUMNS: &str =
    "id, otp_hash, (SELECT agent_id FROM lockers WHERE id = $1) AS agent_id";

fn bind_attempt<'q>(
    query: Query<'q, Any, AnyArguments>,
    locker_id: i64,
    max_attempts: i64,
    now: Millis,
) -> Query<'q, Any, AnyArguments> {
    query
        .bind(locker_id)
        .bind(now)
        .bind(max_attempts)
        .bind(STORED)
        .bind(EXPIRED)
}

fn attempt_from(row: &AnyRow) -> Result<Attempt, sqlx::Error> {
    Ok(Attempt {
        item_id: row.try_get("id")?,
        hash: row.try_get("otp_hash")?,
        agent_id: row.try_get("agent_id")?,
    })
}

/// [`take_attempt`] once the request has passed `gate`, counted in the
/// same statement (where writes chain): `Err` with the first limit that
/// refused, and then no try is taken.
pub async fn take_attempt_gated<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
    max_attempts: i64,
    now: Millis,
    gate: &Gate<'_>,
) -> Result<Result<Option<Attempt>, usize>, sqlx::Error> {
    let query = sqlx::query(AssertSqlSafe(format!(
        "WITH {gate}, \
         attempt AS ({TAKE_ATTEMPT} AND NOT EXISTS (SELECT 1 FROM refused WHERE n IS NOT NULL) \
           RETURNING {ATTEMPT_COLUMNS}) \
         SELECT (SELECT n FROM refused) AS refused, attempt.* \
         FROM (SELECT 1) AS one LEFT JOIN attempt ON TRUE",
        gate = Gate::ctes(gate.0.len(), 6),
    )));
    let row = gate
        .bind(bind_attempt(query, locker_id, max_attempts, now))
        .fetch_one(executor)
        .await?;
    if let Some(refused) = Gate::refused_in(&row)? {
        return Ok(Err(refused));
    }
    if row.try_get::<Option<i64>, _>("id")?.is_none() {
        return Ok(Ok(None));
    }
    Ok(Ok(Some(attempt_from(&row)?)))
}

/// Returns an attempt taken against the code `hash` that could not be
/// checked; a code replaced meanwhile keeps its own count.
pub async fn give_back_attempt<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE items SET otp_attempts = otp_attempts - 1 \
         WHERE id = $1 AND otp_hash = $2 AND otp_attempts > 0",
    )
    .bind(item_id)
    .bind(hash)
    .execute(executor)
    .await?;
    Ok(())
}

/// An attempt at an item's code, taken: what to check the code against.
#[derive(Debug)]
pub struct Attempt {
    pub item_id: i64,
    pub hash: String,
    /// The agent that drives the locker's door, if any.
    pub agent_id: Option<String>,
}

/// Counts a wrong code against the item. The `cap`-th wrong code in a row
/// voids the current code and starts a cool-down until `locked_until`; true
/// when this one did.
pub async fn record_wrong<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
    cap: i64,
    locked_until: Millis,
) -> Result<bool, sqlx::Error> {
    let row: Option<Option<i64>> = sqlx::query_scalar(
        "UPDATE items SET \
           otp_failures = CASE WHEN otp_failures + 1 >= $2 THEN 0 ELSE otp_failures + 1 END, \
           otp_locked_until = CASE WHEN otp_failures + 1 >= $2 THEN $3 ELSE otp_locked_until END, \
           otp_hash = CASE WHEN otp_failures + 1 >= $2 THEN NULL ELSE otp_hash END \
         WHERE id = $1 RETURNING otp_locked_until",
    )
    .bind(item_id)
    .bind(cap)
    .bind(locked_until)
    .fetch_optional(executor)
    .await?;
    Ok(row.flatten() == Some(locked_until))
}
