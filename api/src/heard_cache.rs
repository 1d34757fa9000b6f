//! Answers kept while this process hears every change to what they were
//! read from. PostgreSQL triggers raise a `NOTIFY` on commit; each notice
//! makes every api process forget what it concerns; while notices are not
//! heard (on SQLite, which other commands may change unheard, or while the
//! listening connection is lost) nothing is kept. A lookup takes a
//! [`Ticket`] before reading and may store its answer only if nothing was
//! forgotten in its scope since (a place, say: a lookup at one place is
//! not refused because another changed), so an answer read before a change
//! is never kept after the change is heard.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use locker_core::db::notices::{Follower, Heard};

pub struct HeardCache<K, V> {
    inner: RwLock<Inner<K, V>>,
    /// The scope a key belongs to: what a notice names (a place, say).
    scope_of: fn(&K) -> &str,
    /// What the entries may weigh together; beyond, the cache starts afresh.
    budget: usize,
    /// An entry's weight, its key's included: keys a caller chooses must
    /// not pile up beside small answers.
    weigh: fn(&K, &V) -> usize,
    /// However well notices flow, an entry is read again after this.
    ttl: Duration,
}

/// Scopes remembered as forgotten at most; beyond, lookups under way are
/// all refused once and the list starts afresh.
const SCOPES: usize = 4_096;

struct Inner<K, V> {
    listening: bool,
    /// Counts the forgettings; a ticket is its value when taken.
    clock: u64,
    /// When everything was last forgotten.
    all_since: u64,
    /// When each scope was last forgotten, if since `all_since`: a lookup
    /// in one scope is not refused because another changed.
    scopes: HashMap<String, u64>,
    weight: usize,
    entries: HashMap<K, (V, Instant)>,
}

impl<K, V> Inner<K, V> {
    fn forget_all(&mut self) {
        self.clock += 1;
        self.all_since = self.clock;
        self.scopes.clear();
        self.entries.clear();
        self.weight = 0;
    }
}

/// Taken before a lookup; storing its answer needs it.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl<K: Hash + Eq, V: Clone> HeardCache<K, V> {
    pub fn new(
        scope_of: fn(&K) -> &str,
        budget: usize,
        weigh: fn(&K, &V) -> usize,
        ttl: Duration,
    ) -> Self {
        Self {
            inner: RwLock::new(Inner {
                listening: false,
                clock: 0,
                all_since: 0,
                scopes: HashMap::new(),
                weight: 0,
                entries: HashMap::new(),
            }),
            scope_of,
            budget,
            weigh,
            ttl,
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = self.inner.read().expect("heard cache");
        if !inner.listening {
            return None;
        }
        inner
            .entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(value, _)| value.clone())
    }

    /// `None` while changes are not heard: nothing may be stored.
    pub fn ticket(&self) -> Option<Ticket> {
        let inner = self.inner.read().expect("heard cache");
        inner.listening.then_some(Ticket(inner.clock))
    }

    /// Stores what a lookup found, unless its scope was forgotten since
    /// `ticket`.
    pub fn put(&self, ticket: Ticket, key: K, value: V) {
        let weight = (self.weigh)(&key, &value);
        let mut inner = self.inner.write().expect("heard cache");
        let overtaken = ticket.0 < inner.all_since
            || inner
                .scopes
                .get((self.scope_of)(&key))
                .is_some_and(|&at| ticket.0 < at);
        if !inner.listening || overtaken || weight > self.budget {
            return;
        }
        if let Some((old, _)) = inner.entries.remove(&key) {
            inner.weight -= (self.weigh)(&key, &old);
        }
        if inner.weight + weight > self.budget {
            inner.entries.clear();
            inner.weight = 0;
        }
        inner.weight += weight;
        inner.entries.insert(key, (value, Instant::now()));
    }

    /// Forgets every entry; lookups under way may not store.
    pub fn forget_all(&self) {
        self.inner.write().expect("heard cache").forget_all();
    }

    /// Forgets the entries of one scope; lookups under way in it may not
    /// store.
    fn forget_scope(&self, scope: &str) {
        let mut inner = self.inner.write().expect("heard cache");
        if inner.scopes.len() >= SCOPES {
            inner.scopes.clear();
            inner.all_since = inner.clock + 1;
        }
        inner.clock += 1;
        let now = inner.clock;
        inner.scopes.insert(scope.to_owned(), now);
        let (scope_of, weigh) = (self.scope_of, self.weigh);
        let mut shed = 0;
        inner.entries.retain(|key, (value, _)| {
            let gone = scope_of(key) == scope;
            if gone {
                shed += weigh(key, value);
            }
            !gone
        });
        inner.weight -= shed;
    }

    /// What is heard on the channel: a notice names the scope that changed,
    /// or with an empty payload every scope; listening (again) or not,
    /// what was kept may have changed unheard.
    pub fn heard(&self, heard: Heard<'_>) {
        match heard {
            Heard::Notice("") => self.forget_all(),
            Heard::Notice(scope) => self.forget_scope(scope),
            Heard::Listening | Heard::Lost => {
                let mut inner = self.inner.write().expect("heard cache");
                inner.forget_all();
                inner.listening = heard == Heard::Listening;
            }
        }
    }
}

