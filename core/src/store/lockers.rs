use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::clock::{Millis, rfc3339};
use crate::domain::{Locker, LockerSize, LockerStatus, place_key};
use crate::store::users::decode_error;

fn from_row(row: &AnyRow) -> Result<Locker, sqlx::Error> {
    let size: String = row.try_get("size")?;
    let status: String = row.try_get("status")?;
    Ok(Locker {
        id: row.try_get("id")?,
        location: row.try_get("location")?,
        name: row.try_get("name")?,
        size: LockerSize::parse(&size).ok_or_else(|| decode_error("size", &size))?,
        agent_id: row.try_get("agent_id")?,
        status: LockerStatus::parse(&status).ok_or_else(|| decode_error("status", &status))?,
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

pub async fn insert<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker: NewLocker,
    now: Millis,
) -> Result<Locker, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO lockers (location, place_key, name, size, agent_id, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'AVAILABLE', $6, $6) \
         RETURNING id, location, name, size, agent_id, status, created_at, updated_at",
    )
    .bind(locker.location.clone())
    .bind(place_key(&locker.location))
    .bind(locker.name)
    .bind(locker.size.as_str())
    .bind(locker.agent_id)
    .bind(now)
    .fetch_one(executor)
    .await?;
    from_row(&row)
}

pub async fn get<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<Option<Locker>, sqlx::Error> {
    sqlx::query(
        "SELECT id, location, name, size, agent_id, status, created_at, updated_at \
         FROM lockers WHERE id = $1",
    )
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
    let rows = sqlx::query(
        "SELECT id, location, name, size, agent_id, status, created_at, updated_at \
         FROM lockers ORDER BY id LIMIT $1 OFFSET $2",
    )
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
    let rows = sqlx::query(
        "SELECT id, location, name, size, agent_id, status, created_at, updated_at \
         FROM lockers WHERE place_key = $1 AND ($2 IS NULL OR status = $2) \
         ORDER BY id LIMIT $3 OFFSET $4",
    )
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
    conn: &mut sqlx::AnyConnection,
    id: i64,
    changes: LockerChanges,
    now: Millis,
) -> Result<Edit, sqlx::Error> {
    let place = changes.location.as_deref().map(place_key);
    let row = sqlx::query(
        "UPDATE lockers SET \
           location = COALESCE($2, location), \
           place_key = COALESCE($3, place_key), \
           name = CASE WHEN $4 THEN $5 ELSE name END, \
           size = COALESCE($6, size), \
           agent_id = CASE WHEN $7 THEN $8 ELSE agent_id END, \
           status = COALESCE($9, status), \
           updated_at = $10 \
         WHERE id = $1 AND ($9 IS NULL OR status <> 'OCCUPIED') \
         RETURNING id, location, name, size, agent_id, status, created_at, updated_at",
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
    Ok(match row {
        Some(row) => Edit::Done(from_row(&row)?),
        None if get(&mut *conn, id).await?.is_some() => Edit::Occupied,
        None => Edit::NotFound,
    })
}

/// Deletes an empty locker.
pub async fn delete(conn: &mut sqlx::AnyConnection, id: i64) -> Result<Edit, sqlx::Error> {
    let row = sqlx::query(
        "DELETE FROM lockers WHERE id = $1 AND status <> 'OCCUPIED' \
         RETURNING id, location, name, size, agent_id, status, created_at, updated_at",
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
