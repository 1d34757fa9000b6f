//! What the operators' console shows: every locker with its door, agent and
//! item; the alarms that want an operator; and one locker's history.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::clock::Millis;
use crate::store::decode_error;

/// An item's statuses while it is in a locker, for `IN (...)`.
macro_rules! in_locker {
    () => {
        "'AWAITING_DROP', 'STORED', 'RELEASING', 'EXPIRED', 'RETURNING'"
    };
}

/// A locker as the console's grid shows it.
#[derive(Debug, Clone)]
pub struct LockerView {
    pub id: i64,
    pub location: String,
    pub name: Option<String>,
    pub size: String,
    pub status: String,
    pub door: String,
    pub door_changed_at: Option<Millis>,
    pub agent_id: Option<String>,
    /// `None` without an agent or before it was first heard from.
    pub agent_online: Option<bool>,
    pub item: Option<ItemView>,
}

/// The item in a locker, and the deadline it runs against.
#[derive(Debug, Clone)]
pub struct ItemView {
    pub id: i64,
    pub name: String,
    pub status: String,
    /// To drop (`AWAITING_DROP`) or to collect (otherwise).
    pub deadline: Option<Millis>,
}

/// Every locker (at one place, if given), by place then id.
pub async fn lockers<'e>(
    executor: impl Executor<'e, Database = Any>,
    place_key: Option<&str>,
    locker_id: Option<i64>,
) -> Result<Vec<LockerView>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT l.id, l.location, l.name, l.size, l.status, l.door_state, l.door_changed_at, \
           l.agent_id, a.online AS agent_online, \
           i.id AS item_id, i.name AS item_name, i.status AS item_status, \
           CASE WHEN i.status = 'AWAITING_DROP' THEN i.drop_deadline ELSE i.collect_by END \
             AS item_deadline \
         FROM lockers l LEFT JOIN agents a ON a.id = l.agent_id \
           LEFT JOIN items i ON i.locker_id = l.id AND i.status IN (",
        in_locker!(),
        ") \
         WHERE ($1 IS NULL OR l.place_key = $1) AND ($2 IS NULL OR l.id = $2) \
         ORDER BY l.place_key, l.id LIMIT 5000"
    ))
    .bind(place_key.map(str::to_owned))
    .bind(locker_id)
    .fetch_all(executor)
    .await?;
    rows.iter().map(locker_from_row).collect()
}

fn locker_from_row(row: &AnyRow) -> Result<LockerView, sqlx::Error> {
    let item = match row.try_get::<Option<i64>, _>("item_id")? {
        Some(id) => Some(ItemView {
            id,
            name: row.try_get("item_name")?,
            status: row.try_get("item_status")?,
            deadline: row.try_get("item_deadline")?,
        }),
        None => None,
    };
    Ok(LockerView {
        id: row.try_get("id")?,
        location: row.try_get("location")?,
        name: row.try_get("name")?,
        size: row.try_get("size")?,
        status: row.try_get("status")?,
        door: row.try_get("door_state")?,
        door_changed_at: row.try_get("door_changed_at")?,
        agent_id: row.try_get("agent_id")?,
        agent_online: row
            .try_get::<Option<i64>, _>("agent_online")?
            .map(|v| v != 0),
        item,
    })
}

/// Every place, as first written, by its key.
pub async fn places<'e>(
    executor: impl Executor<'e, Database = Any>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT place_key, MIN(location) AS location FROM lockers \
         GROUP BY place_key ORDER BY place_key",
    )
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("place_key")?, r.try_get("location")?)))
        .collect()
}

/// What wants an operator's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    DoorLeftOpen,
    UnlockFailed,
    AgentOffline,
    PickupOverdue,
    DropNeverOpened,
    OutOfService,
}

