//! A sender drops an item: the locker is reserved, and either its door is
//! unlocked for the sender (`AWAITING_DROP`, stored once the door has opened
//! and closed) or, at a locker without an agent, the item is stored at once.

use sqlx::AnyConnection;

use super::notices::{self, item_detail, item_entry};
use super::{Error, Exchange, Result, once_more, statement};
use crate::clock::Millis;
use crate::domain::{Item, ItemStatus, LockerMove, LockerSize, place_key};
use crate::jobs::{Job, UnlockJob, UnlockPurpose};
use crate::store::items::{ITEM_COLUMNS, from_row};
use crate::store::{lockers, outbox};

/// What the sender leaves, where, for whom. Contacts are already normalised.
#[derive(Clone)]
pub struct Parcel {
    pub to: Destination,
    pub name: String,
    pub description: Option<String>,
    pub receiver_phone: Option<String>,
    pub receiver_email: Option<String>,
}

/// Where a sender drops: a locker they chose, or the smallest free one that
/// fits at a place.
#[derive(Clone, Debug)]
pub enum Destination {
    Locker(i64),
    Place { location: String, size: LockerSize },
}

/// The audit action of a drop.
const DROPPED: &str = "item.dropped";

/// Racing drops pass over lockers another holds; a locker taken between the
/// look and the reservation (SQLite never, PostgreSQL rarely) means looking again.
const PICKS: usize = 3;

impl Exchange {
    pub async fn drop_item(&self, sender_id: i64, parcel: Parcel, trace_id: &str) -> Result<Item> {
        if let Destination::Locker(locker_id) = parcel.to
            && self.db.backend().chains_writes()
            && let Some(item) = self
                .drop_at_once(sender_id, locker_id, &parcel, trace_id)
                .await?
        {
            return Ok(item);
        }
        once_more(|| self.try_drop_item(sender_id, parcel.clone(), trace_id)).await
    }

    /// A drop at a free locker whose door an agent drives, where writes
    /// chain: the reservation, the item, the door's unlock and the audit
    /// row in one statement, which commits on its own. `None` when the
    /// locker is not free or has no agent: the transaction of
    /// [`Exchange::try_drop_item`] then says why, or stores the item at once.
    async fn drop_at_once(
        &self,
        sender_id: i64,
        locker_id: i64,
        parcel: &Parcel,
        trace_id: &str,
    ) -> Result<Option<Item>> {
        let now = self.now();
        let drop_deadline = now + self.rules.drop_window.as_millis() as Millis;
        let unlock = |item_id| {
            Job::Unlock(UnlockJob {
                locker_id,
                item_id: Some(item_id),
                purpose: UnlockPurpose::Drop,
                then_grant: false,
            })
        };
        let unlock = outbox::Beside::new(unlock, trace_id, now);
        let query = sqlx::query(statement!(
            "WITH reserved AS (UPDATE lockers SET status = $11, updated_at = $8 \
               WHERE id = $1 AND status = $10 AND agent_id IS NOT NULL RETURNING id), \
             inserted AS (INSERT INTO items (locker_id, sender_id, name, description, \
                 receiver_phone, receiver_email, status, created_at, updated_at, stored_at, \
                 drop_deadline, collect_by) \
               SELECT id, $2, $3, $4, $5, $6, $7, $8, $8, NULL, $9, NULL FROM reserved \
               RETURNING {ITEM_COLUMNS}), \
             {queued}, \
             audited AS (INSERT INTO audit_log \
                 (at, actor_id, action, subject, detail, reason, locker_id, item_id) \
               SELECT $8, $2, '{DROPPED}', 'item:' || CAST(id AS TEXT), $12, NULL, locker_id, id \
               FROM inserted) \
             SELECT inserted.*, queued.id AS job_id, queued.payload AS job_payload \
             FROM inserted CROSS JOIN queued",
            queued = outbox::Beside::queued("inserted", "id", 13),
        ))
        .bind(locker_id)
        .bind(sender_id)
        .bind(parcel.name.clone())
        .bind(parcel.description.clone())
        .bind(parcel.receiver_phone.clone())
        .bind(parcel.receiver_email.clone())
        .bind(ItemStatus::AwaitingDrop.as_str())
        .bind(now)
        .bind(drop_deadline)
        .bind(LockerMove::Reserve.from().as_str())
        .bind(LockerMove::Reserve.to().as_str())
        .bind(item_detail(Some(locker_id)));
        let row = unlock
            .bind(query)
            .fetch_optional(self.db.pool())
            .await
            .map_err(Error::unknown_if_lost)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let item = from_row(&row)?;
        self.relay.committed(vec![unlock.written(&row)?]);
        Ok(Some(item))
    }

