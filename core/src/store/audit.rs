//! The audit trail: who changed what, when, and why.

use serde::Serialize;
use sqlx::any::AnyArguments;
use sqlx::any::AnyRow;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Executor, Row};
use utoipa::ToSchema;

use crate::clock::{Millis, rfc3339};

pub struct Entry<'a> {
    pub at: Millis,
    pub actor_id: Option<i64>,
    pub action: &'a str,
    /// What was acted on, e.g. `locker:12`.
    pub subject: String,
    pub detail: String,
    /// Why, in the admin's words, when an admin acted.
    pub reason: Option<String>,
}

/// Records `entry`. The locker and item its subject names are kept beside it
/// (an item's locker looked up), so the log can be searched by either.
pub async fn record<'e>(
    executor: impl Executor<'e, Database = Any>,
    entry: Entry<'_>,
) -> Result<(), sqlx::Error> {
    record_all(executor, vec![entry.into()]).await
}

/// An entry held to be written later (with its transaction's commit).
pub(crate) struct Held {
    at: Millis,
    actor_id: Option<i64>,
    action: String,
    subject: String,
    detail: String,
    reason: Option<String>,
}

impl From<Entry<'_>> for Held {
    fn from(entry: Entry<'_>) -> Self {
        Self {
            at: entry.at,
            actor_id: entry.actor_id,
            action: entry.action.to_owned(),
            subject: entry.subject,
            detail: entry.detail,
            reason: entry.reason,
        }
    }
}

/// Parameters a row takes in [`insert_sql`].
const PARAMS: usize = 8;

/// `INSERT INTO audit_log …` for `rows`, their parameters numbered from
/// `$first` on, bound by [`bind_all`].
pub(crate) fn insert_sql(rows: &[Held], first: usize) -> String {
    let values = (0..rows.len())
        .map(|n| {
            let p = |k: usize| first + n * PARAMS + k;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, COALESCE(${}, (SELECT locker_id FROM items WHERE id = ${})), ${})",
                p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(7)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO audit_log (at, actor_id, action, subject, detail, reason, locker_id, item_id) \
         VALUES {values}"
    )
}

/// Binds the parameters of [`insert_sql`]'s `rows`, in order, after those
/// `query` has.
pub(crate) fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    rows: Vec<Held>,
) -> Query<'q, Any, AnyArguments> {
    for row in rows {
        let id_after = |prefix: &str| {
            row.subject
                .strip_prefix(prefix)
                .and_then(|id| id.parse::<i64>().ok())
        };
        let locker_id = id_after("locker:");
        let item_id = id_after("item:");
        query = query
            .bind(row.at)
            .bind(row.actor_id)
            .bind(row.action)
            .bind(row.subject)
            .bind(row.detail)
            .bind(row.reason)
            .bind(locker_id)
            .bind(item_id);
    }
    query
}

/// Records `rows` in one statement.
pub(crate) async fn record_all<'e>(
    executor: impl Executor<'e, Database = Any>,
    rows: Vec<Held>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = insert_sql(&rows, 1);
    bind_all(sqlx::query(AssertSqlSafe(sql)), rows)
        .execute(executor)
        .await?;
    Ok(())
}

/// The actions recorded for one subject, oldest first.
pub async fn actions_for<'e>(
    executor: impl Executor<'e, Database = Any>,
    subject: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT action FROM audit_log WHERE subject = $1 ORDER BY id")
        .bind(subject.to_owned())
        .fetch_all(executor)
        .await
}

/// What to look for in the log; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub locker_id: Option<i64>,
    pub item_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub actor_email: Option<String>,
    /// An action (`locker.unlocked`) or a family of them (`locker`).
    pub action: Option<String>,
    /// From this time on (inclusive).
    pub since: Option<Millis>,
    /// Before this time (exclusive).
    pub until: Option<Millis>,
    /// Entries older than this one: the next page.
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339
    pub at: String,
    /// The user who acted; `null` for the system (agents, deadlines).
    pub actor_id: Option<i64>,
    pub actor_email: Option<String>,
    pub action: String,
    /// What was acted on, e.g. `locker:12` or `item:7`.
    pub subject: String,
    pub locker_id: Option<i64>,
    pub item_id: Option<i64>,
    pub detail: String,
    /// The admin's reason, where one was given.
    pub reason: Option<String>,
}

/// Entries matching `search`, newest first, at most `search.limit`.
pub async fn search<'e>(
    executor: impl Executor<'e, Database = Any>,
    search: &Search,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let family = search.action.as_ref().map(|a| format!("{a}.%"));
    let rows = sqlx::query(
        "SELECT a.id, a.at, a.actor_id, u.email AS actor_email, a.action, a.subject, \
           a.locker_id, a.item_id, a.detail, a.reason \
         FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id \
         WHERE ($1 IS NULL OR a.locker_id = $1) \
           AND ($2 IS NULL OR a.item_id = $2) \
           AND ($3 IS NULL OR a.actor_id = $3) \
           AND ($4 IS NULL OR a.action = $4 OR a.action LIKE $5) \
           AND ($6 IS NULL OR a.at >= $6) \
           AND ($7 IS NULL OR a.at < $7) \
           AND ($8 IS NULL OR a.id < $8) \
           AND ($10 IS NULL OR u.email = $10) \
         ORDER BY a.id DESC LIMIT $9",
    )
    .bind(search.locker_id)
    .bind(search.item_id)
    .bind(search.actor_id)
    .bind(search.action.clone())
    .bind(family)
    .bind(search.since)
    .bind(search.until)
    .bind(search.before_id)
    .bind(search.limit)
    .bind(search.actor_email.as_deref().map(str::to_lowercase))
    .fetch_all(executor)
    .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: rfc3339(row.try_get("at")?),
        actor_id: row.try_get("actor_id")?,
        actor_email: row.try_get("actor_email")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        locker_id: row.try_get("locker_id")?,
        item_id: row.try_get("item_id")?,
        detail: row.try_get("detail")?,
        reason: row.try_get("reason")?,
    })
}
