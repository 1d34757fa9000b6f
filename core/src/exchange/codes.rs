//! The receiver, who has no account, asks for a code at the locker and
//! collects with it. Asking answers alike whoever asks; a code is tried at
//! most `otp_max_attempts` times, each try counted before it is checked, and
//! spent once: of two collects with one code, one wins.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::notices::{self, item_detail, item_entry};
use super::{Error, Exchange, Result, once_more, statement};
use crate::clock::Millis;
use crate::domain::{Contact, Item, ItemMove, ItemStatus};
use crate::jobs::{Job, OtpJob, UnlockJob, UnlockPurpose};
use crate::store::items::{self, ITEM_COLUMNS, from_row};
use crate::store::{codes, outbox, rate_limits};

/// A collect that worked.
#[derive(Debug)]
pub struct Collected {
    pub item: Item,
    /// The door is being unlocked (`RELEASING`): the item is `COLLECTED` once
    /// it has closed again. False at a locker without an agent: collected.
    pub door_opening: bool,
}

impl Exchange {
    /// Queues a new code for the receiver when `contact` is the receiver of
    /// the item stored in the locker; otherwise does nothing, and says
    /// nothing different.
    ///
    /// Nothing is issued (and nothing said) while the item cools down after
    /// too many wrong codes, nor beyond `OTP_RATE_PER_LOCKER` codes for a
    /// locker in a window: each code costs a message.
    pub async fn request_code(
        &self,
        locker_id: i64,
        contact: &Contact,
        trace_id: &str,
    ) -> Result<()> {
        let pool = self.db.pool();
        let now = self.now();
        if self.db.backend().chains_writes() {
            return self
                .request_code_at_once(locker_id, contact, trace_id, now)
                .await;
        }
        // A locker holds one stored or expired item: its cool-down is the
        // locker's, read with it.
        let Some((item_id, locked_until)) =
            items::waiting_for(pool, locker_id, contact.as_str()).await?
        else {
            return Ok(());
        };
        if locked_until.is_some_and(|until| until > now) {
            tracing::info!(item_id, "cooling down; no code issued");
            return Ok(());
        }
        let window = self.rules.limits.window.as_millis() as Millis;
        let key = format!("otp:issued:locker:{locker_id}");
        let issued = rate_limits::hit(pool, &key, rate_limits::window_start(now, window)).await?;
        if issued > self.rules.limits.per_locker {
            tracing::warn!(item_id, "code budget of the locker spent; no code issued");
            return Ok(());
        }
        let job = Job::Otp(OtpJob {
            item_id,
            contact: contact.as_str().to_owned(),
        });
        let written = outbox::enqueue(pool, &job, trace_id, now).await?;
        self.relay.committed(vec![written]);
        Ok(())
    }

    /// Collects the item in `locker_id` with `code`.
    pub async fn collect(&self, locker_id: i64, code: String, trace_id: &str) -> Result<Collected> {
        let rules = &self.rules;
        let pool = self.db.pool();
        let now = self.now();
        let Some(attempt) =
            codes::take_attempt(pool, locker_id, rules.otp_max_attempts, now).await?
        else {
            // No usable code (none, spent, expired, the item cooling down):
            // the same work and the same answer as a wrong one, so nobody
            // learns whether a code was issued, nor to whom.
            self.hasher.verify(code.into(), None).await?;
            return Err(Error::InvalidCode);
        };
        let codes::Attempt {
            item_id,
            hash,
            agent_id,
        } = attempt;
        let matches = match self.hasher.verify(code.into(), Some(hash.clone())).await {
            // Nothing was checked: the try does not count against the code.
            Err(error) if crate::hashing::is_unavailable(&error) => {
                codes::give_back_attempt(pool, item_id, &hash).await?;
                return Err(error.into());
            }
            verified => verified?,
        };
        if !matches {
            let until = now + rules.otp_cooldown.as_millis() as Millis;
            if codes::record_wrong(pool, item_id, rules.otp_failure_cap, until).await? {
                tracing::warn!(item_id, "too many wrong codes; item cooling down");
            }
            return Err(Error::InvalidCode);
        }

        // The code is right: spending it is one transaction, tried once
        // more if its connection is lost before it commits.
        let door_opening = agent_id.is_some();
        once_more(|| {
            self.release(
                locker_id,
                item_id,
                Spent::Code(&hash),
                door_opening,
                trace_id,
            )
        })
        .await
    }

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
            notices::leave(&mut tx, &item, None, trace_id, now).await?;
            notices::regrant(&mut tx, &item, trace_id, now).await?;
        }
        tx.commit(&self.relay).await?;
        Ok(Collected { item, door_opening })
    }
}

impl Exchange {
    /// [`Exchange::request_code`] where writes chain: the item looked for,
    /// the locker's code budget counted (when the item is not cooling
    /// down) and the code job queued (when the budget allows) in one
    /// statement, which commits on its own.
    async fn request_code_at_once(
        &self,
        locker_id: i64,
        contact: &Contact,
        trace_id: &str,
        now: Millis,
    ) -> Result<()> {
        let window = self.rules.limits.window.as_millis() as Millis;
        let job = Job::Otp(OtpJob {
            item_id: outbox::LEFT_TO_SQL,
            contact: contact.as_str().to_owned(),
        });
        let job = outbox::Beside::new(&job, trace_id, now);
        let query = items::bind_waiting_for(
            sqlx::query(statement!(
                "WITH waiting AS ({waiting}), \
                 hit AS (INSERT INTO rate_limits (key, window_start, hits) \
                   SELECT $6, $7, 1 FROM waiting \
                   WHERE otp_locked_until IS NULL OR otp_locked_until <= $5 \
                   {added} RETURNING hits), \
                 {queued} \
                 SELECT waiting.id, waiting.otp_locked_until, hit.hits, \
                   queued.id AS job_id, queued.payload AS job_payload \
                 FROM waiting LEFT JOIN hit ON TRUE LEFT JOIN queued ON TRUE",
                waiting = items::WAITING_FOR,
                added = rate_limits::ADDED,
                queued = outbox::Beside::queued(
                    "waiting CROSS JOIN hit WHERE hit.hits <= $8",
                    "waiting.id",
                    9
                ),
            )),
            locker_id,
            contact.as_str(),
        )
        .bind(now)
        .bind(format!("otp:issued:locker:{locker_id}"))
        .bind(rate_limits::window_start(now, window))
        .bind(self.rules.limits.per_locker);
        let row = job
            .bind(query)
            .fetch_optional(self.db.pool())
            .await
            .map_err(Error::unknown_if_lost)?;
        let Some(row) = row else {
            return Ok(());
        };
        let item_id: i64 = row.try_get("id")?;
        if row.try_get::<Option<i64>, _>("hits")?.is_none() {
            tracing::info!(item_id, "cooling down; no code issued");
        } else if row.try_get::<Option<i64>, _>("job_id")?.is_none() {
            tracing::warn!(item_id, "code budget of the locker spent; no code issued");
        } else {
            self.relay.committed(vec![job.written(&row)?]);
        }
        Ok(())
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
