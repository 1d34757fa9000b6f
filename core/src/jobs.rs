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
}

impl JobKind {
    pub const ALL: [Self; 2] = [Self::Otp, Self::Notify];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Otp => "otp",
            Self::Notify => "notify",
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Job {
    Otp(OtpJob),
    Notify(NotifyJob),
}

impl Job {
    pub fn kind(&self) -> JobKind {
        match self {
            Self::Otp(_) => JobKind::Otp,
            Self::Notify(_) => JobKind::Notify,
        }
    }
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
    },
    /// To the sender: the receiver took the item.
    ItemCollected { item: String, location: String },
    /// To the sender: an admin emptied the locker.
    ItemCleared { item: String, location: String },
}

impl Envelope {
    pub fn decode<T: for<'de> Deserialize<'de>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.payload.clone())
    }
}