impl<K, V> HeardCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Told what is heard on `channel`. Without a listening connection
    /// (SQLite) nothing is ever kept.
    pub fn follower(self: &Arc<Self>, channel: &'static str) -> Follower {
        let cache = self.clone();
        Follower::new(channel, move |heard| cache.heard(heard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys are "scope/name".
    const SCOPE_OF: fn(&String) -> &str = |key| key.split('/').next().unwrap_or_default();

    fn cache(budget: usize) -> HeardCache<String, String> {
        let weigh = |_: &String, value: &String| value.len();
        HeardCache::new(SCOPE_OF, budget, weigh, Duration::from_secs(60))
    }

    #[test]
    fn keeps_only_what_no_change_has_overtaken() {
        let cache = cache(100);
        // Not listening: nothing is kept.
        assert!(cache.ticket().is_none());
        cache.heard(Heard::Listening);
        cache.put(cache.ticket().unwrap(), "a/1".into(), "one".into());
        assert_eq!(cache.get("a/1").as_deref(), Some("one"));

        // A lookup that began before a change to its scope is not stored
        // after it; one in another scope is.
        let (b, c) = (cache.ticket().unwrap(), cache.ticket().unwrap());
        cache.forget_scope("b");
        cache.put(b, "b/1".into(), "two".into());
        assert!(cache.get("b/1").is_none());
        cache.put(c, "c/1".into(), "three".into());
        assert_eq!(cache.get("c/1").as_deref(), Some("three"));
        // What the change did not concern stays.
        assert_eq!(cache.get("a/1").as_deref(), Some("one"));
        cache.forget_scope("a");
        assert!(cache.get("a/1").is_none());
        assert!(cache.get("c/1").is_some());

        // Everything forgotten: no lookup under way may store.
        let d = cache.ticket().unwrap();
        cache.forget_all();
        assert!(cache.get("c/1").is_none());
        cache.put(d, "d/1".into(), "four".into());
        assert!(cache.get("d/1").is_none());

        // Lost notices: emptied, and nothing kept until listening again.
        cache.put(cache.ticket().unwrap(), "a/1".into(), "one".into());
        cache.heard(Heard::Lost);
        assert!(cache.get("a/1").is_none());
        assert!(cache.ticket().is_none());
        cache.heard(Heard::Listening);
        assert!(cache.get("a/1").is_none());
    }

    #[test]
    fn keys_weigh_too() {
        // Empty answers under long keys, as for places that do not exist.
        let weigh = |key: &String, value: &String| key.len() + value.len();
        let cache = HeardCache::new(SCOPE_OF, 10, weigh, Duration::from_secs(60));
        cache.heard(Heard::Listening);
        cache.put(cache.ticket().unwrap(), "a/12345".into(), String::new());
        cache.put(cache.ticket().unwrap(), "b/12345".into(), String::new());
        assert!(cache.get("a/12345").is_none());
        assert!(cache.get("b/12345").is_some());
    }

    #[test]
    fn remembers_a_bounded_number_of_forgotten_scopes() {
        let cache = cache(100);
        cache.heard(Heard::Listening);
        let before = cache.ticket().unwrap();
        for n in 0..=SCOPES {
            cache.forget_scope(&n.to_string());
        }
        // The oldest scopes are no longer told apart: a lookup that began
        // before them is refused whatever its scope.
        cache.put(before, "x/1".into(), "one".into());
        assert!(cache.get("x/1").is_none());
        cache.put(cache.ticket().unwrap(), "x/1".into(), "one".into());
        assert!(cache.get("x/1").is_some());
    }

    #[test]
    fn stays_within_its_budget() {
        let cache = cache(10);
        cache.heard(Heard::Listening);
        cache.put(cache.ticket().unwrap(), "a/1".into(), "123456".into());
        // Replacing an entry counts only the new answer.
        cache.put(cache.ticket().unwrap(), "a/1".into(), "1234".into());
        cache.put(cache.ticket().unwrap(), "b/1".into(), "123456".into());
        assert!(cache.get("a/1").is_some() && cache.get("b/1").is_some());
        // Past the budget the cache starts afresh.
        cache.put(cache.ticket().unwrap(), "c/1".into(), "12".into());
        assert!(cache.get("a/1").is_none() && cache.get("b/1").is_none());
        assert!(cache.get("c/1").is_some());
        // An answer heavier than the whole budget is not kept.
        cache.put(cache.ticket().unwrap(), "d/1".into(), "12345678901".into());
        assert!(cache.get("d/1").is_none());
    }
}
