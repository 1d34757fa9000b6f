//! The messages of the protocol, exactly as they travel (JSON).

use serde::{Deserialize, Serialize};

use crate::signing;

/// How far an agent's clock may be from the server's, in milliseconds. An
/// agent remembers an executed command this long past its `expires_at`, and
/// refuses one whose `issued_at` is further than this in its future.
pub const CLOCK_ALLOWANCE_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Unlock,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unlock => "unlock",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s == "unlock").then_some(Self::Unlock)
    }
}

/// A signed order to an agent. Times are milliseconds since the Unix epoch.
/// Fields not named here are ignored (and not signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    /// `unlock`; kept as sent, since the signature covers it as sent.
    #[serde(rename = "type")]
    pub kind: String,
    pub locker_id: i64,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Lower-case hex HMAC-SHA256 of [`Command::signed_bytes`] under the agent's key.
    pub sig: String,
    /// The request this command follows from, for the agent's logs (not signed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
}

impl Command {
    /// Exactly what the signature covers: the fields joined by `\n`, in this
    /// order, as UTF-8: `id`, `type`, `locker_id`, `issued_at`, `expires_at`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            self.id, self.kind, self.locker_id, self.issued_at, self.expires_at
        )
        .into_bytes()
    }

    /// A command signed with `key` (the agent's key, as bytes).
    pub fn signed(id: String, locker_id: i64, issued_at: i64, expires_at: i64, key: &[u8]) -> Self {
        let mut command = Self {
            id,
            kind: CommandKind::Unlock.as_str().to_owned(),
            locker_id,
            issued_at,
            expires_at,
            sig: String::new(),
            trace_id: String::new(),
        };
        command.sig = signing::sign(key, &command.signed_bytes());
        command
    }

    /// The field formats the protocol sets beyond JSON types: an `id` of 1
    /// to 128 characters, a `sig` of 64 hex characters.
    pub fn well_formed(&self) -> bool {
        (1..=128).contains(&self.id.chars().count())
            && self.sig.len() == 64
            && self.sig.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// What it orders, when it is something this protocol knows.
    pub fn command_kind(&self) -> Option<CommandKind> {
        CommandKind::parse(&self.kind)
    }

    /// True when `sig` is this command's signature under `key` (constant time).
    pub fn verify(&self, key: &[u8]) -> bool {
        signing::verify(key, &self.signed_bytes(), &self.sig)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckReason {
    Malformed,
    BadSignature,
    UnsupportedType,
    UnknownLocker,
    Replayed,
    ClockSkew,
    Expired,
    DoorFault,
}

impl AckReason {
    pub const ALL: [Self; 8] = [
        Self::Malformed,
        Self::BadSignature,
        Self::UnsupportedType,
        Self::UnknownLocker,
        Self::Replayed,
        Self::ClockSkew,
        Self::Expired,
        Self::DoorFault,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::UnsupportedType => "unsupported_type",
            Self::UnknownLocker => "unknown_locker",
            Self::Replayed => "replayed",
            Self::ClockSkew => "clock_skew",
            Self::Expired => "expired",
            Self::DoorFault => "door_fault",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An agent's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub command_id: String,
    pub ok: bool,
    /// Why a command was refused; absent when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<AckReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorEventKind {
    DoorOpened,
    DoorClosed,
    DoorLeftOpen,
}

impl DoorEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DoorOpened => "door_opened",
            Self::DoorClosed => "door_closed",
            Self::DoorLeftOpen => "door_left_open",
        }
    }
}

/// A door sensor reading. `id` is unique per event; `command_id` names the
/// command that unlocked the door, when one did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorEvent {
    pub id: String,
    pub locker_id: i64,
    pub kind: DoorEventKind,
    pub at: i64,
    #[serde(default)]
    pub command_id: Option<String>,
}

/// An agent's presence, retained on its status topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub online: bool,
    #[serde(default)]
    pub at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_every_field() {
        let key = b"agent-key";
        let command = Command::signed("c1".into(), 7, 1_000, 31_000, key);
        assert!(command.verify(key));
        assert!(!command.verify(b"other-key"));
        for tampered in [
            Command {
                locker_id: 8,
                ..command.clone()
            },
            Command {
                expires_at: 99_000,
                ..command.clone()
            },
            Command {
                id: "c2".into(),
                ..command.clone()
            },
            Command {
                sig: "zz".into(),
                ..command.clone()
            },
        ] {
            assert!(!tampered.verify(key));
        }
        assert_eq!(command.signed_bytes(), b"c1\nunlock\n7\n1000\n31000");
    }

    #[test]
    fn ids_and_signatures_have_their_documented_shape() {
        let command = Command::signed("c1".into(), 7, 1_000, 31_000, b"k");
        assert!(command.well_formed());
        for bad in [
            Command {
                id: String::new(),
                ..command.clone()
            },
            Command {
                id: "x".repeat(129),
                ..command.clone()
            },
            Command {
                sig: "ab".into(),
                ..command.clone()
            },
            Command {
                sig: "z".repeat(64),
                ..command.clone()
            },
        ] {
            assert!(!bad.well_formed(), "{bad:?}");
        }
        for reason in AckReason::ALL {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, reason.as_str());
            assert_eq!(AckReason::parse(reason.as_str()), Some(reason));
        }
    }

    #[test]
    fn the_wire_format_is_the_documented_one() {
        let command = Command::signed("c1".into(), 7, 1_000, 31_000, b"k");
        let json = serde_json::to_value(&command).unwrap();
        assert_eq!(json["type"], "unlock");
        let event: DoorEvent = serde_json::from_str(
            r#"{"id":"e1","locker_id":7,"kind":"door_closed","at":5,"command_id":"c1"}"#,
        )
        .unwrap();
        assert_eq!(event.kind, DoorEventKind::DoorClosed);
        let ack = serde_json::to_string(&Ack {
            command_id: "c1".into(),
            ok: false,
            reason: Some(AckReason::BadSignature),
        })
        .unwrap();
        assert_eq!(
            ack,
            r#"{"command_id":"c1","ok":false,"reason":"bad_signature"}"#
        );
    }
}
