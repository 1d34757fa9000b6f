//! Deadlines: a drop whose door never opened in its window is cancelled (the
//! locker is free again); an item not collected by its deadline expires (it
//! stays in its locker for an admin to clear). Both tell the sender. Each is
//! one conditional update, so any number of workers may sweep.

use super::notices::{self, item_entry};
use super::{Error, Exchange, Result, statement};
use crate::domain::{Item, ItemMove};
use crate::jobs::Message;
use crate::store::audit;
use crate::store::items::{ITEM_COLUMNS, from_rows};

/// Jobs written by a sweep carry this as their trace id.
const TRACE: &str = "sweeper";

impl Exchange {
    /// Drops whose door never opened before `drop_deadline`: `CANCELLED`.
    pub async fn cancel_unopened_drops(&self) -> Result<Vec<Item>> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let cancelled: Vec<Item> = sqlx::query(statement!(
            "UPDATE items SET status = {}, updated_at = $1 \
             WHERE {} AND drop_deadline < $1 AND door_opened_at IS NULL RETURNING {ITEM_COLUMNS}",
            ItemMove::CancelUnopened.sql_next(),
            ItemMove::CancelUnopened.sql_leaves(),
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
        tx.commit().await.map_err(Error::Commit)?;
        if !cancelled.is_empty() {
            self.relay.wake();
        }
        Ok(cancelled)
    }

    /// Items not collected before `collect_by`: `EXPIRED`, their code void.
    pub async fn expire_uncollected(&self) -> Result<Vec<Item>> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
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
            audit::record(&mut *tx, item_entry(now, None, "item.expired", item)).await?;
        }
        tx.commit().await.map_err(Error::Commit)?;
        if !expired.is_empty() {
            self.relay.wake();
        }
        Ok(expired)
    }
}
