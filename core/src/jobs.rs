//! Jobs: what the api asks the workers to do, as they travel through the
//! outbox and the queue.

use serde::{Deserialize, Serialize};

/// One durable queue per kind, so each kind of work scales on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Generate, hash, store and send a one-time code.
    Otp,
    /// Send an email or SMS.
    Notify,
    /// What goes to a locker's agent: a signed unlock command (tracked
    /// until answered), or the locker's offline pickup grant.
    Unlock,
}

impl JobKind {
    pub const ALL: [Self; 3] = [Self::Otp, Self::Notify, Self::Unlock];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Otp => "otp",
            Self::Notify => "notify",
            Self::Unlock => "unlock",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A job on the wire: its outbox id (which makes redeliveries recognisable),
/// how many times it has been tried, the trace id of the request it came from,
/// and its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: i64,
    pub kind: JobKind,
    pub attempt: u32,
    pub trace_id: String,
    pub payload: serde_json::Value,
    /// When the job was written (its outbox row), for the enqueue-to-done
    /// latency; absent in jobs published before it was carried.
    #[serde(default)]
    pub enqueued_at: Option<crate::clock::Millis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Job {
    Otp(OtpJob),
    Notify(NotifyJob),
    Unlock(UnlockJob),
    Grant(GrantJob),
}

impl Job {
    pub fn kind(&self) -> JobKind {
        match self {
            Self::Otp(_) => JobKind::Otp,
            Self::Notify(_) => JobKind::Notify,
            Self::Unlock(_) | Self::Grant(_) => JobKind::Unlock,
        }
    }
}

/// Why a door is unlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlockPurpose {
    /// For the sender to put the item in.
    Drop,
    /// For the receiver to take it out.
    Collect,
    /// An admin's maintenance opening.
    Maintenance,
}

impl UnlockPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Collect => "collect",
            Self::Maintenance => "maintenance",
        }
    }
}

/// Open a locker's door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnlockJob {
    pub locker_id: i64,
    /// The item whose step waits on the door; none for maintenance.
    pub item_id: Option<i64>,
    pub purpose: UnlockPurpose,
    /// Then send the locker's offline pickup grant, as a [`GrantJob`] for
    /// the locker would (the unlock ends the item's pickup pass): one job
    /// where two would go through the queue, the unlock first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub then_grant: bool,
}

/// Send a locker's agent its current offline pickup grant (or its
/// revocation): read when the job runs, so jobs may run in any order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantJob {
    pub grant_locker_id: i64,
}

/// What a job on the unlock queue asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DoorJob {
    Grant(GrantJob),
    Unlock(UnlockJob),
}

/// Issue a code for the item to the receiver's contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtpJob {
    pub item_id: i64,
    /// The normalised email or E.164 number, as stored on the item.
    pub contact: String,
}

/// Tell someone something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyJob {
    /// An email address or an E.164 number.
    pub to: String,
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// To the receiver: an item waits for them.
    ItemStored {
        item: String,
        location: String,
        locker: String,
        /// Collect before this, e.g. "2026-11-28 10:44 UTC".
        #[serde(default)]
        until: Option<String>,
        /// The item whose pickup PIN and link the message carries (derived
        /// where it is sent, never stored); absent at a locker without an
        /// agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pickup: Option<i64>,
    },
    /// To the sender: the receiver took the item.
    ItemCollected { item: String, location: String },
    /// To the sender: an admin emptied the locker.
    ItemCleared { item: String, location: String },
    /// To the sender: the door was never opened to drop the item.
    DropCancelled { item: String, location: String },
    /// To the sender: the receiver did not collect in time.
    ItemExpired { item: String, location: String },
    /// To the sender: they took the item back.
    ItemReturned { item: String, location: String },
    /// To the receiver: the pickup deadline is near.
    PickupReminder {
        item: String,
        location: String,
        locker: String,
        until: String,
    },
    /// To the receiver: the sender gave them more time.
    PickupExtended {
        item: String,
        location: String,
        locker: String,
        until: String,
    },
    /// To the receiver: the pickup time passed.
    PickupMissed { item: String, location: String },
}

impl Envelope {
    pub fn decode<T: for<'de> Deserialize<'de>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.payload.clone())
    }
}
