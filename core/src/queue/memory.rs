//! The in-process queue of the embedded default: one lane per job kind,
//! shared by that kind's workers; retries wait on a timer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Delivery, Settle};
use crate::jobs::{Envelope, JobKind};

#[derive(Clone, Default)]
pub struct MemoryQueue {
    lanes: Arc<Mutex<HashMap<JobKind, Arc<Lane>>>>,
}

struct Lane {
    /// Published or waiting out a retry delay, not yet handed out.
    waiting: AtomicU64,
    tx: mpsc::UnboundedSender<Envelope>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Envelope>>,
    dead: Mutex<Vec<(Envelope, String)>>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn lane(&self, kind: JobKind) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().expect("queue lock");
        lanes
            .entry(kind)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                Arc::new(Lane {
                    waiting: AtomicU64::new(0),
                    tx,
                    rx: tokio::sync::Mutex::new(rx),
                    dead: Mutex::default(),
                })
            })
            .clone()
    }

    pub fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let lane = self.lane(envelope.kind);
        lane.waiting.fetch_add(1, Ordering::SeqCst);
        lane.tx
            .send(envelope.clone())
            .map_err(|_| anyhow::anyhow!("in-process queue closed"))
    }

    /// Publishes a try of a job to be handed out after `delay`.
    pub fn publish_after(&self, envelope: Envelope, delay: Duration) {
        self.lane(envelope.kind).after(envelope, delay);
    }

    /// Gives a job up, with the reason.
    pub fn bury(&self, envelope: Envelope, reason: &str) {
        self.lane(envelope.kind).bury(envelope, reason);
    }

    /// Jobs of `kind` waiting to be handed out, or waiting out a retry delay.
    pub fn backlog(&self, kind: JobKind) -> u64 {
        self.lane(kind).waiting.load(Ordering::SeqCst)
    }

    pub fn consume(&self, kind: JobKind) -> MemoryConsumer {
        MemoryConsumer {
            lane: self.lane(kind),
        }
    }

    /// Jobs of `kind` given up on, with the reason.
    pub fn dead_letters(&self, kind: JobKind) -> Vec<(Envelope, String)> {
        self.lane(kind).dead.lock().expect("queue lock").clone()
    }
}

impl Lane {
    fn after(self: Arc<Self>, envelope: Envelope, delay: Duration) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = self.tx.send(envelope);
        });
    }

    fn bury(&self, envelope: Envelope, reason: &str) {
        self.dead
            .lock()
            .expect("queue lock")
            .push((envelope, reason.to_owned()));
    }
}

pub struct MemoryConsumer {
    lane: Arc<Lane>,
}

impl MemoryConsumer {
    pub async fn next(&mut self) -> Option<Delivery> {
        let envelope = self.lane.rx.lock().await.recv().await?;
        self.lane.waiting.fetch_sub(1, Ordering::SeqCst);
        Some(Delivery {
            envelope,
            settle: Settle::Memory(MemorySettle {
                lane: self.lane.clone(),
            }),
        })
    }
}

pub struct MemorySettle {
    lane: Arc<Lane>,
}

impl MemorySettle {
    pub fn retry(self, envelope: Envelope, delay: Duration) {
        self.lane.after(envelope, delay);
    }

    pub fn dead(self, envelope: Envelope, reason: &str) {
        self.lane.bury(envelope, reason);
    }
}
