//! The job transport: RabbitMQ in production, an in-process queue for the
//! embedded default. Both carry the same envelopes from the same outbox and
//! give workers the same acknowledge / retry / dead-letter choices.

mod amqp;
mod memory;

use std::time::Duration;

use crate::clock::Millis;
use crate::config::QueueConfig;
use crate::jobs::{Envelope, JobKind};
use crate::relay::Outgoing;

pub use amqp::AmqpQueue;
pub use memory::MemoryQueue;

#[derive(Clone)]
pub enum JobQueue {
    Amqp(AmqpQueue),
    Memory(MemoryQueue),
}

impl JobQueue {
    /// RabbitMQ when the configuration names it, else an in-process queue.
    pub fn from_config(config: &QueueConfig) -> Self {
        match &config.amqp_url {
            Some(url) => Self::Amqp(AmqpQueue::new(
                url,
                &config.prefix,
                &config.retry_delays,
                config.queue_type,
            )),
            None => Self::Memory(MemoryQueue::new()),
        }
    }

    /// Publishes a job durably: returns once the broker has confirmed it.
    pub async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        match self {
            Self::Amqp(q) => q.publish(envelope).await,
            Self::Memory(q) => q.publish(envelope),
        }
    }

    /// Publishes a try of a job to be handed out after `delay` (one of the
    /// retry delays).
    pub async fn publish_after(&self, envelope: &Envelope, delay: Duration) -> anyhow::Result<()> {
        match self {
            Self::Amqp(q) => q.publish_after(envelope, delay).await,
            Self::Memory(q) => {
                q.publish_after(envelope.clone(), delay);
                Ok(())
            }
        }
    }

    /// Puts a job given up on among the dead letters of its kind.
    pub async fn bury(&self, envelope: &Envelope, reason: &str) -> anyhow::Result<()> {
        match self {
            Self::Amqp(q) => q.bury(envelope, reason).await,
            Self::Memory(q) => {
                q.bury(envelope.clone(), reason);
                Ok(())
            }
        }
    }

    /// Starts taking jobs of one kind, at most `prefetch` unacknowledged at a time.
    pub async fn consume(&self, kind: JobKind, prefetch: u16) -> anyhow::Result<Consumer> {
        match self {
            Self::Amqp(q) => Ok(Consumer::Amqp(q.consume(kind, prefetch).await?)),
            Self::Memory(q) => Ok(Consumer::Memory(q.consume(kind))),
        }
    }

    /// Jobs of `kind` given up on, with the reason; left where they are.
    pub async fn dead_letters(&self, kind: JobKind) -> anyhow::Result<Vec<(Envelope, String)>> {
        match self {
            Self::Amqp(q) => q.dead_letters(kind).await,
            Self::Memory(q) => Ok(q.dead_letters(kind)),
        }
    }

    /// Jobs of `kind` waiting to be handed out, or waiting out a retry
    /// delay; not those in a consumer's hands.
    pub async fn backlog(&self, kind: JobKind) -> anyhow::Result<u64> {
        match self {
            Self::Amqp(q) => q.backlog(kind).await,
            Self::Memory(q) => Ok(q.backlog(kind)),
        }
    }

    pub fn is_in_process(&self) -> bool {
        matches!(self, Self::Memory(_))
    }
}

pub enum Consumer {
    Amqp(amqp::AmqpConsumer),
    Memory(memory::MemoryConsumer),
}

impl Consumer {
    /// The next job; `None` when the transport has gone (reconnect then).
    pub async fn next(&mut self) -> Option<Delivery> {
        match self {
            Self::Amqp(c) => c.next().await,
            Self::Memory(c) => c.next().await,
        }
    }
}

/// A job taken from the queue; it must be settled exactly once.
pub struct Delivery {
    pub envelope: Envelope,
    settle: Settle,
}

enum Settle {
    Amqp(amqp::AmqpSettle),
    Memory(memory::MemorySettle),
    Here(HereSettle),
}

/// A job run by the process that committed it, which never went through the
/// queue: settled through the queue's retry and dead-letter routes, then
/// stamped in the outbox (until then a sweep may still publish it).
struct HereSettle {
    queue: JobQueue,
    relay: Outgoing,
    taken: Millis,
}

impl HereSettle {
    fn settled(self, id: i64) -> anyhow::Result<()> {
        self.relay.settled(id, self.taken);
        Ok(())
    }
}

impl Delivery {
    /// A job committed in this process, taken at `taken` to run here; it is
    /// settled through `queue` and stamped by `relay`.
    pub fn here(envelope: Envelope, queue: JobQueue, relay: Outgoing, taken: Millis) -> Self {
        Self {
            envelope,
            settle: Settle::Here(HereSettle {
                queue,
                relay,
                taken,
            }),
        }
    }

    /// Done: the queue forgets it.
    pub async fn ack(self) -> anyhow::Result<()> {
        match self.settle {
            Settle::Amqp(s) => s.ack().await,
            Settle::Memory(_) => Ok(()),
            Settle::Here(s) => s.settled(self.envelope.id),
        }
    }

    /// Tries it again after `delay` (the next step of the retry policy).
    pub async fn retry(self, delay: Duration) -> anyhow::Result<()> {
        let mut next = self.envelope;
        next.attempt += 1;
        match self.settle {
            Settle::Amqp(s) => s.retry(&next, delay).await,
            Settle::Memory(s) => {
                s.retry(next, delay);
                Ok(())
            }
            Settle::Here(s) => {
                s.queue.publish_after(&next, delay).await?;
                s.settled(next.id)
            }
        }
    }

    /// Gives up: the job goes to the dead-letter queue with `reason`.
    pub async fn dead(self, reason: &str) -> anyhow::Result<()> {
        tracing::error!(
            job_id = self.envelope.id,
            kind = self.envelope.kind.as_str(),
            attempt = self.envelope.attempt,
            reason,
            "job dead-lettered"
        );
        match self.settle {
            Settle::Amqp(s) => s.dead(&self.envelope, reason).await,
            Settle::Memory(s) => {
                s.dead(self.envelope, reason);
                Ok(())
            }
            Settle::Here(s) => {
                s.queue.bury(&self.envelope, reason).await?;
                s.settled(self.envelope.id)
            }
        }
    }
}