impl AlarmKind {
    pub const ALL: [Self; 6] = [
        Self::DoorLeftOpen,
        Self::UnlockFailed,
        Self::AgentOffline,
        Self::PickupOverdue,
        Self::DropNeverOpened,
        Self::OutOfService,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DoorLeftOpen => "door_left_open",
            Self::UnlockFailed => "unlock_failed",
            Self::AgentOffline => "agent_offline",
            Self::PickupOverdue => "pickup_overdue",
            Self::DropNeverOpened => "drop_never_opened",
            Self::OutOfService => "out_of_service",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct Alarm {
    pub kind: AlarmKind,
    pub locker_id: i64,
    /// Since when the condition holds.
    pub since: Millis,
    /// The agent, item or command concerned.
    pub detail: String,
}

/// How long before a door left open or a drop never opened is an alarm.
#[derive(Debug, Clone, Copy)]
pub struct AlarmThresholds {
    pub door_open_ms: Millis,
    pub drop_unopened_ms: Millis,
}

/// Every alarm at `now`, longest-standing first.
pub async fn alarms<'e>(
    executor: impl Executor<'e, Database = Any>,
    now: Millis,
    thresholds: AlarmThresholds,
) -> Result<Vec<Alarm>, sqlx::Error> {
    // One statement: each branch yields (kind, locker, since, detail).
    let rows = sqlx::query(concat!(
        "SELECT 'door_left_open' AS kind, id AS locker_id, door_changed_at AS since, \
           COALESCE(agent_id, '') AS detail \
         FROM lockers WHERE door_state = 'open' AND door_changed_at <= $1 \
         UNION ALL \
         SELECT 'unlock_failed', locker_id, unlock_failed_at, CAST(id AS TEXT) \
         FROM items WHERE unlock_failed_at IS NOT NULL AND status IN (",
        in_locker!(),
        ") \
           AND locker_id IS NOT NULL \
         UNION ALL \
         SELECT 'unlock_failed', locker_id, failed_at, id \
         FROM commands WHERE failed_at >= $2 AND purpose = 'maintenance' \
         UNION ALL \
         SELECT 'agent_offline', l.id, a.status_at, a.id \
         FROM agents a JOIN lockers l ON l.agent_id = a.id WHERE a.online = 0 \
         UNION ALL \
         SELECT 'pickup_overdue', locker_id, collect_by, CAST(id AS TEXT) \
         FROM items WHERE status IN ('STORED', 'EXPIRED') AND collect_by < $3 \
           AND locker_id IS NOT NULL \
         UNION ALL \
         SELECT 'drop_never_opened', locker_id, created_at, CAST(id AS TEXT) \
         FROM items WHERE status = 'AWAITING_DROP' AND door_opened_at IS NULL \
           AND created_at <= $4 AND locker_id IS NOT NULL \
         UNION ALL \
         SELECT 'out_of_service', id, updated_at, '' \
         FROM lockers WHERE status = 'OUT_OF_SERVICE' \
         ORDER BY since, locker_id LIMIT 1000"
    ))
    .bind(now - thresholds.door_open_ms)
    .bind(now - 24 * 3_600_000)
    .bind(now)
    .bind(now - thresholds.drop_unopened_ms)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            Ok(Alarm {
                kind: AlarmKind::parse(&kind).ok_or_else(|| decode_error("kind", &kind))?,
                locker_id: row.try_get("locker_id")?,
                since: row.try_get("since")?,
                detail: row.try_get("detail")?,
            })
        })
        .collect()
}

/// One line of a locker's history.
#[derive(Debug, Clone)]
pub struct Happening {
    pub at: Millis,
    /// `item`, `door`, `unlock` or `audit`.
    pub source: String,
    /// The item, event, command or entry id.
    pub reference: String,
    /// The item's name, the door event, the unlock's purpose, the action.
    pub what: String,
    /// The item's status, the agent, the unlock's outcome, the actor.
    pub state: String,
    pub detail: String,
}

/// A locker's items, door events, unlocks and audit entries, newest first.
pub async fn history<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
    limit: i64,
    offset: i64,
) -> Result<Vec<Happening>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT created_at AS at, 'item' AS source, CAST(id AS TEXT) AS reference, \
           name AS what, status AS state, '' AS detail \
         FROM items WHERE locker_id = $1 \
         UNION ALL \
         SELECT at, 'door', id, kind, agent_id, COALESCE(command_id, '') \
         FROM door_events WHERE locker_id = $1 \
         UNION ALL \
         SELECT issued_at, 'unlock', id, purpose, \
           CASE WHEN failed_at IS NOT NULL THEN 'failed' WHEN ok = 1 THEN 'done' \
                WHEN ok = 0 THEN 'refused' ELSE 'pending' END, \
           COALESCE(reason, '') \
         FROM commands WHERE locker_id = $1 \
         UNION ALL \
         SELECT a.at, 'audit', CAST(a.id AS TEXT), a.action, COALESCE(u.email, 'system'), \
           COALESCE(a.reason, '') \
         FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id WHERE a.locker_id = $1 \
         ORDER BY at DESC, source, reference DESC LIMIT $2 OFFSET $3",
    )
    .bind(locker_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Happening {
                at: row.try_get("at")?,
                source: row.try_get("source")?,
                reference: row.try_get("reference")?,
                what: row.try_get("what")?,
                state: row.try_get("state")?,
                detail: row.try_get("detail")?,
            })
        })
        .collect()
}

/// Changes whenever anything the console shows changes: what a process
/// that cannot hear database notices polls (SQLite only: it reads `rowid`s,
/// which cost nothing to find the largest of). Every transition of an item
/// or a locker writes an audit entry and every door event a row; agents and
/// lockers are few enough to scan.
pub async fn fingerprint<'e>(
    executor: impl Executor<'e, Database = Any>,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) || ':' || COALESCE(MAX(updated_at), 0) || ':' || \
                   COALESCE(SUM(CASE door_state WHEN 'open' THEN id ELSE 0 END), 0) FROM lockers) \
           || ':' || (SELECT COALESCE(MAX(rowid), 0) FROM audit_log) \
           || ':' || (SELECT COALESCE(MAX(rowid), 0) FROM door_events) \
           || ':' || (SELECT COALESCE(MAX(rowid), 0) FROM items) \
           || ':' || (SELECT COALESCE(SUM(online), 0) || ':' || COALESCE(MAX(status_at), 0) \
                      FROM agents)",
    )
    .fetch_one(executor)
    .await
}
