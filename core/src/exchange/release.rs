//! An item released to its receiver: the right code or pickup pass spent,
//! once, and the item led out through its door (`RELEASING`, collected when
//! the door closes again) or, at a locker without an agent, collected at
//! once.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::codes::Collected;
use super::notices::{self, item_detail, item_entry};
use super::{Error, Exchange, Result, statement};
use crate::clock::Millis;
use crate::domain::{ItemMove, ItemStatus};
use crate::jobs::{Job, UnlockJob, UnlockPurpose};
use crate::store::items::{ITEM_COLUMNS, from_row};
use crate::store::outbox;

impl Exchange {
    /// The receiver's right code (or pickup pass) is spent and the item
    /// leaves through its door when `door_opening` (the locker has an agent),
    /// or is collected at once.
    pub(super) async fn release(
        &self,
        locker_id: i64,
        item_id: i64,
        spent: Spent<'_>,
        door_opening: bool,
        trace_id: &str,
    ) -> Result<Collected> {
        let now = self.now();
        if door_opening && self.db.backend().chains_writes() {
            return self
                .release_at_once(locker_id, item_id, spent, trace_id, now)
                .await;
        }
        let mut tx = self.begin().await?;
        // Conditional on the code just checked (or on the item still being
        // stored): of two collects, one wins.
        let row = match spent {
            Spent::Code(hash) => spend(&mut tx, item_id, hash, door_opening, now).await?,
            Spent::Pass if door_opening => spend_pass(&mut tx, item_id, now).await?,
            Spent::Pass => None,
        };
        let Some(row) = row else {
            return Err(Error::InvalidCode);
        };
        let item = from_row(&row)?;
        if door_opening {
            // The pass's revocation goes with the unlock, after it: the
            // person at the door waits on the unlock, not on the grant.
            let then_grant = row.try_get::<i64, _>("passes")? > 0;
            notices::unlock(
                &mut tx,
                locker_id,
                Some(item.id),
                UnlockPurpose::Collect,
                then_grant,
                trace_id,
                now,
            )
            .await?;
            let action = if item.status == ItemStatus::Returning {
                RETURNING_ACTION
            } else {
                RELEASING_ACTION
            };
            tx.audit(item_entry(now, None, action, &item));
        } else {
            notices::leave(&mut tx, &item, trace_id, now).await?;
            notices::regrant(&mut tx, &item, trace_id, now).await?;
        }
        tx.commit(&self.relay).await?;
        Ok(Collected { item, door_opening })
    }

    /// [`Exchange::release`] through the item's door where writes chain: the
    /// spend, the unlock (carrying the pass's revocation when the item has
    /// one) and the audit row in one statement, which commits on its own.
    async fn release_at_once(
        &self,
        locker_id: i64,
        item_id: i64,
        spent: Spent<'_>,
        trace_id: &str,
        now: Millis,
    ) -> Result<Collected> {
        let unlock = |then_grant| {
            Job::Unlock(UnlockJob {
                locker_id,
                item_id: Some(item_id),
                purpose: UnlockPurpose::Collect,
                then_grant,
            })
        };
        let (with_grant, without) = (unlock(true), unlock(false));
        let sql = match spent {
            Spent::Code(_) => statement!(
                "{}",
                released_at_once(&leave_by_door(ItemMove::CodeSpentAtDoor, "$2", Some("$8")))
            ),
            Spent::Pass => statement!(
                "{}",
                released_at_once(&leave_by_door(ItemMove::PassAtDoor, "$2", None))
            ),
        };
        let mut query = sqlx::query(sql)
            .bind(item_id)
            .bind(now)
            .bind(with_grant.kind().as_str())
            .bind(serde_json::to_string(&with_grant).expect("jobs serialise"))
            .bind(serde_json::to_string(&without).expect("jobs serialise"))
            .bind(trace_id.to_owned())
            .bind(item_detail(Some(locker_id)));
        if let Spent::Code(hash) = spent {
            query = query.bind(hash.to_owned());
        }
        let row = query
            .fetch_optional(self.db.pool())
            .await
            .map_err(Error::unknown_if_lost)?;
        let Some(row) = row else {
            return Err(Error::InvalidCode);
        };
        let item = from_row(&row)?;
        self.relay.committed(vec![outbox::Pending {
            id: row.try_get("job_id")?,
            kind: with_grant.kind().as_str().to_owned(),
            payload: row.try_get("job_payload")?,
            trace_id: trace_id.to_owned(),
            created_at: now,
        }]);
        Ok(Collected {
            item,
            door_opening: true,
        })
    }
}

