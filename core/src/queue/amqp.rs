//! RabbitMQ through lapin. Per job kind: a durable queue `{prefix}.{kind}`, a
//! dead-letter queue `{prefix}.{kind}.dead`, and one retry queue per delay,
//! `{prefix}.{kind}.retry.{ms}ms`, whose messages expire back into the main
//! queue. Messages are persistent and every publish waits for the broker's
//! confirm.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use lapin::PublisherConfirm;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use super::{Delivery, Settle};
use crate::config::QueueType;
use crate::jobs::{Envelope, JobKind};

/// How long the broker may take to answer a step: opening a session or a
/// consumer, or confirming a batch of jobs.
const BROKER_LIMIT: Duration = Duration::from_secs(10);

/// The heartbeat asked for when `AMQP_URL` names none (seconds). A connection
/// that hears nothing for two of them is closed, so consumers on a broker that
/// stopped answering are given up on within [`BROKER_LIMIT`] too; RabbitMQ's
/// own default (60 s) would leave them waiting two minutes.
const HEARTBEAT_SECONDS: u16 = 5;

#[derive(Clone)]
pub struct AmqpQueue {
    inner: Arc<Inner>,
}

struct Inner {
    uri: AMQPUri,
    prefix: String,
    retry_delays: Vec<Duration>,
    queue_type: QueueType,
    /// The publishing session, opened on first use and again after a failure.
    publisher: Mutex<Option<Arc<Session>>>,
    /// The process's one connection (each holds an I/O thread and its
    /// buffers), made again when lost; publisher and consumers each have a
    /// channel on it.
    connection: Mutex<Option<Arc<Connection>>>,
}

/// A channel in confirm mode on which the topology is declared, and the
/// connection it lives on.
struct Session {
    _connection: Arc<Connection>,
    channel: Channel,
}

