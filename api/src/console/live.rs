//! Live pages: every change to lockers, doors, agents, items and failed
//! unlocks is told to the open pages as a server-sent event, and each page
//! fetches its live parts again. Across api processes on PostgreSQL the
//! changes are heard as notices (`LISTEN console`); SQLite, one process by
//! design, is polled for a fingerprint of the same tables while a page
//! watches.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use locker_core::Db;
use locker_core::db::notices::Follower;
use locker_core::store::overview;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::session::Operator;
use crate::state::AppState;

const CHANNEL: &str = "console";
/// How often SQLite is looked at while a page watches.
const POLL: Duration = Duration::from_millis(400);
/// Changes this close together reach a page as one.
const COALESCE: Duration = Duration::from_millis(100);

/// Counts the changes heard; pages watch the count.
#[derive(Clone)]
pub struct Changes {
    seen: Arc<watch::Sender<u64>>,
    /// Ends every open stream, so a shutdown need not wait for pages.
    closed: CancellationToken,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            seen: Arc::new(watch::Sender::new(0)),
            closed: CancellationToken::new(),
        }
    }
}

impl Changes {
    fn bump(&self) {
        self.seen.send_modify(|n| *n += 1);
    }

    /// Ends the streams of open pages.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Told of changes on PostgreSQL. Listening again after a loss counts
    /// as a change: what happened meanwhile was not heard.
    pub fn follower(&self) -> Follower {
        let changes = self.clone();
        Follower::new(CHANNEL, move |_| changes.bump())
    }

    /// Looks for changes until `shutdown` where nothing announces them
    /// (SQLite).
    pub async fn poll(&self, db: Db, shutdown: CancellationToken) {
        let mut last: Option<String> = None;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if self.seen.receiver_count() == 0 {
                last = None;
                continue;
            }
            match overview::fingerprint(db.pool()).await {
                // The first look after a page began watching counts as a
                // change too: whatever changed before it was not seen.
                Ok(now) => {
                    if last.as_ref() != Some(&now) {
                        self.bump();
                    }
                    last = Some(now);
                }
                Err(error) => tracing::warn!(%error, "console cannot look for changes"),
            }
        }
    }
}

/// `GET /console/events`: `ready` once, then `change` after each change.
pub async fn events(
    State(state): State<AppState>,
    _operator: Operator,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut seen = state.changes.seen.subscribe();
    seen.mark_unchanged();
    let closed = state.changes.closed.clone();
    let ready = futures::stream::once(async { Ok(Event::default().event("ready").data("live")) });
    let changes = futures::stream::unfold((seen, closed), |(mut seen, closed)| async move {
        tokio::select! {
            () = closed.cancelled() => None,
            changed = seen.changed() => {
                changed.ok()?;
                tokio::time::sleep(COALESCE).await;
                seen.mark_unchanged();
                let event = Event::default().event("change").data(seen.borrow().to_string());
                Some((Ok(event), (seen, closed)))
            }
        }
    });
    Sse::new(futures::StreamExt::chain(ready, changes)).keep_alive(KeepAlive::default())
}