/// An item leaving through its door, as one statement (see
/// [`leave_by_door`], bound at `$1` and `$2`, the code's hash at `$8`): its
/// unlock job (kind `$3`, payload `$4` when the item has a pass, else `$5`,
/// trace `$6`) and audit row (detail `$7`) written with it. The item's row,
/// the job's id and payload; none when it was not spent.
fn released_at_once(spend: &str) -> String {
    format!(
        "WITH spent AS ({spend}), \
         queued AS (INSERT INTO outbox (kind, payload, trace_id, created_at) \
           SELECT $3, CASE WHEN passes > 0 THEN $4 ELSE $5 END, $6, $2 FROM spent \
           RETURNING id, payload), \
         audited AS (INSERT INTO audit_log \
             (at, actor_id, action, subject, detail, reason, locker_id, item_id) \
           SELECT $2, NULL, CASE WHEN status = '{returning}' THEN '{returning_action}' \
             ELSE '{releasing_action}' END, 'item:' || CAST(id AS TEXT), $7, NULL, locker_id, id \
           FROM spent) \
         SELECT spent.*, queued.id AS job_id, queued.payload AS job_payload \
         FROM spent CROSS JOIN queued",
        returning = ItemStatus::Returning.as_str(),
        returning_action = RETURNING_ACTION,
        releasing_action = RELEASING_ACTION,
    )
}

/// The audit actions of an item leaving through its door.
const RETURNING_ACTION: &str = "item.returning";
const RELEASING_ACTION: &str = "item.releasing";

/// The statement that releases item `$1` through its door at `now` by
/// `by` (a code, when `code` binds its hash, or the pickup pass), any
/// one-time code void, conditional on the item still being stored (and on
/// the code): of two collects, one wins. Returns the item's row and its
/// [`PASSES`].
fn leave_by_door(by: ItemMove, now: &str, code: Option<&str>) -> String {
    let code = code.map_or(String::new(), |hash| format!(" AND otp_hash = {hash}"));
    format!(
        "UPDATE items SET status = {next}, updated_at = {now}, \
           otp_hash = NULL, otp_expires_at = NULL, otp_failures = 0 \
         WHERE id = $1 AND {leaves}{code} RETURNING {ITEM_COLUMNS}, {passes}",
        next = by.sql_next(),
        leaves = by.sql_leaves(),
        passes = PASSES,
    )
}

/// What opened the locker: a one-time code (by its hash), or the pickup
/// pass checked at the locker.
#[derive(Debug, Clone, Copy)]
pub(super) enum Spent<'a> {
    Code(&'a str),
    Pass,
}

/// Beside an item released through its door, read in the same statement:
/// whether it has a pickup pass (`passes`, 0 or 1), whose grant is then
/// revoked.
const PASSES: &str = "(SELECT COUNT(*) FROM pickup_passes p WHERE p.item_id = items.id) AS passes";

/// The receiver's pickup PIN or QR code, right, at the locker: the item is
/// released through its door, any one-time code void. The item's row (and
/// its [`PASSES`]); `None` when it is no longer stored (a collect got there
/// first).
async fn spend_pass(
    conn: &mut AnyConnection,
    item_id: i64,
    now: Millis,
) -> Result<Option<AnyRow>, sqlx::Error> {
    sqlx::query(statement!(
        "{}",
        leave_by_door(ItemMove::PassAtDoor, "$2", None)
    ))
    .bind(item_id)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// The right code spends it, once: the item is released through its door
/// (`RELEASING`, its row read with its [`PASSES`]) or, without a door to
/// drive, `COLLECTED`. `None` when another collect with the same code got
/// there first.
async fn spend(
    conn: &mut AnyConnection,
    item_id: i64,
    code_hash: &str,
    at_door: bool,
    now: Millis,
) -> Result<Option<AnyRow>, sqlx::Error> {
    let sql = if at_door {
        statement!(
            "{}",
            leave_by_door(ItemMove::CodeSpentAtDoor, "$3", Some("$2"))
        )
    } else {
        statement!(
            "UPDATE items SET status = {next}, updated_at = $3, \
               collected_at = CASE WHEN {next} IN ('{collected}', '{returned}') \
                 THEN $3 ELSE collected_at END, \
               otp_hash = NULL, otp_expires_at = NULL, otp_failures = 0 \
             WHERE id = $1 AND {leaves} AND otp_hash = $2 RETURNING {ITEM_COLUMNS}",
            next = ItemMove::CodeSpentWithoutDoor.sql_next(),
            leaves = ItemMove::CodeSpentWithoutDoor.sql_leaves(),
            collected = ItemStatus::Collected.as_str(),
            returned = ItemStatus::Returned.as_str(),
        )
    };
    sqlx::query(sql)
        .bind(item_id)
        .bind(code_hash.to_owned())
        .bind(now)
        .fetch_optional(conn)
        .await
}
