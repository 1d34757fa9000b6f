//! Items and their one-time codes. Every state change is one conditional
//! statement on the state it leaves.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::clock::{Millis, rfc3339};
use crate::domain::{Item, ItemStatus};
use crate::store::decode_error;

macro_rules! item_columns {
    () => {
        "id, locker_id, name, description, receiver_phone, receiver_email, status, \
         created_at, updated_at, stored_at, collected_at, cleared_at, drop_deadline, collect_by, \
         unlock_failed_at"
    };
}

fn from_row(row: &AnyRow) -> Result<Item, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let time = |column: &str| -> Result<Option<String>, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(rfc3339))
    };
    Ok(Item {
        id: row.try_get("id")?,
        locker_id: row.try_get("locker_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        receiver_phone: row.try_get("receiver_phone")?,
        receiver_email: row.try_get("receiver_email")?,
        status: ItemStatus::parse(&status).ok_or_else(|| decode_error("status", &status))?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
        stored_at: time("stored_at")?,
        collected_at: time("collected_at")?,
        cleared_at: time("cleared_at")?,
        drop_deadline: time("drop_deadline")?,
        collect_by: time("collect_by")?,
        unlock_failed_at: time("unlock_failed_at")?,
    })
}

pub struct NewItem {
    pub locker_id: i64,
    pub sender_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub receiver_phone: Option<String>,
    pub receiver_email: Option<String>,
}

/// How an item enters its (already reserved) locker.
pub enum Entry {
    /// The locker's door is ours to open: the item waits for the sender to
    /// open it before `drop_deadline`.
    AwaitingDrop { drop_deadline: Millis },
    /// No door to drive: stored at once, to be collected before `collect_by`.
    Stored { collect_by: Millis },
}

pub async fn insert<'e>(
    executor: impl Executor<'e, Database = Any>,
    item: NewItem,
    entry: Entry,
    now: Millis,
) -> Result<Item, sqlx::Error> {
    let (status, stored_at, drop_deadline, collect_by) = match entry {
        Entry::AwaitingDrop { drop_deadline } => ("AWAITING_DROP", None, Some(drop_deadline), None),
        Entry::Stored { collect_by } => ("STORED", Some(now), None, Some(collect_by)),
    };
    let row = sqlx::query(concat!(
        "INSERT INTO items (locker_id, sender_id, name, description, receiver_phone, receiver_email, \
           status, created_at, updated_at, stored_at, drop_deadline, collect_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11) RETURNING ",
        item_columns!()
    ))
    .bind(item.locker_id)
    .bind(item.sender_id)
    .bind(item.name)
    .bind(item.description)
    .bind(item.receiver_phone)
    .bind(item.receiver_email)
    .bind(status)
    .bind(now)
    .bind(stored_at)
    .bind(drop_deadline)
    .bind(collect_by)
    .fetch_one(executor)
    .await?;
    from_row(&row)
}

/// The item and its sender's id.
pub async fn get<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<Option<(Item, i64)>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT sender_id, ",
        item_columns!(),
        " FROM items WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?;
    row.map(|row| Ok((from_row(&row)?, row.try_get("sender_id")?)))
        .transpose()
}

/// A sender's items, newest first.
pub async fn for_sender<'e>(
    executor: impl Executor<'e, Database = Any>,
    sender_id: i64,
    limit: i64,
    offset: i64,
) -> Result<Vec<Item>, sqlx::Error> {
    sqlx::query(concat!(
        "SELECT ",
        item_columns!(),
        " FROM items WHERE sender_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(sender_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(executor)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// The stored item in a locker whose receiver is `contact`.
pub async fn stored_for_receiver<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
    contact: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM items WHERE locker_id = $1 AND status = 'STORED' \
           AND (receiver_email = $2 OR receiver_phone = $2)",
    )
    .bind(locker_id)
    .bind(contact.to_owned())
    .fetch_optional(executor)
    .await
}

/// Where an item is, for messages about it: (item name, place, locker name).
pub async fn whereabouts<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.name AS item, l.location, COALESCE(l.name, '#' || CAST(l.id AS TEXT)) AS locker \
         FROM items i JOIN lockers l ON l.id = i.locker_id WHERE i.id = $1",
    )
    .bind(item_id)
    .fetch_optional(executor)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("item")?,
            r.try_get("location")?,
            r.try_get("locker")?,
        ))
    })
    .transpose()
}

