//! Which unlock commands an agent executes: signed with its key, not yet
//! expired, never executed before, for a locker it drives.

use std::collections::{HashMap, HashSet};

use locker_protocol::{AckReason, Command};
use locker_runtime::Millis;
use secrecy::{ExposeSecret, SecretSlice};

/// How long an executed command's id is remembered past its expiry. After
/// expiry the command is refused as expired anyway; the margin covers a
/// clock that is set back a little.
const REMEMBER_PAST_EXPIRY: Millis = 3_600_000;

pub struct CommandCheck {
    key: SecretSlice<u8>,
    lockers: HashSet<i64>,
    /// Commands executed, by id, with their expiry.
    executed: HashMap<String, Millis>,
}

impl CommandCheck {
    pub fn new(key: &[u8], lockers: impl IntoIterator<Item = i64>) -> Self {
        Self {
            key: SecretSlice::from(key.to_vec()),
            lockers: lockers.into_iter().collect(),
            executed: HashMap::new(),
        }
    }

    /// Whether `command` may be executed now; the reason to refuse it if not.
    pub fn admit(&self, command: &Command, now: Millis) -> Result<(), AckReason> {
        if !command.verify(self.key.expose_secret()) {
            return Err(AckReason::BadSignature);
        }
        if now > command.expires_at {
            return Err(AckReason::Expired);
        }
        if self.executed.contains_key(&command.id) {
            return Err(AckReason::Replayed);
        }
        if !self.lockers.contains(&command.locker_id) {
            return Err(AckReason::UnknownLocker);
        }
        Ok(())
    }

    /// Records `command` executed, so a copy of it is refused as replayed.
    pub fn executed(&mut self, command: &Command, now: Millis) {
        self.executed
            .retain(|_, expires| *expires > now - REMEMBER_PAST_EXPIRY);
        self.executed.insert(command.id.clone(), command.expires_at);
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
        CommandCheck::new(KEY, [7, 8])
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
    }

    #[test]
    fn an_expired_command_is_refused_and_one_at_its_expiry_is_not() {
        let c = command("c1", 7, NOW);
        assert_eq!(check().admit(&c, NOW), Ok(()));
        assert_eq!(check().admit(&c, NOW + 1), Err(AckReason::Expired));
    }

    #[test]
    fn an_executed_command_is_refused_as_replayed_until_it_expires() {
        let mut check = check();
        let c = command("c1", 7, NOW + 30_000);
        check.executed(&c, NOW);
        assert_eq!(check.admit(&c, NOW + 10), Err(AckReason::Replayed));
        assert_eq!(check.admit(&c, NOW + 30_001), Err(AckReason::Expired));
        // Another command for the same door is a different matter.
        assert_eq!(check.admit(&command("c2", 7, NOW + 30_000), NOW), Ok(()));
    }

    #[test]
    fn ids_are_remembered_while_their_command_could_still_pass() {
        let mut check = check();
        let early = command("early", 7, NOW + 30_000);
        check.executed(&early, NOW);
        // Long after `early` expired, executing another prunes it, but not
        // before the margin past its expiry.
        check.executed(
            &command("later", 7, NOW + 40_000),
            NOW + 30_000 + REMEMBER_PAST_EXPIRY - 1,
        );
        assert!(check.executed.contains_key("early"));
        check.executed(
            &command("last", 7, NOW + 50_000),
            NOW + 30_000 + REMEMBER_PAST_EXPIRY,
        );
        assert!(!check.executed.contains_key("early"));
        assert!(check.executed.contains_key("later"));
    }

    #[test]
    fn a_command_for_a_locker_we_do_not_drive_is_refused() {
        assert_eq!(
            check().admit(&command("c1", 9, NOW + 30_000), NOW),
            Err(AckReason::UnknownLocker)
        );
    }
}
