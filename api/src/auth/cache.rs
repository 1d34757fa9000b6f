//! Sessions recently found live, so an authenticated request costs no query
//! for the session behind its token. Entries are kept only while this
//! process hears every change to sessions and users: triggers raise a
//! PostgreSQL `NOTIFY` when either changes (a session ended, a role
//! changed), any notice empties the cache in every api process, and while
//! the notices are not heard nothing is cached. A process that ends a
//! session empties its own cache before answering. On SQLite nothing is
//! cached: other commands may change the file unheard.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use locker_core::db::notices::{self, Heard};
use locker_core::domain::User;
use tokio_util::sync::CancellationToken;

/// The channel the triggers notify (migrations/postgres).
const CHANNEL: &str = "sessions";
/// Entries kept at most; beyond, the cache starts afresh.
const CAPACITY: usize = 10_000;
/// However well notices flow, an entry is looked up again after this.
const TTL: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
pub struct SessionCache(Arc<RwLock<Inner>>);

#[derive(Default)]
struct Inner {
    /// Every change is heard: entries may be kept.
    listening: bool,
    /// Moves on at every change, so a lookup that began before one is not
    /// stored after it.
    generation: u64,
    entries: HashMap<String, Entry>,
}

impl Inner {
    fn forget(&mut self) {
        self.generation += 1;
        self.entries.clear();
    }
}

struct Entry {
    user_id: i64,
    user: User,
    at: Instant,
}

/// Taken before looking a session up; storing the answer needs it.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl SessionCache {
    /// The live session's user, if cached.
    pub fn get(&self, session_id: &str, user_id: i64) -> Option<User> {
        let inner = self.0.read().expect("session cache");
        if !inner.listening {
            return None;
        }
        inner
            .entries
            .get(session_id)
            .filter(|e| e.user_id == user_id && e.at.elapsed() < TTL)
            .map(|e| e.user.clone())
    }

    /// `None` while changes are not heard: nothing may be stored.
    pub fn ticket(&self) -> Option<Ticket> {
        let inner = self.0.read().expect("session cache");
        inner.listening.then_some(Ticket(inner.generation))
    }

    /// Stores what a lookup found, unless anything changed since `ticket`.
    pub fn put(&self, ticket: Ticket, session_id: &str, user_id: i64, user: User) {
        let mut inner = self.0.write().expect("session cache");
        if !inner.listening || inner.generation != ticket.0 {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
        }
        let entry = Entry {
            user_id,
            user,
            at: Instant::now(),
        };
        inner.entries.insert(session_id.to_owned(), entry);
    }

    /// Forgets everything: a session or a user changed.
    pub fn clear(&self) {
        self.0.write().expect("session cache").forget();
    }

    fn heard(&self, heard: Heard) {
        let mut inner = self.0.write().expect("session cache");
        inner.forget();
        inner.listening = heard != Heard::Lost;
    }

    /// Hears changes at `url` (PostgreSQL) until `shutdown`; without it the
    /// cache stays empty.
    pub async fn follow(self, url: Option<String>, shutdown: CancellationToken) {
        let Some(url) = url else {
            return;
        };
        notices::follow(
            url,
            CHANNEL,
            "database notices (sessions)",
            shutdown,
            move |heard| self.heard(heard),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        cache.heard(Heard::Listening);
        let ticket = cache.ticket().unwrap();
        cache.put(ticket, "s1", 1, user(1));
        assert_eq!(cache.get("s1", 1).map(|u| u.id), Some(1));
        // Another user's token naming this session finds nothing.
        assert!(cache.get("s1", 2).is_none());

        // A lookup that began before a change is not stored after it.
        let stale = cache.ticket().unwrap();
        cache.heard(Heard::Notice);
        assert!(cache.get("s1", 1).is_none());
        cache.put(stale, "s1", 1, user(1));
        assert!(cache.get("s1", 1).is_none());

        // Lost notices: emptied, and nothing kept until listening again.
        cache.put(cache.ticket().unwrap(), "s2", 1, user(1));
        cache.heard(Heard::Lost);
        assert!(cache.get("s2", 1).is_none());
        assert!(cache.ticket().is_none());
    }
}
