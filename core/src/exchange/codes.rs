//! The receiver, who has no account, asks for a code at the locker and
//! collects with it. Asking answers alike whoever asks; a code is tried at
//! most `otp_max_attempts` times, each try counted before it is checked, and
//! spent once: of two collects with one code, one wins.

use sqlx::AnyConnection;

use super::notices::{self, item_entry};
use super::{Error, Exchange, Result, once_more, statement};
use crate::clock::Millis;
use crate::domain::{Contact, Item, ItemMove, ItemStatus};
use crate::jobs::{Job, OtpJob, UnlockPurpose};
use crate::store::items::{self, ITEM_COLUMNS, from_row};
use crate::store::{audit, codes, outbox, pickups, rate_limits};

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
        let mut tx = self.begin().await?;
        // Conditional on the code just checked (or on the item still being
        // stored): of two collects, one wins.
        let item = match spent {
            Spent::Code(hash) => spend(&mut tx, item_id, hash, door_opening, now).await?,
            Spent::Pass if door_opening => spend_pass(&mut tx, item_id, now).await?,
            Spent::Pass => None,
        };
        let Some(item) = item else {
            return Err(Error::InvalidCode);
        };
        if door_opening {
            // The pass's revocation goes with the unlock, after it: the
            // person at the door waits on the unlock, not on the grant.
            let then_grant = pickups::has_pass(&mut tx, item.id).await?;
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
                "item.returning"
            } else {
                "item.releasing"
            };
            audit::record(&mut *tx, item_entry(now, None, action, &item)).await?;
        } else {
            notices::leave(&mut tx, &item, None, trace_id, now).await?;
            notices::regrant(&mut tx, &item, trace_id, now).await?;
        }
        tx.commit(&self.relay).await.map_err(Error::Commit)?;
        Ok(Collected { item, door_opening })
    }
}

/// What opened the locker: a one-time code (by its hash), or the pickup
/// pass checked at the locker.
#[derive(Debug, Clone, Copy)]
pub(super) enum Spent<'a> {
    Code(&'a str),
    Pass,
}

/// The receiver's pickup PIN or QR code, right, at the locker: the item is
/// released through its door, any one-time code void. `None` when it is no
/// longer stored (a collect got there first).
async fn spend_pass(
    conn: &mut AnyConnection,
    item_id: i64,
    now: Millis,
) -> Result<Option<Item>, sqlx::Error> {
    let row = sqlx::query(statement!(
        "UPDATE items SET status = {next}, updated_at = $2, \
           otp_hash = NULL, otp_expires_at = NULL, otp_failures = 0 \
         WHERE id = $1 AND {leaves} RETURNING {ITEM_COLUMNS}",
        next = ItemMove::PassAtDoor.sql_next(),
        leaves = ItemMove::PassAtDoor.sql_leaves(),
    ))
    .bind(item_id)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The right code spends it, once: the item is released through its door
/// (`RELEASING`) or, without a door to drive, `COLLECTED`. `None` when
/// another collect with the same code got there first.
async fn spend(
    conn: &mut AnyConnection,
    item_id: i64,
    code_hash: &str,
    at_door: bool,
    now: Millis,
) -> Result<Option<Item>, sqlx::Error> {
    let sql = if at_door {
        statement!(
            "UPDATE items SET status = {next}, updated_at = $3, \
               otp_hash = NULL, otp_expires_at = NULL, otp_failures = 0 \
             WHERE id = $1 AND {leaves} AND otp_hash = $2 RETURNING {ITEM_COLUMNS}",
            next = ItemMove::CodeSpentAtDoor.sql_next(),
            leaves = ItemMove::CodeSpentAtDoor.sql_leaves(),
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
    let row = sqlx::query(sql)
        .bind(item_id)
        .bind(code_hash.to_owned())
        .bind(now)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}
