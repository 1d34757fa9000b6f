//! Pickups at the agent's own lockers while the site is offline
//! (docs/mqtt-protocol.md, "Pickup while offline"): the grants the server
//! sent (a stored item's salted PIN and QR hashes and its deadline), the
//! wrong codes tried against each, and the collections let through and not
//! yet acknowledged by the server. All of it is kept across restarts when
//! there is a state file, and written before a latch is released.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use locker_protocol::{Grant, GrantState, OfflineCollection, PickupMethod};
use locker_runtime::Millis;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};

use crate::kept;

/// Why a code entered offline opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineRefusal {
    /// No grant for the locker, revoked, or past its deadline.
    NothingToCollect,
    WrongCode,
    /// The grant's wrong-code allowance is spent: nothing opens offline
    /// until the server is reachable again.
    TooManyTries,
}

impl OfflineRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NothingToCollect => "nothing_to_collect",
            Self::WrongCode => "wrong_code",
            Self::TooManyTries => "too_many_tries",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    /// The latest grant received for each locker (a revocation included).
    grants: HashMap<i64, Grant>,
    /// Wrong codes tried offline against each locker's current grant.
    failures: HashMap<i64, i64>,
    /// Collections let through offline and not yet answered by the server.
    reports: Vec<OfflineCollection>,
}

pub struct Pickups {
    key: SecretSlice<u8>,
    lockers: HashSet<i64>,
    kept: Kept,
    file: Option<PathBuf>,
}

