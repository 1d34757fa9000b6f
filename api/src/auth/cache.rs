//! Sessions recently found live, so an authenticated request costs no query
//! for the session behind its token. Entries are kept only while this
//! process hears every change to sessions and users: triggers raise a
//! PostgreSQL `NOTIFY` when either changes (a session ended, a role
//! changed), any notice empties the cache in every api process, and while
//! the notices are not heard nothing is cached. A process that ends a
//! session empties its own cache before answering. On SQLite nothing is
//! cached: other commands may change the file unheard.

use std::sync::Arc;
use std::time::Duration;

use locker_core::db::notices::Follower;
use locker_core::domain::User;

use crate::heard_cache::{HeardCache, Ticket};

/// The channel the triggers notify (migrations/postgres).
const CHANNEL: &str = "sessions";
/// Entries kept at most; beyond, the cache starts afresh.
const CAPACITY: usize = 10_000;
/// However well notices flow, an entry is looked up again after this.
const TTL: Duration = Duration::from_secs(60);

/// A session's user, by session id.
#[derive(Clone)]
pub struct SessionCache(Arc<HeardCache<String, (i64, User)>>);

impl Default for SessionCache {
    fn default() -> Self {
        Self(Arc::new(HeardCache::new(
            String::as_str,
            CAPACITY,
            |_, _| 1,
            TTL,
        )))
    }
}

impl SessionCache {
    /// The live session's user, if cached.
    pub fn get(&self, session_id: &str, user_id: i64) -> Option<User> {
        self.0
            .get(session_id)
            .filter(|(owner, _)| *owner == user_id)
            .map(|(_, user)| user)
    }

    /// `None` while changes are not heard: nothing may be stored.
    pub fn ticket(&self) -> Option<Ticket> {
        self.0.ticket()
    }

    /// Stores what a lookup found, unless anything changed since `ticket`.
    pub fn put(&self, ticket: Ticket, session_id: &str, user_id: i64, user: User) {
        self.0.put(ticket, session_id.to_owned(), (user_id, user));
    }

    /// Forgets everything: a session or a user changed.
    pub fn clear(&self) {
        self.0.forget_all();
    }

    /// Told of changes to sessions and users; without a listening
    /// connection (SQLite) the cache stays empty. The triggers' notices name
    /// no session: each empties the cache.
    pub fn follower(&self) -> Follower {
        self.0.follower(CHANNEL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use locker_core::db::notices::Heard;
    use locker_core::domain::Role;

    fn user(id: i64) -> User {
        User {
            id,
            name: "A".into(),
            email: "a@example.com".into(),
            role: Role::User,
            created_at: String::new(),
        }
    }

    #[test]
    fn keeps_only_what_no_change_has_overtaken() {
        let cache = SessionCache::default();
        // Not listening: nothing is kept.
        assert!(cache.ticket().is_none());
        cache.0.heard(Heard::Listening);
        let ticket = cache.ticket().unwrap();
        cache.put(ticket, "s1", 1, user(1));
        assert_eq!(cache.get("s1", 1).map(|u| u.id), Some(1));
        // Another user's token naming this session finds nothing.
        assert!(cache.get("s1", 2).is_none());

        // A lookup that began before a change is not stored after it.
        let stale = cache.ticket().unwrap();
        cache.0.heard(Heard::Notice(""));
        assert!(cache.get("s1", 1).is_none());
        cache.put(stale, "s1", 1, user(1));
        assert!(cache.get("s1", 1).is_none());

        // Lost notices: emptied, and nothing kept until listening again.
        cache.put(cache.ticket().unwrap(), "s2", 1, user(1));
        cache.0.heard(Heard::Lost);
        assert!(cache.get("s2", 1).is_none());
        assert!(cache.ticket().is_none());
    }
}
