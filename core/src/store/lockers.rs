//! Lockers as stored, and the one conditional statement that moves one. Admin
//! edits live with the exchange's other rules ([`crate::exchange`]).

use sqlx::any::AnyRow;
use sqlx::{
    Any, AnyConnection, AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor,
    IntoArguments, Row, Type,
};

use crate::config::Backend;
use crate::db::Reads;

use crate::clock::{Millis, rfc3339};
use crate::domain::{DoorState, Locker, LockerMove, LockerSize, LockerStatus, place_key};
use crate::store::decode_error;

/// A locker's columns (`l`) with its agent's presence (`a`), in types both
/// of the drivers that read them agree on.
macro_rules! locker_columns {
    () => {
        "l.id, l.location, l.name, l.size, l.agent_id, l.status, l.door_state, \
         CAST(a.online AS BIGINT) AS agent_online, l.created_at, l.updated_at"
    };
}

/// Lockers with their agent's presence.
macro_rules! select_lockers {
    ($where:literal) => {
        concat!(
            "SELECT ",
            locker_columns!(),
            " FROM lockers l LEFT JOIN agents a ON a.id = l.agent_id ",
            $where
        )
    };
}

/// One row: how many lockers are at the place `$1` (`lockers`) and how many
/// of each size are in status `$2` (`free_small`, `free_medium`,
/// `free_large`).
macro_rules! count_at_place {
    () => {
        "SELECT COUNT(*) AS lockers, \
           SUM(CASE WHEN status = $2 AND size = 'SMALL' THEN 1 ELSE 0 END) AS free_small, \
           SUM(CASE WHEN status = $2 AND size = 'MEDIUM' THEN 1 ELSE 0 END) AS free_medium, \
           SUM(CASE WHEN status = $2 AND size = 'LARGE' THEN 1 ELSE 0 END) AS free_large \
         FROM lockers WHERE place_key = $1"
    };
}

/// The lockers at a place: `$1` its [`place_key`], `$2` the status counted
/// free, `$3` a status to keep or NULL for all, `$4` limit, `$5` offset;
/// every row carries the place's free lockers by size. Public so the
/// benchmark can time this very statement alone (`locker-bench`).
pub const AT_PLACE: &str = concat!(
    "SELECT ",
    locker_columns!(),
    ", f.free_small, f.free_medium, f.free_large FROM (",
    count_at_place!(),
    ") f JOIN lockers l ON l.place_key = $1 AND ($3 IS NULL OR l.status = $3) \
     LEFT JOIN agents a ON a.id = l.agent_id ORDER BY l.id LIMIT $4 OFFSET $5"
);

/// A row as the `Any` driver or PostgreSQL's own ([`Reads`]) reads it.
pub(crate) fn from_row<R>(row: &R) -> Result<Locker, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
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

/// Takes locker `id`'s row for this transaction, where rows can be locked:
/// a transaction that moves a locker's item and then the locker takes the
/// locker first, as a door's events do, so that two never wait on each
/// other in a circle (PostgreSQL would end one with a deadlock error).
/// False when there is no such locker.
pub async fn hold<'e>(
    executor: impl Executor<'e, Database = Any>,
    backend: Backend,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let sql = if backend.locks_rows() {
        "SELECT id FROM lockers WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id FROM lockers WHERE id = $1"
    };
    let held: Option<i64> = sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(executor)
        .await?;
    Ok(held.is_some())
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
/// in one status, with the place's available lockers by size (all of them,
/// whatever the filter and page), in one statement. A hot read: see
/// [`Reads`].
pub async fn at_place(
    reads: Reads<'_>,
    location: &str,
    status: Option<LockerStatus>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Locker>, FreeBySize), sqlx::Error> {
    let place = place_key(location);
    match reads {
        Reads::Postgres(pool) => at_place_on(pool, place, status, limit, offset).await,
        Reads::Shared(pool) => at_place_on(pool, place, status, limit, offset).await,
    }
}

async fn at_place_on<'e, DB>(
    executor: impl Executor<'e, Database = DB>,
    place_key: String,
    status: Option<LockerStatus>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Locker>, FreeBySize), sqlx::Error>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    &'static str: Encode<'static, DB> + Type<DB>,
    Option<&'static str>: Encode<'static, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Decode<'r, DB> + Type<DB>,
{
    let rows = sqlx::query::<DB>(AT_PLACE)
        .bind(place_key)
        .bind(LockerStatus::Available.as_str())
        .bind(status.map(LockerStatus::as_str))
        .bind(limit)
        .bind(offset)
        .fetch_all(executor)
        .await?;
    let free = rows.first().map(free_from_row).transpose()?;
    let lockers = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok((lockers, free.unwrap_or_default()))
}

