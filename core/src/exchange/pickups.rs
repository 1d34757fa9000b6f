//! At the locker: the receiver's pickup PIN or QR code, entered there and
//! checked here while the site is online (released through the door like a
//! collect); and a pickup the agent let through on its own while the site
//! was offline, applied once when it reports it.

use locker_protocol::{CLOCK_ALLOWANCE_MS, OfflineCollection, PickupMethod, signing};

use super::notices::{self, Actor};
use super::release::Spent;
use super::{Collected, Error, Exchange, Result, once_more, statement};
use crate::clock::Millis;
use crate::domain::{Item, ItemMove};
use crate::jobs::Message;
use crate::store::items::{ITEM_COLUMNS, from_row};
use crate::store::pickups::{self, RequestKind};
use crate::store::{audit, codes, doors, lockers};

/// What a code entered at a locker did.
#[derive(Debug)]
pub enum Entered {
    /// Right: the door is being unlocked for the receiver.
    Released(Box<Collected>),
    /// Not the pass of the item waiting there (or none waits).
    WrongCode,
    /// Too many wrong codes for that item: nothing is checked until then.
    CoolingDown,
}

/// What an offline collection report did.
#[derive(Debug)]
pub enum OfflineOutcome {
    /// The item is `COLLECTED`, its locker free, its sender told.
    Collected(Box<Item>),
    /// The item was no longer the locker's to give (cleared, returned, or
    /// past its deadline when the door was opened): recorded for an admin.
    Refused,
    /// A copy of a report already applied.
    Duplicate,
}

impl Exchange {
    /// A pickup PIN or QR code entered at `locker_id`. Wrong ones count with
    /// the one-time codes': `OTP_FAILURE_CAP` wrong in a row start the same
    /// cool-down, during which neither is checked.
    pub async fn enter_pass(
        &self,
        locker_id: i64,
        method: PickupMethod,
        code: &str,
        trace_id: &str,
    ) -> Result<Entered> {
        let pool = self.db.pool();
        let now = self.now();
        let Some(pass) = pickups::for_locker(pool, locker_id).await? else {
            return Ok(Entered::WrongCode);
        };
        if pass.locked_until.is_some_and(|until| until > now) {
            return Ok(Entered::CoolingDown);
        }
        let hash = match method {
            PickupMethod::Pin => &pass.pin_hash,
            PickupMethod::Qr => &pass.qr_hash,
        };
        if !signing::verify(pass.salt.as_bytes(), code.as_bytes(), hash) {
            let rules = &self.rules;
            let until = now + rules.otp_cooldown.as_millis() as Millis;
            if codes::record_wrong(pool, pass.item_id, rules.otp_failure_cap, until).await? {
                tracing::warn!(
                    item_id = pass.item_id,
                    "too many wrong codes; item cooling down"
                );
            }
            return Ok(Entered::WrongCode);
        }
        let door_opening = doors::agent_of(pool, locker_id).await?.flatten().is_some();
        let released = once_more(|| {
            self.release(locker_id, pass.item_id, Spent::Pass, door_opening, trace_id)
        })
        .await;
        match released {
            Ok(collected) => Ok(Entered::Released(Box::new(collected))),
            // Collected another way in the meantime.
            Err(Error::InvalidCode) => Ok(Entered::WrongCode),
            Err(error) => Err(error),
        }
    }

    /// An agent's report of a pickup it let through offline, applied once
    /// by its id: the item is `COLLECTED` (from `STORED`, from `RELEASING`
    /// whose unlock never reached the site, or from `EXPIRED` when the door
    /// opened before the deadline).
    pub async fn collected_offline(
        &self,
        agent_id: &str,
        report: &OfflineCollection,
        trace_id: &str,
    ) -> Result<OfflineOutcome> {
        once_more(|| self.try_collected_offline(agent_id, report, trace_id)).await
    }

    async fn try_collected_offline(
        &self,
        agent_id: &str,
        report: &OfflineCollection,
        trace_id: &str,
    ) -> Result<OfflineOutcome> {
        let now = self.now();
        let at = report.at.min(now);
        let mut tx = self.begin().await?;
        // The locker before its item, as a door closing on it takes them.
        lockers::hold(&mut *tx, self.db.backend(), report.locker_id).await?;
        let kind = RequestKind::Collection;
        if !pickups::record(
            &mut *tx,
            agent_id,
            &report.id,
            kind,
            report.locker_id,
            None,
            now,
        )
        .await?
        {
            return Ok(OfflineOutcome::Duplicate);
        }
        let row = sqlx::query(statement!(
            "UPDATE items SET status = {next}, collected_at = $3, updated_at = $4, \
               otp_hash = NULL, otp_expires_at = NULL \
             WHERE id = $1 AND locker_id = $2 AND {leaves} \
               AND collect_by IS NOT NULL AND $3 <= collect_by + $5 \
             RETURNING {ITEM_COLUMNS}",
            next = ItemMove::CollectedOffline.sql_next(),
            leaves = ItemMove::CollectedOffline.sql_leaves(),
        ))
        .bind(report.item_id)
        .bind(report.locker_id)
        .bind(at)
        .bind(now)
        .bind(CLOCK_ALLOWANCE_MS)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match row.as_ref().map(from_row).transpose()? {
            Some(item) => {
                notices::vacate(
                    &mut tx,
                    &item,
                    "item.collected_offline",
                    Actor::default(),
                    trace_id,
                    now,
                    |item, location| Message::ItemCollected { item, location },
                )
                .await?;
                notices::regrant(&mut tx, &item, trace_id, now).await?;
                OfflineOutcome::Collected(Box::new(item))
            }
            None => {
                tracing::warn!(
                    %agent_id,
                    locker_id = report.locker_id,
                    item_id = report.item_id,
                    "offline pickup of an item that was no longer the locker's to give"
                );
                let entry = audit::Entry {
                    at: now,
                    actor_id: None,
                    action: "item.offline_pickup_refused",
                    subject: format!("item:{}", report.item_id),
                    detail: format!(
                        "locker {} opened offline by {} at {}",
                        report.locker_id,
                        report.method.as_str(),
                        crate::clock::human(report.at)
                    ),
                    reason: None,
                };
                tx.audit(entry);
                OfflineOutcome::Refused
            }
        };
        tx.commit(&self.relay).await?;
        Ok(outcome)
    }
}