impl AmqpQueue {
    pub fn new(url: &str, prefix: &str, retry_delays: &[Duration], queue_type: QueueType) -> Self {
        let mut uri: AMQPUri = url
            .parse()
            .expect("AMQP_URL is checked when the configuration loads");
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECONDS);
        Self {
            inner: Arc::new(Inner {
                uri,
                prefix: prefix.to_owned(),
                retry_delays: retry_delays.to_vec(),
                queue_type,
                publisher: Mutex::new(None),
                connection: Mutex::new(None),
            }),
        }
    }

    fn main_queue(&self, kind: JobKind) -> String {
        format!("{}.{}", self.inner.prefix, kind.as_str())
    }

    /// Names of the queues of `kind`, for operators and tests.
    pub fn queue_names(&self, kind: JobKind) -> (String, String) {
        let main = self.main_queue(kind);
        let dead = format!("{main}.dead");
        (main, dead)
    }

    /// The shared connection, made (again) unless it is up.
    async fn connection(&self) -> anyhow::Result<Arc<Connection>> {
        let mut shared = self.inner.connection.lock().await;
        if let Some(connection) = shared.as_ref()
            && connection.status().connected()
        {
            return Ok(connection.clone());
        }
        let connection = connect(&self.inner.uri)
            .await
            // lapin's message already ends with its cause: not chained again.
            .map_err(|error| anyhow::anyhow!("cannot connect to AMQP_URL: {error}"))?;
        let connection = Arc::new(connection);
        *shared = Some(connection.clone());
        Ok(connection)
    }

    async fn open(&self) -> anyhow::Result<Session> {
        let connection = self.connection().await?;
        let channel = match connection.create_channel().await {
            Ok(channel) => channel,
            Err(error) => {
                // Not to be handed out again: the next open connects anew.
                let mut shared = self.inner.connection.lock().await;
                if shared.as_ref().is_some_and(|c| Arc::ptr_eq(c, &connection)) {
                    *shared = None;
                }
                return Err(error.into());
            }
        };
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        for kind in JobKind::ALL {
            self.declare(&channel, kind).await?;
        }
        Ok(Session {
            _connection: connection,
            channel,
        })
    }

    async fn declare(&self, channel: &Channel, kind: JobKind) -> anyhow::Result<()> {
        let (main, dead) = self.queue_names(kind);
        let durable = QueueDeclareOptions::durable();
        let typed = || {
            let mut args = FieldTable::default();
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(self.inner.queue_type.as_str().into()),
            );
            args
        };
        channel
            .queue_declare(main.clone().into(), durable, typed())
            .await
            .with_context(|| format!("cannot declare queue {main} (a queue of another type may exist under that name)"))?;
        channel.queue_declare(dead.into(), durable, typed()).await?;
        for delay in &self.inner.retry_delays {
            let mut args = typed();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(delay.as_millis() as i64),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(main.clone().into()),
            );
            channel
                .queue_declare(retry_queue(&main, *delay).into(), durable, args)
                .await?;
        }
        Ok(())
    }

    /// Publishes one job and waits for the broker's confirm.
    pub async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.publish_batch(std::slice::from_ref(envelope)).await
    }

    /// Publishes jobs, then waits for every confirm; an error means some may
    /// not have been stored (they will be published again: handlers are
    /// idempotent).
    pub async fn publish_batch(&self, envelopes: &[Envelope]) -> anyhow::Result<()> {
        let routed: Vec<_> = envelopes.iter().map(|e| (e, Route::Main)).collect();
        self.publish_routed(&routed).await
    }

    /// Publishes a try of a job to run after `delay` (one of the retry
    /// delays), and waits for the confirm.
    pub async fn publish_after(&self, envelope: &Envelope, delay: Duration) -> anyhow::Result<()> {
        self.publish_routed(&[(envelope, Route::After(delay))])
            .await
    }

    /// Publishes a job given up on to its dead-letter queue, with the
    /// reason, and waits for the confirm.
    pub async fn bury(&self, envelope: &Envelope, reason: &str) -> anyhow::Result<()> {
        self.publish_routed(&[(envelope, Route::Dead(reason))])
            .await
    }

    async fn publish_routed(&self, messages: &[(&Envelope, Route<'_>)]) -> anyhow::Result<()> {
        // The session a failure is blamed on.
        let mut used = None;
        let publishing = async {
            // The channel is held while publishing only: the confirms are
            // waited for without it, so another batch goes out meanwhile.
            let confirms = {
                let mut guard = self.inner.publisher.lock().await;
                if guard
                    .as_ref()
                    .is_none_or(|s| !s.channel.status().connected())
                {
                    *guard = Some(Arc::new(self.open().await?));
                }
                let session = guard.as_ref().expect("session just opened").clone();
                used = Some(session.clone());
                let mut confirms = Vec::with_capacity(messages.len());
                for (envelope, route) in messages {
                    let main = self.main_queue(envelope.kind);
                    let (queue, headers) = match route {
                        Route::Main => (main, FieldTable::default()),
                        Route::After(delay) => (retry_queue(&main, *delay), FieldTable::default()),
                        Route::Dead(reason) => (format!("{main}.dead"), reason_header(reason)),
                    };
                    confirms.push(publish(&session.channel, &queue, envelope, headers).await?);
                }
                confirms
            };
            for confirm in confirms {
                await_confirm(confirm).await?;
            }
            Ok(())
        };
        // The relay holds its jobs' rows meanwhile.
        let result = self.answered(publishing, "a publish").await;
        if result.is_err() {
            // Opened again by the next publish, unless another batch already did.
            let mut guard = self.inner.publisher.lock().await;
            let failed = match (guard.as_ref(), &used) {
                (Some(current), Some(used)) => Arc::ptr_eq(current, used),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if failed {
                *guard = None;
            }
        }
        result
    }

    /// A consumer of its own connection, so a stalled publisher never holds
    /// up deliveries (and the other way round).
    pub async fn consume(&self, kind: JobKind, prefetch: u16) -> anyhow::Result<AmqpConsumer> {
        let starting = async {
            let session = self.open().await?;
            session
                .channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            let main = self.main_queue(kind);
            let consumer = session
                .channel
                .basic_consume(
                    main.clone().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok(AmqpConsumer {
                session: Arc::new(session),
                consumer,
                main,
            })
        };
        self.answered(starting, "a new consumer").await
    }

    /// Gives `step` up when the broker does not answer it within
    /// [`BROKER_LIMIT`], whatever heartbeat `AMQP_URL` asks for (a broker
    /// that stops answering without closing the connection is otherwise
    /// noticed only after two heartbeats). The shared connection is then
    /// not handed out again.
    async fn answered<T>(
        &self,
        step: impl Future<Output = anyhow::Result<T>>,
        what: &str,
    ) -> anyhow::Result<T> {
        // Bound first, so the step (and any lock it holds) is dropped.
        let outcome = tokio::time::timeout(BROKER_LIMIT, step).await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                *self.inner.connection.lock().await = None;
                Err(anyhow::anyhow!(
                    "the broker did not answer {what} within {BROKER_LIMIT:?}"
                ))
            }
        }
    }
}

impl AmqpQueue {
    /// The jobs of `kind` in the dead-letter queue, with the reason each was
    /// given up on. They stay in the queue.
    pub async fn dead_letters(&self, kind: JobKind) -> anyhow::Result<Vec<(Envelope, String)>> {
        let connection = connect(&self.inner.uri).await?;
        let channel = connection.create_channel().await?;
        let (_, dead) = self.queue_names(kind);
        let mut found = Vec::new();
        while let Some(message) = channel
            .basic_get(
                dead.clone().into(),
                lapin::options::BasicGetOptions::default(),
            )
            .await?
        {
            let delivery = message.delivery;
            let reason = delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-reason"))
                .map(|v| match v {
                    AMQPValue::LongString(s) => s.to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            found.push((serde_json::from_slice(&delivery.data)?, reason));
        }
        // Closing without acknowledging puts them back.
        connection.close(200, "done".into()).await?;
        Ok(found)
    }

    /// Messages of `kind` waiting in its queue or in a retry delay; not those
    /// handed to a consumer and not yet settled.
    pub async fn backlog(&self, kind: JobKind) -> anyhow::Result<u64> {
        let connection = connect(&self.inner.uri).await?;
        let channel = connection.create_channel().await?;
        let main = self.main_queue(kind);
        let mut names = vec![main.clone()];
        names.extend(
            self.inner
                .retry_delays
                .iter()
                .map(|d| retry_queue(&main, *d)),
        );
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let mut waiting = 0;
        for name in names {
            let queue = channel
                .queue_declare(name.into(), passive, FieldTable::default())
                .await?;
            waiting += u64::from(queue.message_count());
        }
        connection.close(200, "done".into()).await?;
        Ok(waiting)
    }

    /// Deletes every queue under `prefix` (test runs clean up after themselves).
    pub async fn delete_queues(
        url: &str,
        prefix: &str,
        retry_delays_ms: &[u64],
    ) -> anyhow::Result<()> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        for kind in JobKind::ALL {
            let main = format!("{prefix}.{}", kind.as_str());
            let mut names = vec![main.clone(), format!("{main}.dead")];
            names.extend(
                retry_delays_ms
                    .iter()
                    .map(|ms| retry_queue(&main, Duration::from_millis(*ms))),
            );
            for name in names {
                channel
                    .queue_delete(name.into(), lapin::options::QueueDeleteOptions::default())
                    .await?;
            }
        }
        connection.close(200, "done".into()).await?;
        Ok(())
    }
}

async fn connect(uri: &AMQPUri) -> lapin::Result<Connection> {
    Connection::connect_uri(uri.clone(), ConnectionProperties::default()).await
}

fn retry_queue(main: &str, delay: Duration) -> String {
    format!("{main}.retry.{}ms", delay.as_millis())
}

/// Where a job is published: its queue, a retry queue, or its dead letters.
enum Route<'a> {
    Main,
    After(Duration),
    Dead(&'a str),
}

/// A dead letter's reason, as a header.
fn reason_header(reason: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert("x-reason".into(), AMQPValue::LongString(reason.into()));
    headers
}

fn properties(envelope_id: i64, headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(envelope_id.to_string().into())
        .with_headers(headers)
}

async fn publish(
    channel: &Channel,
    queue: &str,
    envelope: &Envelope,
    headers: FieldTable,
) -> anyhow::Result<PublisherConfirm> {
    let body = serde_json::to_vec(envelope)?;
    Ok(channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            &body,
            properties(envelope.id, headers),
        )
        .await?)
}

async fn await_confirm(confirm: PublisherConfirm) -> anyhow::Result<()> {
    if !confirm.await?.is_ack() {
        bail!("broker refused the message");
    }
    Ok(())
}

pub struct AmqpConsumer {
    session: Arc<Session>,
    consumer: lapin::Consumer,
    main: String,
}

impl AmqpConsumer {
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            let delivery = match self.consumer.next().await? {
                Ok(delivery) => delivery,
                Err(error) => {
                    tracing::warn!(%error, queue = %self.main, "consumer lost its connection");
                    return None;
                }
            };
            let settle = AmqpSettle {
                session: self.session.clone(),
                acker: delivery.acker,
                main: self.main.clone(),
            };
            match serde_json::from_slice::<Envelope>(&delivery.data) {
                Ok(envelope) => {
                    return Some(Delivery {
                        envelope,
                        settle: Settle::Amqp(settle),
                    });
                }
                Err(error) => {
                    // Not ours to run, but not ours to drop either.
                    tracing::error!(%error, queue = %self.main, "undecodable message moved to the dead-letter queue");
                    if let Err(error) = settle.dead_raw(&delivery.data, &error.to_string()).await {
                        tracing::warn!(%error, "cannot dead-letter an undecodable message");
                        return None;
                    }
                }
            }
        }
    }
}