impl Pickups {
    /// Reads what an earlier run kept from `file` (a missing file is a
    /// first start).
    pub fn new(
        key: &[u8],
        lockers: impl IntoIterator<Item = i64>,
        file: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            key: SecretSlice::from(key.to_vec()),
            lockers: lockers.into_iter().collect(),
            kept: kept::load(file.as_deref())?,
            file,
        })
    }

    /// Takes a grant from the server when it is genuine, for one of our
    /// lockers, and not older than what we hold: a later item's grant
    /// replaces an earlier one, a revocation is final for its item, and a
    /// grant again for the same item (a moved deadline) replaces it.
    pub fn on_grant(&mut self, grant: Grant) -> std::io::Result<bool> {
        if !grant.verify(self.key.expose_secret()) || !self.lockers.contains(&grant.locker_id) {
            return Ok(false);
        }
        let newer = match self.kept.grants.get(&grant.locker_id) {
            None => true,
            Some(held) if grant.item_id > held.item_id => true,
            Some(held) => grant.item_id == held.item_id && held.state == GrantState::Granted,
        };
        if !newer {
            return Ok(false);
        }
        let other_item = self
            .kept
            .grants
            .get(&grant.locker_id)
            .is_none_or(|held| held.item_id != grant.item_id);
        if other_item {
            self.kept.failures.remove(&grant.locker_id);
        }
        self.kept.grants.insert(grant.locker_id, grant);
        self.save()?;
        Ok(true)
    }

    /// Checks a code entered at `locker_id` against its grant. Right: the
    /// grant is spent and the collection recorded (durably) before the
    /// caller releases the latch; it is returned for reporting.
    pub fn check_offline(
        &mut self,
        locker_id: i64,
        method: PickupMethod,
        code: &str,
        now: Millis,
        report_id: String,
    ) -> std::io::Result<Result<OfflineCollection, OfflineRefusal>> {
        let Some(grant) = self.kept.grants.get_mut(&locker_id) else {
            return Ok(Err(OfflineRefusal::NothingToCollect));
        };
        if grant.state != GrantState::Granted || now > grant.expires_at {
            return Ok(Err(OfflineRefusal::NothingToCollect));
        }
        let failures = self.kept.failures.entry(locker_id).or_default();
        if *failures >= grant.max_attempts {
            return Ok(Err(OfflineRefusal::TooManyTries));
        }
        if !grant.matches(method, code) {
            *failures += 1;
            self.save()?;
            return Ok(Err(OfflineRefusal::WrongCode));
        }
        let report = OfflineCollection::signed(
            report_id,
            locker_id,
            grant.item_id,
            method,
            now,
            self.key.expose_secret(),
        );
        // Spent: the same code never opens the door again offline.
        grant.state = GrantState::Revoked;
        self.kept.failures.remove(&locker_id);
        self.kept.reports.push(report.clone());
        self.save()?;
        Ok(Ok(report))
    }

    /// Takes back a collection whose latch did not release.
    pub fn not_collected(&mut self, report: &OfflineCollection) -> std::io::Result<()> {
        self.kept.reports.retain(|r| r.id != report.id);
        if let Some(grant) = self.kept.grants.get_mut(&report.locker_id)
            && grant.item_id == report.item_id
            && grant.verify(self.key.expose_secret())
        {
            // Still the server's signed grant: usable again.
            grant.state = GrantState::Granted;
        }
        self.save()
    }

    /// Collections not yet answered, in the order they happened.
    pub fn unreported(&self) -> &[OfflineCollection] {
        &self.kept.reports
    }

    /// The server answered a collection: it need not be sent again.
    pub fn reported(&mut self, id: &str) -> std::io::Result<bool> {
        let before = self.kept.reports.len();
        self.kept.reports.retain(|r| r.id != id);
        if self.kept.reports.len() == before {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    fn save(&self) -> std::io::Result<()> {
        kept::save(self.file.as_deref(), &self.kept)
    }
}

#[cfg(test)]
mod tests {
    use locker_protocol::pass_hash;

    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const SALT: &str = "00112233445566778899aabbccddeeff";

    fn grant(item_id: i64, state: GrantState, expires_at: Millis) -> Grant {
        let granted = state == GrantState::Granted;
        let or_empty = |s: String| if granted { s } else { String::new() };
        Grant {
            locker_id: 3,
            item_id,
            state,
            salt: or_empty(SALT.into()),
            pin_hash: or_empty(pass_hash(SALT, &format!("pin-{item_id}"))),
            qr_hash: or_empty(pass_hash(SALT, "qr")),
            expires_at,
            max_attempts: 3,
            sig: String::new(),
        }
        .sign(KEY)
    }

    fn pickups() -> Pickups {
        Pickups::new(KEY, [3], None).unwrap()
    }

    fn try_pin(
        p: &mut Pickups,
        pin: &str,
        now: Millis,
    ) -> Result<OfflineCollection, OfflineRefusal> {
        p.check_offline(3, PickupMethod::Pin, pin, now, format!("r-{now}"))
            .unwrap()
    }

    #[test]
    fn a_right_pin_opens_once_and_is_reported() {
        let mut p = pickups();
        assert!(p.on_grant(grant(7, GrantState::Granted, 1_000)).unwrap());
        let report = try_pin(&mut p, "pin-7", 500).unwrap();
        assert_eq!((report.item_id, report.locker_id), (7, 3));
        assert!(report.verify(KEY));
        assert_eq!(
            try_pin(&mut p, "pin-7", 600),
            Err(OfflineRefusal::NothingToCollect)
        );
        assert_eq!(p.unreported().len(), 1);
        assert!(p.reported(&report.id).unwrap());
        assert!(p.unreported().is_empty());
    }

    #[test]
    fn forged_stale_and_foreign_grants_are_ignored() {
        let mut p = pickups();
        let mut forged = grant(7, GrantState::Granted, 1_000);
        forged.expires_at = 9_000;
        assert!(!p.on_grant(forged).unwrap());
        let foreign = Grant {
            locker_id: 4,
            ..grant(7, GrantState::Granted, 1_000)
        }
        .sign(KEY);
        assert!(!p.on_grant(foreign).unwrap());
        assert!(p.on_grant(grant(7, GrantState::Revoked, 0)).unwrap());
        assert!(
            !p.on_grant(grant(7, GrantState::Granted, 1_000)).unwrap(),
            "a revoked item is never granted again"
        );
        assert!(!p.on_grant(grant(6, GrantState::Granted, 1_000)).unwrap());
        assert_eq!(
            try_pin(&mut p, "pin-7", 500),
            Err(OfflineRefusal::NothingToCollect)
        );
        assert!(p.on_grant(grant(8, GrantState::Granted, 1_000)).unwrap());
        assert!(try_pin(&mut p, "pin-8", 500).is_ok());
    }

    #[test]
    fn wrong_codes_are_limited_and_deadlines_kept() {
        let mut p = pickups();
        p.on_grant(grant(7, GrantState::Granted, 1_000)).unwrap();
        assert_eq!(
            try_pin(&mut p, "pin-7", 1_001),
            Err(OfflineRefusal::NothingToCollect)
        );
        for _ in 0..3 {
            assert_eq!(try_pin(&mut p, "nope", 500), Err(OfflineRefusal::WrongCode));
        }
        assert_eq!(
            try_pin(&mut p, "pin-7", 500),
            Err(OfflineRefusal::TooManyTries)
        );
        // A later deadline for the same item keeps the count.
        p.on_grant(grant(7, GrantState::Granted, 2_000)).unwrap();
        assert_eq!(
            try_pin(&mut p, "pin-7", 500),
            Err(OfflineRefusal::TooManyTries)
        );
    }

    #[test]
    fn what_is_kept_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pickups.json");
        let mut p = Pickups::new(KEY, [3], Some(file.clone())).unwrap();
        p.on_grant(grant(7, GrantState::Granted, 1_000)).unwrap();
        let report = try_pin(&mut p, "pin-7", 500).unwrap();
        drop(p);
        let mut again = Pickups::new(KEY, [3], Some(file)).unwrap();
        assert_eq!(again.unreported(), [report]);
        assert_eq!(
            try_pin(&mut again, "pin-7", 600),
            Err(OfflineRefusal::NothingToCollect)
        );
    }
}
