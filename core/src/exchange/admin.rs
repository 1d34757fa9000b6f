//! Admins run the lockers: add, edit (including putting one out of service
//! and back), delete when empty, force-clear whatever it holds, and unlock a
//! door for maintenance. Every change is audited with the admin who made it.

use super::notices::{self, Actor};
use super::{Error, Exchange, Result, once_more, statement};
use crate::domain::{Item, ItemMove, Locker, LockerSize, LockerStatus};
use crate::jobs::{Message, UnlockPurpose};
use crate::store::items::{ITEM_COLUMNS, from_row};
use crate::store::lockers::{self, NewLocker};
use crate::store::{audit, doors};

/// An admin's edit. `None` leaves a field as it is; `Some(None)` clears a
/// nullable one.
#[derive(Debug, Default, Clone)]
pub struct LockerEdit {
    pub location: Option<String>,
    pub name: Option<Option<String>>,
    pub size: Option<LockerSize>,
    pub agent_id: Option<Option<String>>,
    /// Only [`LockerStatus::settable_by_admin`] statuses.
    pub status: Option<LockerStatus>,
}

impl Exchange {
    /// A new locker, `AVAILABLE`.
    pub async fn create_locker(&self, admin_id: i64, new: NewLocker) -> Result<Locker> {
        once_more(|| self.try_create_locker(admin_id, new.clone())).await
    }

