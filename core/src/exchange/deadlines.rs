//! Deadlines: a drop whose door never opened in its window is cancelled (the
//! locker is free again); a receiver is reminded before the pickup deadline,
//! which the sender may extend a few times; an item not collected by it
//! expires (it stays in its locker for an admin to clear), and sender and
//! receiver are told. Each is one conditional update, so any number of
//! workers may sweep, and each happens once.

use super::notices::{self, item_entry};
use sqlx::Row;

use super::{Error, Exchange, Result, once_more, statement};
use crate::clock::{Millis, human};
use crate::domain::{Item, ItemMove, ItemStatus};
use crate::jobs::Message;
use crate::store::items::{self, ITEM_COLUMNS, from_row, from_rows};

/// Jobs written by a sweep carry this as their trace id.
const TRACE: &str = "sweeper";

impl Exchange {
    /// Drops whose door never opened before `drop_deadline`: `CANCELLED`.
    pub async fn cancel_unopened_drops(&self) -> Result<Vec<Item>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        // Their lockers before them, as a door closing on one takes them;
        // none held, none is due.
        if self.db.backend().locks_rows() {
            let held: Vec<i64> = sqlx::query_scalar(statement!(
                "SELECT id FROM lockers WHERE id IN (SELECT locker_id FROM items WHERE {}) \
                 ORDER BY id FOR UPDATE",
                unopened_past_deadline(),
            ))
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if held.is_empty() {
                return Ok(Vec::new());
            }
        }
        let cancelled: Vec<Item> = sqlx::query(statement!(
            "UPDATE items SET status = {}, updated_at = $1 WHERE {} RETURNING {ITEM_COLUMNS}",
            ItemMove::CancelUnopened.sql_next(),
            unopened_past_deadline(),
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .and_then(|rows| from_rows(&rows))?;
        for item in &cancelled {
            notices::vacate(
                &mut tx,
                item,
                "item.cancelled",
                notices::Actor::default(),
                TRACE,
                now,
                |item, location| Message::DropCancelled { item, location },
            )
            .await?;
        }
        tx.commit(&self.relay).await?;
        Ok(cancelled)
    }

    /// Items not collected before `collect_by`: `EXPIRED`, their code void.
    pub async fn expire_uncollected(&self) -> Result<Vec<Item>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let expired: Vec<Item> = sqlx::query(statement!(
            "UPDATE items SET status = {}, updated_at = $1, otp_hash = NULL, otp_expires_at = NULL \
             WHERE {} AND collect_by < $1 RETURNING {ITEM_COLUMNS}",
            ItemMove::Expire.sql_next(),
            ItemMove::Expire.sql_leaves(),
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .and_then(|rows| from_rows(&rows))?;
        for item in &expired {
            notices::tell_sender(&mut tx, item, TRACE, now, |item, location| {
                Message::ItemExpired { item, location }
            })
            .await?;
            notices::tell_receiver(&mut tx, item, TRACE, now, |item, location, _| {
                Message::PickupMissed { item, location }
            })
            .await?;
            tx.audit(item_entry(now, None, "item.expired", item));
            notices::regrant(&mut tx, item, TRACE, now).await?;
        }
        tx.commit(&self.relay).await?;
        Ok(expired)
    }

    /// Stored items whose pickup deadline is `reminder_before` away or
    /// nearer: the receiver is reminded, once per deadline. An item stored
    /// after that point already heard its deadline when it was stored.
    pub async fn remind_receivers(&self) -> Result<Vec<Item>> {
        let now = self.now();
        let before = self.rules.reminder_before.as_millis() as Millis;
        let mut tx = self.begin().await?;
        let rows = sqlx::query(statement!(
            "UPDATE items SET reminded_at = $1 \
             WHERE status = '{}' AND reminded_at IS NULL AND collect_by > $1 \
               AND collect_by <= $2 AND stored_at < collect_by - $3 \
             RETURNING {ITEM_COLUMNS}",
            ItemStatus::Stored.as_str(),
        ))
        .bind(now)
        .bind(now + before)
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        let due = from_rows(&rows)?;
        for (item, row) in due.iter().zip(&rows) {
            let until = human(row.try_get("collect_by")?);
            notices::tell_receiver(&mut tx, item, TRACE, now, |item, location, locker| {
                Message::PickupReminder {
                    item,
                    location,
                    locker,
                    until: until.clone(),
                }
            })
            .await?;
            tx.audit(item_entry(now, None, "item.reminded", item));
        }
        tx.commit(&self.relay).await?;
        Ok(due)
    }

    /// The sender gives the receiver `extension` more time, while the item
    /// waits in its locker and fewer than `max_extensions` were given. The
    /// receiver is told the new deadline, and reminded again before it.
    pub async fn extend_pickup(
        &self,
        sender_id: i64,
        item_id: i64,
        trace_id: &str,
    ) -> Result<Item> {
        once_more(|| self.try_extend_pickup(sender_id, item_id, trace_id)).await
    }

    async fn try_extend_pickup(
        &self,
        sender_id: i64,
        item_id: i64,
        trace_id: &str,
    ) -> Result<Item> {
        let now = self.now();
        let rules = &self.rules;
        let mut tx = self.begin().await?;
        let row = sqlx::query(statement!(
            "UPDATE items SET collect_by = collect_by + $3, extensions = extensions + 1, \
               reminded_at = NULL, updated_at = $4 \
             WHERE id = $1 AND sender_id = $2 AND status = '{}' AND extensions < $5 \
             RETURNING {ITEM_COLUMNS}",
            ItemStatus::Stored.as_str(),
        ))
        .bind(item_id)
        .bind(sender_id)
        .bind(rules.extension.as_millis() as Millis)
        .bind(now)
        .bind(rules.max_extensions)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Why not, from the item as it is: the caller's own items only.
            return Err(match items::get(&mut *tx, item_id).await? {
                Some((item, sender)) if sender == sender_id => {
                    if item.status != ItemStatus::Stored {
                        Error::NotWaiting
                    } else {
                        Error::NoMoreExtensions(rules.max_extensions)
                    }
                }
                _ => Error::ItemNotFound,
            });
        };
        let item = from_row(&row)?;
        let until = human(row.try_get("collect_by")?);
        notices::tell_receiver(&mut tx, &item, trace_id, now, |item, location, locker| {
            Message::PickupExtended {
                item,
                location,
                locker,
                until: until.clone(),
            }
        })
        .await?;
        tx.audit(item_entry(now, Some(sender_id), "item.extended", &item));
        notices::regrant(&mut tx, &item, trace_id, now).await?;
        tx.commit(&self.relay).await?;
        Ok(item)
    }
}

/// Drops whose door never opened before their deadline (`$1`, now).
fn unopened_past_deadline() -> String {
    format!(
        "{} AND drop_deadline < $1 AND door_opened_at IS NULL",
        ItemMove::CancelUnopened.sql_leaves()
    )
}