    async fn try_drop_item(&self, sender_id: i64, parcel: Parcel, trace_id: &str) -> Result<Item> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let (locker_id, agent) = match &parcel.to {
            Destination::Locker(id) => {
                // The conditional move is the reservation: of racing senders one wins.
                let Some(agent) = lockers::reserve(&mut *tx, *id, now).await? else {
                    return Err(match lockers::get(&mut *tx, *id).await? {
                        None => Error::LockerNotFound,
                        Some(_) => Error::LockerNotAvailable,
                    });
                };
                (*id, agent)
            }
            Destination::Place { location, size } => {
                self.reserve_at_place(&mut tx, location, *size, now).await?
            }
        };
        let item = if agent.is_some() {
            let drop_deadline = now + self.rules.drop_window.as_millis() as Millis;
            let item = insert(
                &mut tx,
                sender_id,
                locker_id,
                parcel,
                Entry::AwaitingDrop { drop_deadline },
                now,
            )
            .await?;
            // The door opens for the sender; the receiver hears once it has
            // closed on the item.
            notices::unlock(
                &mut tx,
                locker_id,
                Some(item.id),
                UnlockPurpose::Drop,
                false,
                trace_id,
                now,
            )
            .await?;
            item
        } else {
            let collect_by = self.collect_by(now);
            let item = insert(
                &mut tx,
                sender_id,
                locker_id,
                parcel,
                Entry::Stored { collect_by },
                now,
            )
            .await?;
            notices::tell_receiver_stored(&mut tx, &item, Some(collect_by), false, trace_id, now)
                .await?;
            item
        };
        tx.audit(item_entry(now, Some(sender_id), DROPPED, &item));
        tx.commit(&self.relay).await?;
        Ok(item)
    }

    /// Reserves the smallest available locker at `location` that fits `size`;
    /// returns it and the agent that drives its door.
    async fn reserve_at_place(
        &self,
        conn: &mut AnyConnection,
        location: &str,
        size: LockerSize,
        now: Millis,
    ) -> Result<(i64, Option<String>)> {
        let key = place_key(location);
        for _ in 0..PICKS {
            let Some(id) = lockers::smallest_free(conn, &key, size, self.db.backend()).await?
            else {
                break;
            };
            if let Some(agent) = lockers::reserve(&mut *conn, id, now).await? {
                return Ok((id, agent));
            }
        }
        match lockers::free_by_size(&mut *conn, &key).await? {
            None => Err(Error::PlaceNotFound),
            Some(free) => Err(Error::NoneFits { size, free }),
        }
    }
}

/// How an item enters its (already reserved) locker.
enum Entry {
    /// The door is ours to open: the sender must open it before the deadline.
    AwaitingDrop { drop_deadline: Millis },
    /// No door to drive: stored at once, to be collected before `collect_by`.
    Stored { collect_by: Millis },
}

async fn insert(
    conn: &mut AnyConnection,
    sender_id: i64,
    locker_id: i64,
    parcel: Parcel,
    entry: Entry,
    now: Millis,
) -> Result<Item, sqlx::Error> {
    let (status, stored_at, drop_deadline, collect_by) = match entry {
        Entry::AwaitingDrop { drop_deadline } => {
            (ItemStatus::AwaitingDrop, None, Some(drop_deadline), None)
        }
        Entry::Stored { collect_by } => (ItemStatus::Stored, Some(now), None, Some(collect_by)),
    };
    let row = sqlx::query(statement!(
        "INSERT INTO items (locker_id, sender_id, name, description, receiver_phone, receiver_email, \
           status, created_at, updated_at, stored_at, drop_deadline, collect_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11) RETURNING {ITEM_COLUMNS}"
    ))
    .bind(locker_id)
    .bind(sender_id)
    .bind(parcel.name)
    .bind(parcel.description)
    .bind(parcel.receiver_phone)
    .bind(parcel.receiver_email)
    .bind(status.as_str())
    .bind(now)
    .bind(stored_at)
    .bind(drop_deadline)
    .bind(collect_by)
    .fetch_one(conn)
    .await?;
    from_row(&row)
}
