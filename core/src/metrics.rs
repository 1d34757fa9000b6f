//! Prometheus metrics: every name in one place, recorded through the
//! `metrics` facade and served on `METRICS_ADDR` (a port of its own, apart
//! from the API) by `metrics-exporter-prometheus`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `method`, `route` (the template, e.g.
/// `/Items/{item_id}`) and `status`.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Seconds from a request's arrival to its answer, same labels.
pub const HTTP_LATENCY: &str = "http_request_duration_seconds";
/// Jobs settled, by `kind` and `outcome`: done, retried, failed (dead-lettered
/// as permanent) or dead_lettered (out of tries).
pub const JOBS: &str = "jobs_total";
/// Seconds from a job's enqueue (its outbox row) to done, by `kind`.
pub const JOB_LATENCY: &str = "job_latency_seconds";
/// Jobs written but not yet published to the queue.
pub const OUTBOX_BACKLOG: &str = "outbox_backlog";
/// Seconds from an unlock command's first send to its agent's answer.
pub const UNLOCK_ROUND_TRIP: &str = "unlock_round_trip_seconds";
/// Door events applied, by `kind` (door_opened, door_closed, door_left_open).
pub const DOOR_EVENTS: &str = "door_events_total";
/// Agents whose last status said online.
pub const AGENTS_ONLINE: &str = "agents_online";
/// `GET /lockers/by-place` answers, by `source`: `kept` (what the api kept
/// since the place last changed) or `database`.
pub const BY_PLACE_ANSWERS: &str = "by_place_answers_total";

/// Sessions of silent worker processes adopted by this one, by `outcome`
/// (adopted, failed: tried again once the claim runs out).
pub const SESSIONS_ADOPTED: &str = "worker_sessions_adopted_total";
/// Agents' messages found in adopted sessions and applied.
pub const ADOPTED_MESSAGES: &str = "adopted_messages_total";

/// Hashes and verifications asked for, by `op` (hash, verify) and `outcome`:
/// done, unavailable (the hashing service out of reach) or failed.
pub const HASHES: &str = "hashes_total";
/// Seconds a hash or a verification took on this process's hashing threads,
/// its wait for a free one included, by `op`.
pub const HASH_LATENCY: &str = "hash_duration_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls get the same one) and,
/// with `listen`, serves `/metrics` there. Without a recorder, recording
/// costs nothing and goes nowhere.
pub fn install(listen: Option<SocketAddr>) -> Result<PrometheusHandle, BuildError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let latency_buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency_buckets)?;
    let handle = match listen {
        Some(addr) => {
            let (recorder, exporter) = builder.with_http_listener(addr).build()?;
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map_err(BuildError::FailedToSetGlobalRecorder)?;
            tokio::spawn(async move {
                if exporter.await.is_err() {
                    tracing::warn!(%addr, "the metrics listener stopped");
                }
            });
            handle
        }
        None => builder.install_recorder()?,
    };
    Ok(HANDLE.get_or_init(|| handle).clone())
}

pub fn http_request(method: &str, route: &str, status: u16, latency: Duration) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_LATENCY, &labels).record(latency.as_secs_f64());
}

pub fn job_settled(kind: &'static str, outcome: &'static str) {
    metrics::counter!(JOBS, "kind" => kind, "outcome" => outcome).increment(1);
}

pub fn job_latency(kind: &'static str, seconds: f64) {
    metrics::histogram!(JOB_LATENCY, "kind" => kind).record(seconds);
}

pub fn outbox_backlog(jobs: i64) {
    metrics::gauge!(OUTBOX_BACKLOG).set(jobs as f64);
}

pub fn unlock_round_trip(seconds: f64) {
    metrics::histogram!(UNLOCK_ROUND_TRIP).record(seconds);
}

pub fn door_event(kind: &'static str) {
    metrics::counter!(DOOR_EVENTS, "kind" => kind).increment(1);
}

pub fn session_adopted(applied: Option<usize>) {
    let outcome = if applied.is_some() {
        "adopted"
    } else {
        "failed"
    };
    metrics::counter!(SESSIONS_ADOPTED, "outcome" => outcome).increment(1);
    if let Some(applied) = applied {
        metrics::counter!(ADOPTED_MESSAGES).increment(applied as u64);
    }
}

pub fn agents_online(agents: i64) {
    metrics::gauge!(AGENTS_ONLINE).set(agents as f64);
}

pub fn by_place_answer(kept: bool) {
    let source = if kept { "kept" } else { "database" };
    metrics::counter!(BY_PLACE_ANSWERS, "source" => source).increment(1);
}

pub fn hashed(op: &'static str, outcome: &'static str) {
    metrics::counter!(HASHES, "op" => op, "outcome" => outcome).increment(1);
}

pub fn hash_latency(op: &'static str, seconds: f64) {
    metrics::histogram!(HASH_LATENCY, "op" => op).record(seconds);
}
