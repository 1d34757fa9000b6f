//! Pickups at the locker: a PIN typed on its keypad or a pickup QR code
//! scanned at it, checked by the server while the site is online, and by the
//! agent itself, from the grant the server sent it, while it is not.

use serde::{Deserialize, Serialize};

use crate::signing;

/// How a receiver identified themselves at the locker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PickupMethod {
    /// The pickup PIN, typed on the keypad.
    Pin,
    /// The pickup QR code's text, scanned.
    Qr,
}

impl PickupMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pin => "pin",
            Self::Qr => "qr",
        }
    }
}

/// Agent → server (`pickups`): check this code for the item in this locker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupEntry {
    /// Unique per entry (a UUID); the reply carries it.
    pub id: String,
    pub locker_id: i64,
    pub method: PickupMethod,
    /// What was typed or scanned.
    pub code: String,
    /// When it was entered, by the agent's clock.
    pub at: i64,
    pub sig: String,
}

impl PickupEntry {
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "pickup\n{}\n{}\n{}\n{}\n{}",
            self.id,
            self.locker_id,
            self.method.as_str(),
            self.code,
            self.at
        )
        .into_bytes()
    }

    pub fn signed(
        id: String,
        locker_id: i64,
        method: PickupMethod,
        code: String,
        at: i64,
        key: &[u8],
    ) -> Self {
        let mut entry = Self {
            id,
            locker_id,
            method,
            code,
            at,
            sig: String::new(),
        };
        entry.sig = signing::sign(key, &entry.signed_bytes());
        entry
    }

    pub fn verify(&self, key: &[u8]) -> bool {
        well_formed_id(&self.id)
            && self.code.len() <= 128
            && signing::verify(key, &self.signed_bytes(), &self.sig)
    }
}

/// Agent → server (`collections`): a pickup let through while the site was
/// offline, reported once the link is back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineCollection {
    /// Unique per collection (a UUID); the reply carries it.
    pub id: String,
    pub locker_id: i64,
    /// The item of the grant that matched.
    pub item_id: i64,
    pub method: PickupMethod,
    /// When the door was released, by the agent's clock.
    pub at: i64,
    pub sig: String,
}

impl OfflineCollection {
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "collected\n{}\n{}\n{}\n{}\n{}",
            self.id,
            self.locker_id,
            self.item_id,
            self.method.as_str(),
            self.at
        )
        .into_bytes()
    }

    pub fn signed(
        id: String,
        locker_id: i64,
        item_id: i64,
        method: PickupMethod,
        at: i64,
        key: &[u8],
    ) -> Self {
        let mut report = Self {
            id,
            locker_id,
            item_id,
            method,
            at,
            sig: String::new(),
        };
        report.sig = signing::sign(key, &report.signed_bytes());
        report
    }

    pub fn verify(&self, key: &[u8]) -> bool {
        well_formed_id(&self.id) && signing::verify(key, &self.signed_bytes(), &self.sig)
    }
}

fn well_formed_id(id: &str) -> bool {
    (1..=128).contains(&id.chars().count())
}

/// Why the server refused an entry or a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyReason {
    Malformed,
    BadSignature,
    UnknownLocker,
    /// `at` is more than the clock allowance ahead of the server's clock.
    ClockSkew,
    /// The entry is older than the server accepts (a minute).
    Expired,
    /// Not the code of the item waiting in that locker (or none waits).
    WrongCode,
    /// Too many wrong codes for that item: try again later.
    CoolingDown,
}

impl ReplyReason {
    pub const ALL: [Self; 7] = [
        Self::Malformed,
        Self::BadSignature,
        Self::UnknownLocker,
        Self::ClockSkew,
        Self::Expired,
        Self::WrongCode,
        Self::CoolingDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::UnknownLocker => "unknown_locker",
            Self::ClockSkew => "clock_skew",
            Self::Expired => "expired",
            Self::WrongCode => "wrong_code",
            Self::CoolingDown => "cooling_down",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Server → agent (`replies`): the outcome of an entry or a report. An
/// accepted entry is followed by an ordinary unlock command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub id: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReplyReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// The item waits: its PIN or QR code may open the door offline.
    Granted,
    /// The item left (or never may be opened offline again).
    Revoked,
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Revoked => "revoked",
        }
    }
}

