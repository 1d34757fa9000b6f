//! The whole Locker Exchange stack in one process: the api, the outbox relay,
//! the workers and their link to the doors, over one database, one job queue
//! and one MQTT broker. `cargo run` starts it on embedded defaults (with an
//! embedded broker and simulated agents); the tests start it on theirs.

pub mod broker;
pub mod dev;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::Context;
use locker_api::Application;
use locker_api::state::AppState;
use locker_core::Clock;
use locker_core::config::{ApiConfig, DoorsConfig, NotifyConfig};
use locker_core::exchange::Exchange;
use locker_core::jobs::JobKind;
use locker_core::queue::JobQueue;
use locker_core::relay::Relay;
use locker_core::store::job_runs::Claims;
use locker_workers::channels::Notifier;
use locker_workers::doors::{Applier, DoorLink, tracker};
use locker_workers::{Doors, WorkerContext, run_here, spawn, sweeper};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

pub struct StackOptions {
    pub notify: NotifyConfig,
    /// The broker must be known by now (`broker::start` for an embedded one).
    pub doors: DoorsConfig,
    /// How often deadlines are swept.
    pub sweep_every: Duration,
    /// Print messages for channels that are not configured.
    pub console_fallback: bool,
    /// Consumers per job kind.
    pub worker_concurrency: usize,
    /// Code and notice jobs run on workers without the doors' link, as in
    /// a deployment of `locker-workers --queues otp,notify` beside
    /// `--queues unlock,events`.
    pub split_workers: bool,
}

pub struct Stack {
    pub addr: SocketAddr,
    pub state: AppState,
    pub queue: JobQueue,
    /// Jobs the workers have taken and not yet settled.
    pub jobs_in_hand: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    /// The door link's task, which a kill aborts with the rest.
    link: AbortHandle,
}

impl Stack {
    pub async fn start(
        config: &ApiConfig,
        options: StackOptions,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let app = Application::build(config, clock.clone()).await?;
        let addr = app.local_addr();
        let state = app.state().clone();
        let queue = JobQueue::from_config(&config.queue);
        let stop = CancellationToken::new();

        let broker = options
            .doors
            .broker
            .clone()
            .context("no MQTT broker for the doors")?;
        // The kinds the consumers with the doors' link serve; the workers'
        // side commits as a worker process does, running jobs of those
        // kinds here.
        let served: &[JobKind] = if options.split_workers {
            &[JobKind::Unlock]
        } else {
            &JobKind::ALL
        };
        let (committing, here) = state.relay.running_here(served, options.worker_concurrency);
        let exchange = state.exchange.with_relay(committing);
        let applier = Applier {
            exchange: exchange.clone(),
            agent_secret: options.doors.agent_secret.clone(),
        };
        let (link, link_task) =
            DoorLink::start(&options.doors, &broker, Some(applier), stop.clone());
        let in_hand = Arc::new(AtomicUsize::new(0));
        let claims = Claims::default();
        let context =
            |doors: Option<Doors>, exchange: &Exchange| -> anyhow::Result<Arc<WorkerContext>> {
                Ok(Arc::new(WorkerContext {
                    claims: claims.clone(),
                    db: state.db.clone(),
                    hasher: state.hasher.clone(),
                    notifier: Some(Notifier::new(&options.notify, options.console_fallback)?),
                    code_secret: Some(options.notify.code_secret.clone()),
                    public_url: options.notify.public_url.clone(),
                    clock: clock.clone(),
                    exchange: exchange.clone(),
                    retry_delays: config.queue.retry_delays.clone(),
                    in_hand: in_hand.clone(),
                    doors,
                }))
            };
        let ctx = context(
            Some(Doors {
                link,
                config: options.doors.clone(),
            }),
            &exchange,
        )?;
        let mut tasks = spawn(
            ctx.clone(),
            queue.clone(),
            served,
            options.worker_concurrency,
            stop.clone(),
        );
        if options.split_workers {
            let messages = context(None, &state.exchange)?;
            let mut apart = spawn(
                messages,
                queue.clone(),
                &[JobKind::Otp, JobKind::Notify],
                options.worker_concurrency,
                stop.clone(),
            );
            // Killed with the rest: a dropped set aborts its tasks.
            tasks.spawn(async move { while apart.join_next().await.is_some() {} });
        }
        // Killed with the rest: the link runs on a task of its own.
        let link = link_task.abort_handle();
        tasks.spawn(async move {
            let _ = link_task.await;
        });
        tasks.spawn(run_here(
            ctx.clone(),
            queue.clone(),
            state.relay.clone(),
            here,
            stop.clone(),
        ));
        tasks.spawn(tracker::run(ctx.clone(), stop.clone()));
        let sweep_stop = stop.clone();
        let sweep_every = options.sweep_every;
        tasks.spawn(async move { sweeper::run(&ctx, sweep_every, sweep_stop).await });
        let relay = Relay::new(state.db.clone(), queue.clone(), clock, state.relay.clone());
        tasks.spawn(relay.run(stop.clone()));
        let server_stop = stop.clone();
        tasks.spawn(async move {
            if let Err(error) = app.run_until(server_stop.cancelled_owned()).await {
                tracing::error!(error = format!("{error:#}"), "api stopped");
            }
        });
        Ok(Self {
            addr,
            state,
            queue,
            jobs_in_hand: in_hand,
            stop,
            tasks,
            link,
        })
    }

    /// Stops at once, as a killed process would: jobs in hand are abandoned
    /// mid-way and connections dropped.
    pub async fn kill(mut self) {
        self.link.abort();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops taking work, lets jobs and requests in hand finish.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.state.db.close().await;
    }
}
