//! A sender drops an item: the locker is reserved, and either its door is
//! unlocked for the sender (`AWAITING_DROP`, stored once the door has opened
//! and closed) or, at a locker without an agent, the item is stored at once.

use sqlx::AnyConnection;

use super::notices::{self, item_entry};
use super::{Error, Exchange, Result, once_more, statement};
use crate::clock::Millis;
use crate::domain::{Item, ItemStatus, LockerSize, place_key};
use crate::jobs::UnlockPurpose;
use crate::store::items::{ITEM_COLUMNS, from_row};
use crate::store::{audit, lockers};

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

/// Racing drops pass over lockers another holds; a locker taken between the
/// look and the reservation (SQLite never, PostgreSQL rarely) means looking again.
const PICKS: usize = 3;

impl Exchange {
    pub async fn drop_item(&self, sender_id: i64, parcel: Parcel, trace_id: &str) -> Result<Item> {
        once_more(|| self.try_drop_item(sender_id, parcel.clone(), trace_id)).await
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
            notices::tell_receiver_stored(
                &mut tx,
                &item,
                None,
                Some(collect_by),
                false,
                trace_id,
                now,
            )
            .await?;
            item
        };
        audit::record(
            &mut *tx,
            item_entry(now, Some(sender_id), "item.dropped", &item),
        )
        .await?;
        tx.commit(&self.relay).await.map_err(Error::Commit)?;
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