/// Server → agent, retained on `grants/{locker_id}`: what the agent needs
/// to check the item's PIN and QR code on its own. Never the codes: their
/// [`pass_hash`] under a per-item salt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub locker_id: i64,
    pub item_id: i64,
    pub state: GrantState,
    /// 32 hex characters; empty when revoked.
    #[serde(default)]
    pub salt: String,
    #[serde(default)]
    pub pin_hash: String,
    #[serde(default)]
    pub qr_hash: String,
    /// The item's pickup deadline (ms); 0 when revoked.
    #[serde(default)]
    pub expires_at: i64,
    /// Wrong codes the agent accepts offline before it refuses them all.
    #[serde(default)]
    pub max_attempts: i64,
    pub sig: String,
}

impl Grant {
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "grant\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.locker_id,
            self.item_id,
            self.state.as_str(),
            self.salt,
            self.pin_hash,
            self.qr_hash,
            self.expires_at,
            self.max_attempts
        )
        .into_bytes()
    }

    /// Signs it with `key` (the agent's key).
    pub fn sign(mut self, key: &[u8]) -> Self {
        self.sig = signing::sign(key, &self.signed_bytes());
        self
    }

    pub fn verify(&self, key: &[u8]) -> bool {
        signing::verify(key, &self.signed_bytes(), &self.sig)
    }

    /// True when `code`, entered by `method`, is this grant's.
    pub fn matches(&self, method: PickupMethod, code: &str) -> bool {
        let hash = match method {
            PickupMethod::Pin => &self.pin_hash,
            PickupMethod::Qr => &self.qr_hash,
        };
        self.state == GrantState::Granted
            && !self.salt.is_empty()
            && signing::verify(self.salt.as_bytes(), code.as_bytes(), hash)
    }
}

/// How a pickup code is kept: HMAC-SHA256 of the code under the salt (its
/// 32 hex characters as ASCII bytes), as 64 lower-case hex characters.
pub fn pass_hash(salt: &str, code: &str) -> String {
    signing::sign(salt.as_bytes(), code.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"agent-key";

    fn grant() -> Grant {
        let salt = "00112233445566778899aabbccddeeff".to_owned();
        Grant {
            locker_id: 3,
            item_id: 42,
            state: GrantState::Granted,
            pin_hash: pass_hash(&salt, "12345678"),
            qr_hash: pass_hash(&salt, "qr-token"),
            salt,
            expires_at: 5_000,
            max_attempts: 5,
            sig: String::new(),
        }
        .sign(KEY)
    }

    #[test]
    fn a_grant_checks_its_own_codes_only() {
        let g = grant();
        assert!(g.verify(KEY));
        assert!(g.matches(PickupMethod::Pin, "12345678"));
        assert!(g.matches(PickupMethod::Qr, "qr-token"));
        assert!(!g.matches(PickupMethod::Pin, "12345679"));
        assert!(
            !g.matches(PickupMethod::Qr, "12345678"),
            "a PIN is not a QR code"
        );
        let revoked = Grant {
            state: GrantState::Revoked,
            ..g.clone()
        };
        assert!(!revoked.matches(PickupMethod::Pin, "12345678"));
        assert!(!revoked.verify(KEY), "the state is signed");
        let later = Grant {
            expires_at: 9_000,
            ..g
        };
        assert!(!later.verify(KEY), "the expiry is signed");
    }

    #[test]
    fn entries_and_reports_are_signed_over_every_field() {
        let entry = PickupEntry::signed("e1".into(), 3, PickupMethod::Pin, "1234".into(), 7, KEY);
        assert!(entry.verify(KEY));
        assert_eq!(entry.signed_bytes(), b"pickup\ne1\n3\npin\n1234\n7");
        let other_code = PickupEntry {
            code: "1235".into(),
            ..entry.clone()
        };
        assert!(!other_code.verify(KEY));
        assert!(!entry.verify(b"other"));
        let report = OfflineCollection::signed("r1".into(), 3, 42, PickupMethod::Qr, 9, KEY);
        assert!(report.verify(KEY));
        assert_eq!(report.signed_bytes(), b"collected\nr1\n3\n42\nqr\n9");
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["method"], "pin");
        let reply = serde_json::to_string(&Reply {
            id: "e1".into(),
            ok: false,
            reason: Some(ReplyReason::WrongCode),
        })
        .unwrap();
        assert_eq!(reply, r#"{"id":"e1","ok":false,"reason":"wrong_code"}"#);
        for reason in ReplyReason::ALL {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
            assert_eq!(ReplyReason::parse(reason.as_str()), Some(reason));
        }
    }
}