pub struct AmqpSettle {
    session: Arc<Session>,
    acker: lapin::Acker,
    main: String,
}

impl AmqpSettle {
    pub async fn ack(self) -> anyhow::Result<()> {
        settling(self.acked()).await
    }

    async fn acked(&self) -> anyhow::Result<()> {
        self.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// The copy is confirmed in the retry queue before the original is acked:
    /// a crash in between leaves a duplicate, never a loss.
    pub async fn retry(self, next: &Envelope, delay: Duration) -> anyhow::Result<()> {
        let queue = retry_queue(&self.main, delay);
        settling(async {
            await_confirm(
                publish(&self.session.channel, &queue, next, FieldTable::default()).await?,
            )
            .await?;
            self.acked().await
        })
        .await
    }

    pub async fn dead(self, envelope: &Envelope, reason: &str) -> anyhow::Result<()> {
        let body = serde_json::to_vec(envelope)?;
        self.dead_raw(&body, reason).await
    }

    async fn dead_raw(self, body: &[u8], reason: &str) -> anyhow::Result<()> {
        settling(self.bury_raw(body, reason)).await
    }

    async fn bury_raw(&self, body: &[u8], reason: &str) -> anyhow::Result<()> {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(reason_header(reason));
        let queue = format!("{}.dead", self.main);
        let confirm = self
            .session
            .channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await?;
        await_confirm(confirm).await?;
        self.acked().await
    }
}

/// Settles a delivery within [`BROKER_LIMIT`]: on a connection that is gone
/// an acknowledgement may otherwise wait forever, holding its consumer and
/// the job in hand. Unsettled, the job is handed out again by the broker.
async fn settling(step: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::time::timeout(BROKER_LIMIT, step)
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the broker did not take the settlement within {BROKER_LIMIT:?}"
            ))
        })
}
