//! Reading items, and noting which unlock command an item waits on. Items
//! change status only through [`crate::exchange`]; their codes live in
//! [`super::codes`].

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Executor, Row};

use crate::clock::{Millis, rfc3339};
use crate::domain::{Item, ItemStatus};
use crate::store::decode_error;

macro_rules! item_columns {
    () => {
        "id, locker_id, name, description, receiver_phone, receiver_email, status, \
         created_at, updated_at, stored_at, collected_at, cleared_at, drop_deadline, collect_by, \
         unlock_failed_at, extensions"
    };
}

/// The columns [`from_row`] reads.
pub(crate) const ITEM_COLUMNS: &str = item_columns!();

pub(crate) fn from_row(row: &AnyRow) -> Result<Item, sqlx::Error> {
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
        extensions: row.try_get("extensions")?,
    })
}

/// Items from rows of [`ITEM_COLUMNS`].
pub(crate) fn from_rows(rows: &[AnyRow]) -> Result<Vec<Item>, sqlx::Error> {
    rows.iter().map(from_row).collect()
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

/// The item in locker `$1` whose code `$2` (a contact) may ask for: a
/// stored item's receiver, or an expired item's sender; its id and
/// cool-down. Bound by [`bind_waiting_for`] (`$1` to `$4`).
pub(crate) const WAITING_FOR: &str = "SELECT id, otp_locked_until FROM items WHERE locker_id = $1 \
       AND ((status = $3 AND (receiver_email = $2 OR receiver_phone = $2)) \
         OR (status = $4 AND $2 = (SELECT email FROM users WHERE users.id = items.sender_id))) \
     LIMIT 1";

/// Binds [`WAITING_FOR`]'s parameters, the first of `query`'s.
pub(crate) fn bind_waiting_for<'q>(
    query: Query<'q, Any, AnyArguments>,
    locker_id: i64,
    contact: &str,
) -> Query<'q, Any, AnyArguments> {
    query
        .bind(locker_id)
        .bind(contact.to_owned())
        .bind(ItemStatus::Stored.as_str())
        .bind(ItemStatus::Expired.as_str())
}

/// The item in a locker that waits for `contact`: a stored one for its
/// receiver (email or phone), an expired one for its sender (their
/// account's email), to take it back. Returned with the end of its code
/// cool-down, if one was ever set.
pub async fn waiting_for<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
    contact: &str,
) -> Result<Option<(i64, Option<Millis>)>, sqlx::Error> {
    let row = bind_waiting_for(sqlx::query(WAITING_FOR), locker_id, contact)
        .fetch_optional(executor)
        .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("otp_locked_until")?)))
        .transpose()
}

/// Where an item is and who sent it, for messages about it.
#[derive(Debug, Clone)]
pub struct Whereabouts {
    /// The item's name.
    pub item: String,
    pub location: String,
    /// The locker's name, or `#` and its number.
    pub locker: String,
    /// `None` once the sender's account is gone.
    pub sender_email: Option<String>,
}

/// The columns that tell where an item is, beside the item's own `name`:
/// selected over [`whereabouts_joins`], read back by [`whereabouts_in`].
pub(crate) const WHEREABOUTS_COLUMNS: &str = "place_locker.location AS place_location, \
     COALESCE(place_locker.name, '#' || CAST(place_locker.id AS TEXT)) AS place_locker_name, \
     place_sender.email AS place_sender_email";

/// The joins [`WHEREABOUTS_COLUMNS`] reads, for the item whose `locker_id`
/// and `sender_id` the relation `item` has.
pub(crate) fn whereabouts_joins(item: &str) -> String {
    format!(
        "LEFT JOIN lockers AS place_locker ON place_locker.id = {item}.locker_id \
         LEFT JOIN users AS place_sender ON place_sender.id = {item}.sender_id"
    )
}

/// Where the item of a row with [`WHEREABOUTS_COLUMNS`] is; `None` for an
/// item in no locker.
pub fn whereabouts_in(row: &AnyRow) -> Result<Option<Whereabouts>, sqlx::Error> {
    let Some(location) = row.try_get::<Option<String>, _>("place_location")? else {
        return Ok(None);
    };
    Ok(Some(Whereabouts {
        item: row.try_get("name")?,
        location,
        locker: row.try_get("place_locker_name")?,
        sender_email: row.try_get("place_sender_email")?,
    }))
}

/// [`WHEREABOUTS_COLUMNS`] read from a row of `items` itself, where no join
/// can be made (an `UPDATE … RETURNING`); read back by [`whereabouts_in`].
macro_rules! whereabouts_of_items {
    () => {
        "(SELECT location FROM lockers WHERE lockers.id = items.locker_id) AS place_location, \
         (SELECT COALESCE(lockers.name, '#' || CAST(lockers.id AS TEXT)) FROM lockers \
            WHERE lockers.id = items.locker_id) AS place_locker_name, \
         (SELECT email FROM users WHERE users.id = items.sender_id) AS place_sender_email"
    };
}
pub(crate) use whereabouts_of_items;

/// Where an item is, and its sender's email, in one statement; `None` for
/// an item gone or in no locker.
pub async fn whereabouts<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
) -> Result<Option<Whereabouts>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT name, ",
        whereabouts_of_items!(),
        " FROM items WHERE id = $1"
    ))
    .bind(item_id)
    .fetch_optional(executor)
    .await?;
    Ok(row.as_ref().map(whereabouts_in).transpose()?.flatten())
}

/// The assignments of an `UPDATE items` that names the command bound at
/// `$command` as the one that unlocks the door for the item's current step.
macro_rules! name_command {
    ($command:literal) => {
        concat!(
            "unlock_command_id = ",
            $command,
            ", unlock_failed_at = NULL"
        )
    };
}
pub(crate) use name_command;

/// Names the command that unlocks the door for an item's current step.
pub async fn set_unlock_command<'e>(
    executor: impl Executor<'e, Database = Any>,
    item_id: i64,
    command_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "UPDATE items SET ",
        name_command!("$2"),
        " WHERE id = $1"
    ))
    .bind(item_id)
    .bind(command_id.to_owned())
    .execute(executor)
    .await?;
    Ok(())
}
