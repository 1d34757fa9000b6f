//! What transitions share: the messages and unlocks they queue, the locker
//! an item leaves, and their audit rows. Each is called inside the
//! transition's own transaction.

use crate::clock::{Millis, human};
use crate::domain::{Item, ItemStatus, LockerMove};
use crate::jobs::{GrantJob, Job, Message, NotifyJob, UnlockJob, UnlockPurpose};
use crate::store::items::Whereabouts;
use crate::store::outbox::OutboxTx;
use crate::store::{audit, items, lockers, pickups};

/// Queues the receiver's "waiting for you" message, to each of their
/// contacts; behind a door an agent drives, with a pickup PIN and link.
pub(super) async fn tell_receiver_stored(
    tx: &mut OutboxTx,
    item: &Item,
    collect_by: Option<Millis>,
    at_door: bool,
    trace_id: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let pickup = at_door.then_some(item.id);
    let place = items::whereabouts(&mut **tx, item.id).await?;
    tell_receiver_at(tx, item, place, trace_id, now, |item, location, locker| {
        Message::ItemStored {
            item,
            location,
            locker,
            until: collect_by.map(human),
            pickup,
        }
    })
    .await
}

/// Queues a fresh offline grant for the item's locker when the item has a
/// pickup pass: called when it leaves `STORED` or its deadline moves.
pub(super) async fn regrant(
    tx: &mut OutboxTx,
    item: &Item,
    trace_id: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    if let Some(locker_id) = item.locker_id
        && pickups::has_pass(&mut **tx, item.id).await?
    {
        let job = Job::Grant(GrantJob {
            grant_locker_id: locker_id,
        });
        tx.enqueue(&job, trace_id, now);
    }
    Ok(())
}

/// Queues a message to each of the receiver's contacts; `message` gets the
/// item's name, place and locker.
pub(super) async fn tell_receiver(
    tx: &mut OutboxTx,
    item: &Item,
    trace_id: &str,
    now: Millis,
    message: impl Fn(String, String, String) -> Message,
) -> Result<(), sqlx::Error> {
    let place = items::whereabouts(&mut **tx, item.id).await?;
    tell_receiver_at(tx, item, place, trace_id, now, message).await
}

async fn tell_receiver_at(
    tx: &mut OutboxTx,
    item: &Item,
    place: Option<Whereabouts>,
    trace_id: &str,
    now: Millis,
    message: impl Fn(String, String, String) -> Message,
) -> Result<(), sqlx::Error> {
    let Some(place) = place else {
        return Ok(());
    };
    for to in [&item.receiver_phone, &item.receiver_email]
        .into_iter()
        .flatten()
    {
        let job = Job::Notify(NotifyJob {
            to: to.clone(),
            message: message(
                place.item.clone(),
                place.location.clone(),
                place.locker.clone(),
            ),
        });
        tx.enqueue(&job, trace_id, now);
    }
    Ok(())
}

/// Queues an email to the item's sender; `message` gets the item's name and
/// place.
pub(super) async fn tell_sender(
    tx: &mut OutboxTx,
    item: &Item,
    trace_id: &str,
    now: Millis,
    message: impl FnOnce(String, String) -> Message,
) -> Result<(), sqlx::Error> {
    let place = items::whereabouts(&mut **tx, item.id).await?;
    tell_sender_at(tx, place, trace_id, now, message).await
}

async fn tell_sender_at(
    tx: &mut OutboxTx,
    place: Option<Whereabouts>,
    trace_id: &str,
    now: Millis,
    message: impl FnOnce(String, String) -> Message,
) -> Result<(), sqlx::Error> {
    if let Some(Whereabouts {
        item: name,
        location,
        sender_email: Some(to),
        ..
    }) = place
    {
        let job = Job::Notify(NotifyJob {
            to,
            message: message(name, location),
        });
        tx.enqueue(&job, trace_id, now);
    }
    Ok(())
}

/// An item leaves its locker for good (collected, cleared, cancelled): the
/// locker is free again, the sender is told, the transition audited.
pub(super) async fn vacate(
    tx: &mut OutboxTx,
    item: &Item,
    action: &str,
    actor: Actor<'_>,
    trace_id: &str,
    now: Millis,
    message: impl FnOnce(String, String) -> Message,
) -> Result<(), sqlx::Error> {
    if let Some(locker_id) = item.locker_id {
        lockers::apply(&mut **tx, locker_id, LockerMove::Vacate, now).await?;
    }
    tell_sender(tx, item, trace_id, now, message).await?;
    let mut entry = item_entry(now, actor.id, action, item);
    entry.reason = actor.reason.map(str::to_owned);
    tx.audit(entry);
    Ok(())
}

/// Who moved an item: a user (and an admin's reason), or the system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor<'a> {
    pub id: Option<i64>,
    pub reason: Option<&'a str>,
}

impl Actor<'_> {
    pub fn user(id: i64) -> Self {
        Self {
            id: Some(id),
            reason: None,
        }
    }
}

/// An item taken out with a code (`COLLECTED` by its receiver, `RETURNED`
/// to its sender) leaves its locker; the sender is told which.
pub(super) async fn leave(
    tx: &mut OutboxTx,
    item: &Item,
    trace_id: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let (action, message): (&str, fn(String, String) -> Message) =
        if item.status == ItemStatus::Returned {
            (RETURNED_ACTION, |item, location| Message::ItemReturned {
                item,
                location,
            })
        } else {
            (COLLECTED_ACTION, |item, location| Message::ItemCollected {
                item,
                location,
            })
        };
    let by = Actor::default();
    vacate(tx, item, action, by, trace_id, now, message).await
}

/// The audit actions of an item's door closing on it: stored, or taken out
/// by its receiver or its sender.
pub(super) const STORED_ACTION: &str = "item.stored";
pub(super) const COLLECTED_ACTION: &str = "item.collected";
pub(super) const RETURNED_ACTION: &str = "item.returned";

/// Queues the unlock of a locker's door; with `then_grant`, the locker's
/// offline grant is sent after it (see [`regrant`]).
pub(super) async fn unlock(
    tx: &mut OutboxTx,
    locker_id: i64,
    item_id: Option<i64>,
    purpose: UnlockPurpose,
    then_grant: bool,
    trace_id: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let job = Job::Unlock(UnlockJob {
        locker_id,
        item_id,
        purpose,
        then_grant,
    });
    tx.enqueue(&job, trace_id, now);
    Ok(())
}

/// The audit row of an item's transition.
pub(super) fn item_entry<'a>(
    at: Millis,
    actor_id: Option<i64>,
    action: &'a str,
    item: &Item,
) -> audit::Entry<'a> {
    audit::Entry {
        at,
        actor_id,
        action,
        subject: format!("item:{}", item.id),
        detail: item_detail(item.locker_id),
        reason: None,
    }
}

/// The detail of an item's audit row: its locker.
pub(super) fn item_detail(locker_id: Option<i64>) -> String {
    format!("locker {}", locker_id.unwrap_or_default())
}
