//! The audit trail: who changed what, when.

use sqlx::{Any, Executor};

use crate::clock::Millis;

pub struct Entry<'a> {
    pub at: Millis,
    pub actor_id: Option<i64>,
    pub action: &'a str,
    /// What was acted on, e.g. `locker:12`.
    pub subject: String,
    pub detail: String,
}

pub async fn record<'e>(
    executor: impl Executor<'e, Database = Any>,
    entry: Entry<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(entry.at)
    .bind(entry.actor_id)
    .bind(entry.action.to_owned())
    .bind(entry.subject)
    .bind(entry.detail)
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
