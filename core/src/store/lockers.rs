//! Lockers as stored, and the one conditional statement that moves one. Admin
//! edits live with the exchange's other rules ([`crate::exchange`]).

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::clock::{Millis, rfc3339};
use crate::domain::{DoorState, Locker, LockerMove, LockerSize, LockerStatus, place_key};
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

pub(crate) fn from_row(row: &AnyRow) -> Result<Locker, sqlx::Error> {
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

#[derive(Clone)]
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
         VALUES ($1, $2, $3, $4, $5, $7, $6, $6) RETURNING id",
    )
    .bind(locker.location.clone())
    .bind(place_key(&locker.location))
    .bind(locker.name)
    .bind(locker.size.as_str())
    .bind(locker.agent_id)
    .bind(now)
    .bind(LockerStatus::Available.as_str())
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

/// Makes a locker's move if, and only if, it is still in the status the
/// move leaves; true when this call made it.
pub async fn apply<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
    change: LockerMove,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE lockers SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(change.from().as_str())
    .bind(change.to().as_str())
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