    async fn try_create_locker(&self, admin_id: i64, new: NewLocker) -> Result<Locker> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let locker = lockers::insert(&mut tx, new, now).await?;
        let by = Actor::user(admin_id);
        audit::record(&mut *tx, locker_entry(now, by, "locker.created", &locker)).await?;
        tx.commit().await.map_err(Error::Commit)?;
        Ok(locker)
    }

    /// Changes a locker's details; a status change (out of service, back in
    /// service) only while the locker holds no item, decided by the same
    /// statement, so it never overrides a racing drop.
    pub async fn edit_locker(&self, by: Actor<'_>, id: i64, edit: LockerEdit) -> Result<Locker> {
        once_more(|| self.try_edit_locker(by, id, edit.clone())).await
    }

    async fn try_edit_locker(&self, by: Actor<'_>, id: i64, edit: LockerEdit) -> Result<Locker> {
        if edit.status.is_some_and(|s| !s.settable_by_admin()) {
            return Err(Error::LockerOccupied);
        }
        let now = self.now();
        let place = edit.location.as_deref().map(crate::domain::place_key);
        let mut tx = self.db.begin().await?;
        let updated: Option<i64> = sqlx::query_scalar(statement!(
            "UPDATE lockers SET \
               location = COALESCE($2, location), \
               place_key = COALESCE($3, place_key), \
               name = CASE WHEN $4 THEN $5 ELSE name END, \
               size = COALESCE($6, size), \
               agent_id = CASE WHEN $7 THEN $8 ELSE agent_id END, \
               status = COALESCE($9, status), \
               updated_at = $10 \
             WHERE id = $1 AND ($9 IS NULL OR status IN ({})) RETURNING id",
            admin_leaves()
        ))
        .bind(id)
        .bind(edit.location)
        .bind(place)
        .bind(edit.name.is_some())
        .bind(edit.name.flatten())
        .bind(edit.size.map(LockerSize::as_str))
        .bind(edit.agent_id.is_some())
        .bind(edit.agent_id.flatten())
        .bind(edit.status.map(LockerStatus::as_str))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let locker = match (updated, lockers::get(&mut *tx, id).await?) {
            (Some(_), Some(locker)) => locker,
            (None, Some(_)) => return Err(Error::LockerOccupied),
            (_, None) => return Err(Error::LockerNotFound),
        };
        audit::record(&mut *tx, locker_entry(now, by, "locker.updated", &locker)).await?;
        tx.commit().await.map_err(Error::Commit)?;
        Ok(locker)
    }

    /// Removes a locker that holds no item.
    pub async fn delete_locker(&self, by: Actor<'_>, id: i64) -> Result<Locker> {
        once_more(|| self.try_delete_locker(by, id)).await
    }

    async fn try_delete_locker(&self, by: Actor<'_>, id: i64) -> Result<Locker> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let row = sqlx::query(statement!(
            "DELETE FROM lockers WHERE id = $1 AND status <> '{}' \
             RETURNING id, location, name, size, agent_id, status, door_state, \
               NULL AS agent_online, created_at, updated_at",
            LockerStatus::Occupied.as_str()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let locker = match row {
            Some(row) => lockers::from_row(&row)?,
            None if lockers::get(&mut *tx, id).await?.is_some() => {
                return Err(Error::LockerOccupied);
            }
            None => return Err(Error::LockerNotFound),
        };
        audit::record(&mut *tx, locker_entry(now, by, "locker.deleted", &locker)).await?;
        tx.commit().await.map_err(Error::Commit)?;
        Ok(locker)
    }

    /// Empties a locker whatever it holds: the item is kept, `CLEARED`; the
    /// locker is available again; the sender is told.
    pub async fn force_clear(&self, by: Actor<'_>, locker_id: i64, trace_id: &str) -> Result<Item> {
        once_more(|| self.try_force_clear(by, locker_id, trace_id)).await
    }

    async fn try_force_clear(&self, by: Actor<'_>, locker_id: i64, trace_id: &str) -> Result<Item> {
        let now = self.now();
        let mut tx = self.begin().await?;
        // The locker before its item, as a door closing on it takes them.
        if !lockers::hold(&mut *tx, self.db.backend(), locker_id).await? {
            return Err(Error::LockerNotFound);
        }
        let row = sqlx::query(statement!(
            "UPDATE items SET status = {}, cleared_at = $2, updated_at = $2, \
               otp_hash = NULL, otp_expires_at = NULL \
             WHERE locker_id = $1 AND {} RETURNING {ITEM_COLUMNS}",
            ItemMove::Clear.sql_next(),
            ItemMove::Clear.sql_leaves(),
        ))
        .bind(locker_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(item) = row.as_ref().map(from_row).transpose()? else {
            return Err(Error::LockerEmpty);
        };
        notices::vacate(
            &mut tx,
            &item,
            "item.cleared",
            by,
            trace_id,
            now,
            |item, location| Message::ItemCleared { item, location },
        )
        .await?;
        notices::regrant(&mut tx, &item, trace_id, now).await?;
        tx.commit(&self.relay).await?;
        Ok(item)
    }

    /// Unlocks a locker's door for maintenance.
    pub async fn remote_unlock(&self, by: Actor<'_>, locker_id: i64, trace_id: &str) -> Result<()> {
        once_more(|| self.try_remote_unlock(by, locker_id, trace_id)).await
    }

    async fn try_remote_unlock(&self, by: Actor<'_>, locker_id: i64, trace_id: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.begin().await?;
        match doors::agent_of(&mut *tx, locker_id).await? {
            None => return Err(Error::LockerNotFound),
            Some(None) => return Err(Error::NoDoor),
            Some(Some(_)) => {}
        }
        notices::unlock(
            &mut tx,
            locker_id,
            None,
            UnlockPurpose::Maintenance,
            false,
            trace_id,
            now,
        )
        .await?;
        let entry = audit::Entry {
            at: now,
            actor_id: by.id,
            action: "locker.unlocked",
            subject: format!("locker:{locker_id}"),
            detail: "maintenance".into(),
            reason: by.reason.map(str::to_owned),
        };
        tx.audit(entry);
        tx.commit(&self.relay).await?;
        Ok(())
    }
}

/// SQL: the statuses an admin may move a locker out of, `'A', 'B'`.
fn admin_leaves() -> String {
    let list: Vec<String> = LockerStatus::ALL
        .into_iter()
        .filter(|s| s.left_by_admin())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    list.join(", ")
}

fn locker_entry<'a>(at: i64, by: Actor<'_>, action: &'a str, locker: &Locker) -> audit::Entry<'a> {
    audit::Entry {
        at,
        actor_id: by.id,
        action,
        subject: format!("locker:{}", locker.id),
        detail: serde_json::to_string(locker).unwrap_or_default(),
        reason: by.reason.map(str::to_owned),
    }
}
