use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::clock::{Millis, rfc3339};
use crate::domain::{DoorState, Locker, LockerSize, LockerStatus, place_key};
use crate::store::decode_error;

/// Lockers with their agent's presence.
macro_rules! select_lockers {
    ($where:literal) => {
        concat!(
            "SELECT l.id, l.location, l.name, l.size, l.agent_id, l.status, l.door_state, \
               a.online AS agent_online, l.created_at, l.updated_at \
             FROM lockers l LEFT JOIN agents a ON a.id = l.agent_id ",
            $where
        )
    };
}

fn from_row(row: &AnyRow) -> Result<Locker, sqlx::Error> {
    let size: String = row.try_get("size")?;
    let status: String = row.try_get("status")?;
    let door: String = row.try_get("door_state")?;
    Ok(Locker {
        id: row.try_get("id")?,
        location: row.try_get("location")?,
        name: row.try_get("name")?,
        size: LockerSize::parse(&size).ok_or_else(|| decode_error("size", &size))?,
        agent_id: row.try_get("agent_id")?,
        status: LockerStatus::parse(&status).ok_or_else(|| decode_error("status", &status))?,
        door: DoorState::parse(&door).ok_or_else(|| decode_error("door_state", &door))?,
        agent_online: row
            .try_get::<Option<i64>, _>("agent_online")?
            .map(|v| v != 0),
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

fn from_rows(rows: Vec<AnyRow>) -> Result<Vec<Locker>, sqlx::Error> {
    rows.iter().map(from_row).collect()
}

pub struct NewLocker {
    pub location: String,
    pub name: Option<String>,
    pub size: LockerSize,
    pub agent_id: Option<String>,
}

pub async fn insert(
    conn: &mut AnyConnection,
    locker: NewLocker,
    now: Millis,
) -> Result<Locker, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO lockers (location, place_key, name, size, agent_id, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'AVAILABLE', $6, $6) RETURNING id",
    )
    .bind(locker.location.clone())
    .bind(place_key(&locker.location))
    .bind(locker.name)
    .bind(locker.size.as_str())
    .bind(locker.agent_id)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    get(&mut *conn, id).await?.ok_or(sqlx::Error::RowNotFound)
}

pub async fn get<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<Option<Locker>, sqlx::Error> {
    sqlx::query(select_lockers!("WHERE l.id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn list<'e>(
    executor: impl Executor<'e, Database = Any>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Locker>, sqlx::Error> {
    let rows = sqlx::query(select_lockers!("ORDER BY l.id LIMIT $1 OFFSET $2"))
        .bind(limit)
        .bind(offset)
        .fetch_all(executor)
        .await?;
    from_rows(rows)
}

/// Lockers at a place (matched on its [`place_key`]), optionally only those
/// in one status.
pub async fn at_place<'e>(
    executor: impl Executor<'e, Database = Any>,
    location: &str,
    status: Option<LockerStatus>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Locker>, sqlx::Error> {
    let rows = sqlx::query(select_lockers!(
        "WHERE l.place_key = $1 AND ($2 IS NULL OR l.status = $2) ORDER BY l.id LIMIT $3 OFFSET $4"
    ))
    .bind(place_key(location))
    .bind(status.map(LockerStatus::as_str))
    .bind(limit)
    .bind(offset)
    .fetch_all(executor)
    .await?;
    from_rows(rows)
}

/// An admin's edit. `None` leaves a field as it is; `Some(None)` clears a
/// nullable one.
#[derive(Debug, Default)]
pub struct LockerChanges {
    pub location: Option<String>,
    pub name: Option<Option<String>>,
    pub size: Option<LockerSize>,
    pub agent_id: Option<Option<String>>,
    /// Only [`LockerStatus::settable_by_admin`] statuses.
    pub status: Option<LockerStatus>,
}

#[derive(Debug)]
pub enum Edit {
    Done(Locker),
    NotFound,
    /// A status change was asked of a locker that holds an item.
    Occupied,
}

pub async fn update(
    conn: &mut AnyConnection,
    id: i64,
    changes: LockerChanges,
    now: Millis,
) -> Result<Edit, sqlx::Error> {
    let place = changes.location.as_deref().map(place_key);
    let updated: Option<i64> = sqlx::query_scalar(
        "UPDATE lockers SET \
           location = COALESCE($2, location), \
           place_key = COALESCE($3, place_key), \
           name = CASE WHEN $4 THEN $5 ELSE name END, \
           size = COALESCE($6, size), \
           agent_id = CASE WHEN $7 THEN $8 ELSE agent_id END, \
           status = COALESCE($9, status), \
           updated_at = $10 \
         WHERE id = $1 AND ($9 IS NULL OR status <> 'OCCUPIED') RETURNING id",
    )
    .bind(id)
    .bind(changes.location)
    .bind(place)
    .bind(changes.name.is_some())
    .bind(changes.name.flatten())
    .bind(changes.size.map(LockerSize::as_str))
    .bind(changes.agent_id.is_some())
    .bind(changes.agent_id.flatten())
    .bind(changes.status.map(LockerStatus::as_str))
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match (updated, get(&mut *conn, id).await?) {
        (Some(_), Some(locker)) => Edit::Done(locker),
        (None, Some(_)) => Edit::Occupied,
        (_, None) => Edit::NotFound,
    })
}

/// Deletes an empty locker.
pub async fn delete(conn: &mut AnyConnection, id: i64) -> Result<Edit, sqlx::Error> {
    let row = sqlx::query(
        "DELETE FROM lockers WHERE id = $1 AND status <> 'OCCUPIED' \
         RETURNING id, location, name, size, agent_id, status, door_state, \
           NULL AS agent_online, created_at, updated_at",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => Edit::Done(from_row(&row)?),
        None if get(&mut *conn, id).await?.is_some() => Edit::Occupied,
        None => Edit::NotFound,
    })
}

/// Moves a locker from one status to another if, and only if, it is still in
/// the first; true when this call made the move.
pub async fn transition<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
    from: LockerStatus,
    to: LockerStatus,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE lockers SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Records what a locker's door sensor said.
pub async fn set_door<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
    door: DoorState,
    at: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lockers SET door_state = $2, door_changed_at = $3 \
         WHERE id = $1 AND (door_changed_at IS NULL OR door_changed_at <= $3)",
    )
    .bind(id)
    .bind(door.as_str())
    .bind(at)
    .execute(executor)
    .await?;
    Ok(())
}