/// The item's sender's email.
pub async fn sender_email<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT u.email FROM items i JOIN users u ON u.id = i.sender_id WHERE i.id = $1",
    )
    .bind(item_id)
    .fetch_optional(executor)
    .await
}

pub struct NewCode<'a> {
    pub item_id: i64,
    pub contact: &'a str,
    pub hash: &'a str,
    pub expires_at: Millis,
    /// The job issuing it; a code from an older job never replaces a newer one
    /// (a retry of the same job may replace its own).
    pub job_id: i64,
}

/// Stores a new code for a stored item, replacing the current one and its
/// count of wrong tries. False when the item has moved on or holds a newer code.
pub async fn store_code<'e>(
    executor: impl Executor<'e, Database = Any>,
    code: NewCode<'_>,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE items SET otp_hash = $3, otp_expires_at = $4, otp_job_id = $5, otp_attempts = 0, updated_at = $6 \
         WHERE id = $1 AND status = 'STORED' AND (receiver_email = $2 OR receiver_phone = $2) \
           AND (otp_job_id IS NULL OR otp_job_id <= $5)",
    )
    .bind(code.item_id)
    .bind(code.contact.to_owned())
    .bind(code.hash.to_owned())
    .bind(code.expires_at)
    .bind(code.job_id)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A try against the current code of the stored item in a locker, counted
/// before the code is checked so parallel guesses cannot exceed the limit.
/// `None` when there is no usable code (none, expired, used up, or cooling down).
pub async fn take_code_attempt<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
    max_attempts: i64,
    now: Millis,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE items SET otp_attempts = otp_attempts + 1 \
         WHERE locker_id = $1 AND status = 'STORED' AND otp_hash IS NOT NULL \
           AND otp_expires_at > $2 AND otp_attempts < $3 \
           AND (otp_locked_until IS NULL OR otp_locked_until <= $2) \
         RETURNING id, otp_hash",
    )
    .bind(locker_id)
    .bind(now)
    .bind(max_attempts)
    .fetch_optional(executor)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("otp_hash")?)))
        .transpose()
}

/// When the stored item in a locker is cooling down after too many wrong
/// codes, the moment it may be tried again.
pub async fn locked_until<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
    now: Millis,
) -> Result<Option<Millis>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT otp_locked_until FROM items \
         WHERE locker_id = $1 AND status = 'STORED' AND otp_locked_until > $2",
    )
    .bind(locker_id)
    .bind(now)
    .fetch_optional(executor)
    .await
}

/// Counts a wrong code against the item. The `cap`-th wrong code in a row
/// voids the current code and starts a cool-down until `locked_until`; true
/// when this one did.
pub async fn record_wrong_code<'e>(
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

/// The receiver's right code spends it, once: the item moves to `to`
/// (`RELEASING` while its door opens, or `COLLECTED` when there is no door
/// to drive). `None` when another collect with the same code got there first.
pub async fn spend_code(
    conn: &mut AnyConnection,
    item_id: i64,
    code_hash: &str,
    to: ItemStatus,
    now: Millis,
) -> Result<Option<Item>, sqlx::Error> {
    let collected_at = (to == ItemStatus::Collected).then_some(now);
    let row = sqlx::query(concat!(
        "UPDATE items SET status = $4, collected_at = $5, updated_at = $3, \
           otp_hash = NULL, otp_expires_at = NULL, otp_failures = 0 \
         WHERE id = $1 AND status = 'STORED' AND otp_hash = $2 RETURNING ",
        item_columns!()
    ))
    .bind(item_id)
    .bind(code_hash.to_owned())
    .bind(now)
    .bind(to.as_str())
    .bind(collected_at)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Names the command that unlocks the door for an item's current step.
pub async fn set_unlock_command<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
    command_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE items SET unlock_command_id = $2, unlock_failed_at = NULL WHERE id = $1")
        .bind(item_id)
        .bind(command_id.to_owned())
        .execute(executor)
        .await?;
    Ok(())
}

