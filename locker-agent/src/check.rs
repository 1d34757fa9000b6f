//! Which unlock commands an agent executes, in the order the protocol gives
//! (docs/mqtt-protocol.md, "Checking a command"): signed with its key, of a
//! known type, for a locker it drives, never executed before, issued by a
//! clock close to its own, not yet expired.
//!
//! Executed ids are remembered until [`CLOCK_ALLOWANCE_MS`] past their
//! command's expiry, and, with a state file, across restarts: every copy of a
//! command carries the same times, so once its id is forgotten every copy is
//! refused as expired.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use locker_protocol::{AckReason, CLOCK_ALLOWANCE_MS, Command};
use locker_runtime::Millis;
use secrecy::{ExposeSecret, SecretSlice};

use crate::kept;

pub struct CommandCheck {
    key: SecretSlice<u8>,
    lockers: HashSet<i64>,
    /// Commands executed, by id, with their expiry.
    executed: HashMap<String, Millis>,
    /// Where `executed` is kept across restarts.
    state_file: Option<PathBuf>,
}

impl CommandCheck {
    /// Reads what an earlier run executed from `state_file` (a missing file
    /// is a first start).
    pub fn new(
        key: &[u8],
        lockers: impl IntoIterator<Item = i64>,
        state_file: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            executed: kept::load(state_file.as_deref())?,
            key: SecretSlice::from(key.to_vec()),
            lockers: lockers.into_iter().collect(),
            state_file,
        })
    }

    /// Whether `command` may be executed now; the reason to refuse it if not.
    pub fn admit(&self, command: &Command, now: Millis) -> Result<(), AckReason> {
        if !command.verify(self.key.expose_secret()) {
            return Err(AckReason::BadSignature);
        }
        if command.command_kind().is_none() {
            return Err(AckReason::UnsupportedType);
        }
        if !self.lockers.contains(&command.locker_id) {
            return Err(AckReason::UnknownLocker);
        }
        if self.executed.contains_key(&command.id) {
            return Err(AckReason::Replayed);
        }
        if command.issued_at > now + CLOCK_ALLOWANCE_MS {
            return Err(AckReason::ClockSkew);
        }
        if now > command.expires_at {
            return Err(AckReason::Expired);
        }
        Ok(())
    }

    /// Records `command` as executed, durably when there is a state file:
    /// called before the latch is released, so a crash in between leaves a
    /// door shut rather than one that could open twice.
    pub fn executed(&mut self, command: &Command, now: Millis) -> std::io::Result<()> {
        self.executed
            .retain(|_, expires| *expires + CLOCK_ALLOWANCE_MS >= now);
        self.executed.insert(command.id.clone(), command.expires_at);
        self.save()
    }

    /// Takes back a command whose latch did not release: nothing happened, so
    /// a copy of it may try again.
    pub fn not_executed(&mut self, command: &Command) -> std::io::Result<()> {
        self.executed.remove(&command.id);
        self.save()
    }

    fn save(&self) -> std::io::Result<()> {
        kept::save(self.state_file.as_deref(), &self.executed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: Millis = 1_000_000;

    fn command(id: &str, locker: i64, expires_at: Millis) -> Command {
        Command::signed(id.into(), locker, NOW - 1_000, expires_at, KEY)
    }

    fn check() -> CommandCheck {
        CommandCheck::new(KEY, [7, 8], None).unwrap()
    }

    #[test]
    fn a_genuine_live_command_for_our_locker_is_admitted() {
        assert_eq!(check().admit(&command("c1", 7, NOW + 30_000), NOW), Ok(()));
    }

    #[test]
    fn a_command_signed_with_another_key_is_refused() {
        let forged = Command::signed("c1".into(), 7, NOW, NOW + 30_000, b"another key");
        assert_eq!(check().admit(&forged, NOW), Err(AckReason::BadSignature));
    }

    #[test]
    fn a_tampered_command_is_refused() {
        let mut tampered = command("c1", 7, NOW + 30_000);
        tampered.expires_at += 60_000;
        assert_eq!(check().admit(&tampered, NOW), Err(AckReason::BadSignature));
        let mut moved = command("c1", 7, NOW + 30_000);
        moved.locker_id = 8;
        assert_eq!(check().admit(&moved, NOW), Err(AckReason::BadSignature));
        let mut retyped = command("c1", 7, NOW + 30_000);
        retyped.kind = "lock".into();
        assert_eq!(check().admit(&retyped, NOW), Err(AckReason::BadSignature));
    }

    #[test]
    fn an_unknown_type_is_refused_once_its_signature_holds() {
        let mut other = command("c1", 7, NOW + 30_000);
        other.kind = "self_destruct".into();
        other.sig = locker_protocol::signing::sign(KEY, &other.signed_bytes());
        assert_eq!(check().admit(&other, NOW), Err(AckReason::UnsupportedType));
    }

    #[test]
    fn an_expired_command_is_refused_and_one_at_its_expiry_is_not() {
        let c = command("c1", 7, NOW);
        assert_eq!(check().admit(&c, NOW), Ok(()));
        assert_eq!(check().admit(&c, NOW + 1), Err(AckReason::Expired));
    }

    #[test]
    fn a_command_from_a_clock_far_ahead_is_refused() {
        let ahead = Command::signed(
            "c1".into(),
            7,
            NOW + CLOCK_ALLOWANCE_MS + 1,
            NOW + 60_000,
            KEY,
        );
        assert_eq!(check().admit(&ahead, NOW), Err(AckReason::ClockSkew));
        let near = Command::signed("c2".into(), 7, NOW + CLOCK_ALLOWANCE_MS, NOW + 60_000, KEY);
        assert_eq!(check().admit(&near, NOW), Ok(()));
    }

    #[test]
    fn an_executed_command_is_a_replay_until_well_past_its_expiry() {
        let mut check = check();
        let c = command("c1", 7, NOW + 30_000);
        check.executed(&c, NOW).unwrap();
        assert_eq!(check.admit(&c, NOW + 10), Err(AckReason::Replayed));
        // Past its expiry, a copy of it is still known for what it is.
        assert_eq!(check.admit(&c, NOW + 30_001), Err(AckReason::Replayed));
        // Another command for the same door is a different matter.
        assert_eq!(check.admit(&command("c2", 7, NOW + 30_000), NOW), Ok(()));
    }

    #[test]
    fn ids_are_forgotten_only_once_every_copy_is_refused_as_expired() {
        let mut check = check();
        let early = command("early", 7, NOW + 30_000);
        check.executed(&early, NOW).unwrap();
        let forget_after = NOW + 30_000 + CLOCK_ALLOWANCE_MS;
        check
            .executed(&command("later", 7, forget_after + 60_000), forget_after)
            .unwrap();
        assert!(check.executed.contains_key("early"));
        check
            .executed(&command("last", 7, forget_after + 60_000), forget_after + 1)
            .unwrap();
        assert!(!check.executed.contains_key("early"));
        assert_eq!(
            check.admit(&early, forget_after + 1),
            Err(AckReason::Expired)
        );
    }

    #[test]
    fn what_was_executed_survives_a_restart_with_a_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("executed.json");
        let c = command("c1", 7, NOW + 30_000);
        let mut first = CommandCheck::new(KEY, [7], Some(path.clone())).unwrap();
        first.executed(&c, NOW).unwrap();
        drop(first);
        let restarted = CommandCheck::new(KEY, [7], Some(path)).unwrap();
        assert_eq!(restarted.admit(&c, NOW + 5), Err(AckReason::Replayed));
    }

    #[test]
    fn a_command_for_a_locker_we_do_not_drive_is_refused() {
        assert_eq!(
            check().admit(&command("c1", 9, NOW + 30_000), NOW),
            Err(AckReason::UnknownLocker)
        );
    }
}