/// The smallest available locker at a place (its [`place_key`]) that fits
/// an item of `size`, the lowest id among equals. Inside a transaction,
/// where rows can be locked, it is taken for that transaction and lockers
/// another one holds are passed over, so racing drops pick different ones.
pub async fn smallest_free(
    conn: &mut AnyConnection,
    place_key: &str,
    size: LockerSize,
    backend: Backend,
) -> Result<Option<i64>, sqlx::Error> {
    let fitting: Vec<&str> = LockerSize::ALL
        .into_iter()
        .filter(|s| s.fits(size))
        .map(LockerSize::as_str)
        .collect();
    // Three slots, the fitting sizes repeated to fill them.
    let slot = |i: usize| fitting[i.min(fitting.len() - 1)].to_owned();
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT id FROM lockers WHERE place_key = $1 AND status = $2 AND size IN ($3, $4, $5) \
         ORDER BY CASE size WHEN 'SMALL' THEN 0 WHEN 'MEDIUM' THEN 1 ELSE 2 END, id \
         LIMIT 1{}",
        backend.skip_locked()
    )))
    .bind(place_key.to_owned())
    .bind(LockerStatus::Available.as_str())
    .bind(slot(0))
    .bind(slot(1))
    .bind(slot(2))
    .fetch_optional(conn)
    .await
}

/// How many lockers of each size, smallest first, are available at a place;
/// `None` when no locker at all is there.
pub async fn free_by_size<'e>(
    executor: impl Executor<'e, Database = Any>,
    place_key: &str,
) -> Result<Option<FreeBySize>, sqlx::Error> {
    let row = sqlx::query(count_at_place!())
        .bind(place_key.to_owned())
        .bind(LockerStatus::Available.as_str())
        .fetch_one(executor)
        .await?;
    if row.try_get::<i64, _>("lockers")? == 0 {
        return Ok(None);
    }
    free_from_row(&row).map(Some)
}

fn free_from_row<R>(row: &R) -> Result<FreeBySize, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(FreeBySize {
        small: row.try_get("free_small")?,
        medium: row.try_get("free_medium")?,
        large: row.try_get("free_large")?,
    })
}

/// Available lockers at a place, by size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct FreeBySize {
    pub small: i64,
    pub medium: i64,
    pub large: i64,
}

impl std::fmt::Display for FreeBySize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SMALL {}, MEDIUM {}, LARGE {}",
            self.small, self.medium, self.large
        )
    }
}

/// Makes a locker's move if, and only if, it is still in the status the
/// move leaves; true when this call made it.
pub async fn apply<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
    change: LockerMove,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    Ok(make_move(executor, id, change, now).await?.is_some())
}

/// Reserves a free locker (the conditional move [`LockerMove::Reserve`]):
/// `None` when it was not free, else the agent that drives its door, read in
/// the same statement.
pub async fn reserve<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
    now: Millis,
) -> Result<Option<Option<String>>, sqlx::Error> {
    make_move(executor, id, LockerMove::Reserve, now).await
}

/// The conditional move itself: `None` when the locker was not in the
/// status the move leaves, else its door's agent.
async fn make_move<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
    change: LockerMove,
    now: Millis,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE lockers SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2 \
         RETURNING agent_id",
    )
    .bind(id)
    .bind(change.from().as_str())
    .bind(change.to().as_str())
    .bind(now)
    .fetch_optional(executor)
    .await
}

/// The assignments of an `UPDATE lockers` that records a door sensor's
/// `state` reported `at`: a report older than the one recorded leaves the
/// door as it is.
macro_rules! door_assignments {
    ($state:literal, $at:literal) => {
        concat!(
            "door_state = CASE WHEN door_changed_at IS NULL OR door_changed_at <= ",
            $at,
            " THEN ",
            $state,
            " ELSE door_state END, door_changed_at = CASE WHEN door_changed_at IS NULL \
             OR door_changed_at <= ",
            $at,
            " THEN ",
            $at,
            " ELSE door_changed_at END"
        )
    };
}
pub(crate) use door_assignments;

/// Records what a locker's door sensor said, as reported by `agent_id`:
/// false (nothing recorded) when that agent does not drive the locker. A
/// report older than the one recorded leaves the door as it is.
pub async fn set_door<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
    agent_id: &str,
    door: DoorState,
    at: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(concat!(
        "UPDATE lockers SET ",
        door_assignments!("$2", "$3"),
        " WHERE id = $1 AND agent_id = $4"
    ))
    .bind(id)
    .bind(door.as_str())
    .bind(at)
    .bind(agent_id.to_owned())
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}