pub async fn mark_unlock_failed<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE items SET unlock_failed_at = $2, updated_at = $2 WHERE id = $1")
        .bind(item_id)
        .bind(now)
        .execute(executor)
        .await?;
    Ok(())
}

/// The door of the item waiting on `command_id` opened.
pub async fn door_opened<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
    command_id: &str,
    at: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE items SET door_opened_at = COALESCE(door_opened_at, $3) \
         WHERE locker_id = $1 AND unlock_command_id = $2 AND status IN ('AWAITING_DROP', 'RELEASING')",
    )
    .bind(locker_id)
    .bind(command_id.to_owned())
    .bind(at)
    .execute(executor)
    .await?;
    Ok(())
}

/// The door of the item waiting on `command_id` closed: a drop becomes
/// `STORED` (to be collected before `collect_by`), a release `COLLECTED`.
/// `None` when no item waited on that command (or it moved on already).
pub async fn door_closed(
    conn: &mut AnyConnection,
    locker_id: i64,
    command_id: &str,
    collect_by: Millis,
    now: Millis,
) -> Result<Option<Item>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "UPDATE items SET \
           status = CASE status WHEN 'AWAITING_DROP' THEN 'STORED' ELSE 'COLLECTED' END, \
           stored_at = CASE status WHEN 'AWAITING_DROP' THEN $4 ELSE stored_at END, \
           collect_by = CASE status WHEN 'AWAITING_DROP' THEN $3 ELSE collect_by END, \
           collected_at = CASE status WHEN 'RELEASING' THEN $4 ELSE collected_at END, \
           door_opened_at = NULL, updated_at = $4 \
         WHERE locker_id = $1 AND unlock_command_id = $2 AND status IN ('AWAITING_DROP', 'RELEASING') \
         RETURNING ",
        item_columns!()
    ))
    .bind(locker_id)
    .bind(command_id.to_owned())
    .bind(collect_by)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Drops whose door never opened in time: `CANCELLED`.
pub async fn cancel_unopened(
    conn: &mut AnyConnection,
    now: Millis,
) -> Result<Vec<Item>, sqlx::Error> {
    sqlx::query(concat!(
        "UPDATE items SET status = 'CANCELLED', updated_at = $1 \
         WHERE status = 'AWAITING_DROP' AND drop_deadline < $1 AND door_opened_at IS NULL RETURNING ",
        item_columns!()
    ))
    .bind(now)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Items not collected in time: `EXPIRED`, their code void. They stay in
/// their locker until an admin clears it.
pub async fn expire_uncollected(
    conn: &mut AnyConnection,
    now: Millis,
) -> Result<Vec<Item>, sqlx::Error> {
    sqlx::query(concat!(
        "UPDATE items SET status = 'EXPIRED', updated_at = $1, otp_hash = NULL, otp_expires_at = NULL \
         WHERE status = 'STORED' AND collect_by < $1 RETURNING ",
        item_columns!()
    ))
    .bind(now)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// An admin empties a locker: its item is kept, marked cleared.
pub async fn clear(
    conn: &mut AnyConnection,
    locker_id: i64,
    now: Millis,
) -> Result<Option<Item>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "UPDATE items SET status = 'CLEARED', cleared_at = $2, updated_at = $2, \
           otp_hash = NULL, otp_expires_at = NULL \
         WHERE locker_id = $1 AND status IN ('AWAITING_DROP', 'STORED', 'RELEASING', 'EXPIRED') RETURNING ",
        item_columns!()
    ))
    .bind(locker_id)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}
