//! Doors: the [`Door`] trait a driver implements, and the simulated doors the
//! tests and the development stack use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use locker_protocol::DoorEventKind;
use locker_runtime::Clock;
use tokio::sync::mpsc;

/// Something a door did, to be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorSignal {
    pub locker_id: i64,
    pub kind: DoorEventKind,
    /// The command whose unlock let the door open.
    pub command_id: Option<String>,
    pub at: i64,
}

/// A door driver. `unlock` releases the latch; what the door then does
/// (opens, closes, stays open) comes back as [`DoorSignal`]s on the channel
/// the driver was built with.
pub trait Door: Send + Sync + 'static {
    fn unlock(&self, locker_id: i64, command_id: &str) -> Result<(), String>;
}

/// Doors that open on unlock and close after a dwell; tests can hold a door
/// open or close it themselves. A door open longer than `left_open_after`
/// reports `door_left_open`.
#[derive(Clone)]
pub struct SimulatedDoors {
    inner: Arc<Inner>,
}

struct Inner {
    signals: mpsc::UnboundedSender<DoorSignal>,
    clock: Arc<dyn Clock>,
    /// `None`: doors stay open until [`SimulatedDoors::close`].
    dwell: Option<Duration>,
    left_open_after: Duration,
    doors: Mutex<HashMap<i64, SimDoor>>,
}

#[derive(Default)]
struct SimDoor {
    open: bool,
    command_id: Option<String>,
    /// Bumped at every opening, so timers of an earlier opening do nothing.
    opening: u64,
    jammed: bool,
}

impl SimulatedDoors {
    pub fn new(
        signals: mpsc::UnboundedSender<DoorSignal>,
        clock: Arc<dyn Clock>,
        dwell: Option<Duration>,
        left_open_after: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                signals,
                clock,
                dwell,
                left_open_after,
                doors: Mutex::default(),
            }),
        }
    }

    /// Closes a door that is open (a person pushed it shut).
    pub fn close(&self, locker_id: i64) {
        let command_id = {
            let mut doors = self.inner.doors.lock().expect("doors lock");
            let door = doors.entry(locker_id).or_default();
            if !door.open {
                return;
            }
            door.open = false;
            door.command_id.take()
        };
        self.signal(locker_id, DoorEventKind::DoorClosed, command_id);
    }

    /// A latch that no longer releases: unlocks fail.
    pub fn jam(&self, locker_id: i64) {
        self.inner
            .doors
            .lock()
            .expect("doors lock")
            .entry(locker_id)
            .or_default()
            .jammed = true;
    }

    /// How many times the door has opened.
    pub fn openings(&self, locker_id: i64) -> u32 {
        self.inner
            .doors
            .lock()
            .expect("doors lock")
            .get(&locker_id)
            .map_or(0, |d| d.opening as u32)
    }

    pub fn is_open(&self, locker_id: i64) -> bool {
        self.inner
            .doors
            .lock()
            .expect("doors lock")
            .get(&locker_id)
            .is_some_and(|d| d.open)
    }

    fn signal(&self, locker_id: i64, kind: DoorEventKind, command_id: Option<String>) {
        let _ = self.inner.signals.send(DoorSignal {
            locker_id,
            kind,
            command_id,
            at: self.inner.clock.now_millis(),
        });
    }

    fn after(&self, delay: Duration, locker_id: i64, opening: u64, then: fn(&Self, i64)) {
        let doors = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let still_open = doors
                .inner
                .doors
                .lock()
                .expect("doors lock")
                .get(&locker_id)
                .is_some_and(|d| d.open && d.opening == opening);
            if still_open {
                then(&doors, locker_id);
            }
        });
    }
}

impl Door for SimulatedDoors {
    fn unlock(&self, locker_id: i64, command_id: &str) -> Result<(), String> {
        let opening = {
            let mut doors = self.inner.doors.lock().expect("doors lock");
            let door = doors.entry(locker_id).or_default();
            if door.jammed {
                return Err("latch did not release".into());
            }
            if door.open {
                // Already open: nothing to release and no new opening to
                // report; its closing now answers this latest command.
                door.command_id = Some(command_id.to_owned());
                return Ok(());
            }
            door.open = true;
            door.command_id = Some(command_id.to_owned());
            door.opening += 1;
            door.opening
        };
        self.signal(
            locker_id,
            DoorEventKind::DoorOpened,
            Some(command_id.to_owned()),
        );
        if let Some(dwell) = self.inner.dwell {
            self.after(dwell, locker_id, opening, |doors, id| doors.close(id));
        }
        self.after(
            self.inner.left_open_after,
            locker_id,
            opening,
            |doors, id| {
                let command_id = doors
                    .inner
                    .doors
                    .lock()
                    .expect("doors lock")
                    .get(&id)
                    .and_then(|d| d.command_id.clone());
                doors.signal(id, DoorEventKind::DoorLeftOpen, command_id);
            },
        );
        Ok(())
    }
}
