//! The scenarios: `read` (finding lockers), `exchange` (drop to the sender's
//! email), `unlock` (unlock accepted to the door at the agent), and `scale`
//! (many agents and lockers on one broker).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use locker_testkit::SmtpSink;
use reqwest::Method;
use serde_json::json;

use crate::Options;
use crate::client::Api;
use crate::reader::Reader;
use crate::site::Site;
use crate::stats::{ExchangeMarks, Recorder};

/// How long one step may take before it counts as an error.
const STEP: Duration = Duration::from_secs(30);

/// Work left: by count or until a deadline. A run by duration begins with
/// a warm-up: every task starts its first unit at the same instant, on a
/// stack whose connections and caches are cold, so units begun then are run
/// but not measured (their errors still count).
pub struct Budget {
    left: Option<AtomicU64>,
    measured_from: Instant,
    until: Instant,
}

impl Budget {
    pub fn new(count: Option<u64>, duration: Duration, warm_up: Duration) -> Arc<Self> {
        let now = Instant::now();
        let measured_from = match count {
            Some(_) => now,
            None => now + warm_up,
        };
        Arc::new(Self {
            left: count.map(AtomicU64::new),
            measured_from,
            until: match count {
                Some(_) => now + Duration::from_secs(3600),
                None => measured_from + duration,
            },
        })
    }

    fn take(&self) -> bool {
        if Instant::now() >= self.until {
            return false;
        }
        match &self.left {
            Some(left) => left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok(),
            None => true,
        }
    }

    /// When the measurement begins: units begun before are the warm-up.
    pub fn measured_from(&self) -> Instant {
        self.measured_from
    }

    /// One task's share of the budget.
    pub fn tally(self: &Arc<Self>) -> Tally {
        Tally {
            budget: self.clone(),
            measured: Recorder::default(),
            warm_up: Recorder::default(),
        }
    }
}

/// What one task's units recorded, measured or in the warm-up.
pub struct Tally {
    budget: Arc<Budget>,
    measured: Recorder,
    warm_up: Recorder,
}

impl Tally {
    /// Where the next unit records, or `None` when the budget is spent.
    pub fn next(&mut self) -> Option<&mut Recorder> {
        if !self.budget.take() {
            return None;
        }
        Some(if Instant::now() >= self.budget.measured_from {
            &mut self.measured
        } else {
            &mut self.warm_up
        })
    }

    /// What was measured, with the warm-up's errors (its samples dropped).
    pub fn finish(self) -> Recorder {
        let mut all = self.measured;
        all.merge(Recorder {
            errors: self.warm_up.errors,
            ..Recorder::default()
        });
        all
    }
}

/// The name of the benchmark's place number `n`.
pub fn place_name(n: usize) -> String {
    format!("Bench Place {n}")
}

/// Places named by [`place_name`] with lockers spread over them; lockers get
/// agents (spread round-robin) when `agents` > 0. Returns locker ids and, per
/// agent id, its lockers.
pub async fn make_lockers(
    api: &Api,
    admin: &str,
    layout: Layout,
    run: &str,
    first: usize,
    count: usize,
) -> anyhow::Result<(Vec<i64>, HashMap<String, Vec<i64>>)> {
    let jobs = (first..first + count).map(|i| {
        let place = place_name(i % layout.places.max(1));
        let agent = layout.agent_of(i).map(|a| format!("bench-{run}-{a}"));
        async move {
            (
                agent.clone(),
                api.create_locker(admin, &place, agent.as_deref()).await,
            )
        }
    });
    let mut ids = Vec::new();
    let mut by_agent: HashMap<String, Vec<i64>> = HashMap::new();
    let mut stream = futures::stream::iter(jobs).buffer_unordered(layout.concurrency.max(8));
    use futures::StreamExt;
    while let Some((agent, id)) = stream.next().await {
        let id = id?;
        ids.push(id);
        if let Some(agent) = agent {
            by_agent.entry(agent).or_default().push(id);
        }
    }
    ids.sort_unstable();
    Ok((ids, by_agent))
}

/// How lockers are laid out over places and agents.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub places: usize,
    /// Agents, round-robin over the lockers (0: no doors).
    pub agents: usize,
    /// Or: this many lockers per agent, in order.
    pub lockers_per_agent: Option<usize>,
    pub concurrency: usize,
}

impl Layout {
    fn agent_of(&self, locker_index: usize) -> Option<usize> {
        match self.lockers_per_agent {
            Some(per) => Some(locker_index / per.max(1)),
            None => (self.agents > 0).then(|| locker_index % self.agents),
        }
    }
}

/// Waits until the api shows every agent online (one locker of each checked).
pub async fn wait_online(
    api: &Api,
    token: &str,
    agents: &HashMap<String, Vec<i64>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    for lockers in agents.values() {
        loop {
            let locker = api.get(&format!("/lockers/{}", lockers[0]), token).await?;
            if locker["agent_online"] == true {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "agents not online within 120 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

pub async fn read(api: &Api, token: &str, opts: &Options, budget: Arc<Budget>) -> Recorder {
    const SERIES: &str = "GET /lockers/by-place";
    let tasks = (0..opts.concurrency).map(|t| {
        let (done, mut tally) = (api.done.clone(), budget.tally());
        let reader = Reader::new(&api.base, token);
        let places = opts.places.max(1);
        tokio::spawn(async move {
            let mut reader = match reader {
                Ok(reader) => reader,
                Err(error) => {
                    let mut rec = Recorder::default();
                    rec.error(format!("{SERIES}: {error:#}"));
                    return rec;
                }
            };
            let mut n = t;
            while let Some(rec) = tally.next() {
                let path = format!("/lockers/by-place?location=bench%20place%20{}", n % places);
                let started = Instant::now();
                match reader.get(&path).await {
                    Ok(status) if status.is_success() => rec.record(SERIES, started.elapsed()),
                    Ok(status) => rec.error(format!("{SERIES}: HTTP {}", status.as_u16())),
                    Err(_) => rec.error(format!("{SERIES}: transport")),
                }
                done.fetch_add(1, Ordering::Relaxed);
                n += opts_stride();
            }
            tally.finish()
        })
    });
    collect(tasks).await
}

fn opts_stride() -> usize {
    7
}

/// One full exchange per turn, each task on a locker of its own.
pub async fn exchange(
    api: &Api,
    sender: &str,
    sender_email: &str,
    lockers: &[i64],
    site: &Site,
    smtp: &SmtpSink,
    budget: Arc<Budget>,
) -> Recorder {
    let counter = Arc::new(AtomicU64::new(0));
    let tasks = lockers.iter().map(|&locker| {
        let (api, sender, sender_email) = (api.clone(), sender.to_owned(), sender_email.to_owned());
        let (mut tally, counter, smtp) = (budget.tally(), counter.clone(), smtp.clone());
        let doors = site.doors.get(&locker).cloned();
        tokio::spawn(async move {
            while let Some(rec) = tally.next() {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if let Err(error) = one_exchange(
                    &api,
                    rec,
                    &sender,
                    &sender_email,
                    locker,
                    doors.as_ref(),
                    &smtp,
                    n,
                )
                .await
                {
                    tracing::debug!(%error, "exchange failed");
                    rec.error(format!("exchange: {}", error_kind(&error)));
                }
            }
            tally.finish()
        })
    });
    collect(tasks).await
}

fn error_kind(error: &anyhow::Error) -> String {
    let text = error.to_string();
    text.split(" within ")
        .next()
        .unwrap_or(&text)
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn one_exchange(
    api: &Api,
    rec: &mut Recorder,
    sender: &str,
    sender_email: &str,
    locker: i64,
    doors: Option<&crate::site::TimedDoors>,
    smtp: &SmtpSink,
    n: u64,
) -> anyhow::Result<()> {
    let receiver = format!("receiver-{n}@bench.test");
    let name = format!("bench item {n}");
    let started = Instant::now();
    let dropped_ms = crate::epoch_ms();
    let item = api
        .call(
            rec,
            "POST /Items/",
            Method::POST,
            "/Items/",
            Some(sender),
            Some(json!({"locker_id": locker, "name": name, "receiver_email": receiver})),
        )
        .await?;
    let item_id = item["id"].as_i64().unwrap_or_default();
    if let Some(doors) = doors {
        doors.unlocked_after(locker, started, STEP).await?;
        doors.doors.close(locker);
    }
    // The receiver comes when told the item is waiting, as a person would.
    smtp.try_take_matching(&receiver, 1, STEP, |m| {
        m.header("Subject")
            .is_some_and(|s| s.contains("is waiting for you"))
    })
    .await
    .map_err(anyhow::Error::msg)?;
    rec.record("stage: drop → receiver's notice at SMTP", started.elapsed());

    api.call(
        rec,
        "POST /Items/lockers/{id}/request-otp",
        Method::POST,
        &format!("/Items/lockers/{locker}/request-otp"),
        None,
        Some(json!({"contact": receiver})),
    )
    .await?;
    let code_mail = smtp
        .try_take_matching(&receiver, 1, STEP, |m| {
            m.header("Subject").is_some_and(|s| s.contains("code"))
        })
        .await
        .map_err(anyhow::Error::msg)?;
    let code = locker_testkit::digits(&code_mail[0].body(), 6)
        .ok_or_else(|| anyhow::anyhow!("no code in email"))?;
    // The door may open before the answer has reached us: look from the send.
    let sent = Instant::now();
    api.call(
        rec,
        "POST /Items/lockers/{id}/collect",
        Method::POST,
        &format!("/Items/lockers/{locker}/collect"),
        None,
        Some(json!({"otp": code})),
    )
    .await?;
    let accepted = Instant::now();
    if let Some(doors) = doors {
        let unlocked = doors.unlocked_after(locker, sent, STEP).await?;
        rec.record(
            "stage: collect accepted → unlock at agent",
            unlocked.saturating_duration_since(accepted),
        );
        doors.doors.close(locker);
    }
    let closed_ms = crate::epoch_ms();
    smtp.try_take_matching(sender_email, 1, STEP, |m| {
        m.body().contains(&format!("\"{name}\" was collected"))
    })
    .await
    .map_err(anyhow::Error::msg)?;
    rec.exchanges.push(ExchangeMarks {
        item: item_id,
        dropped_ms,
        closed_ms,
        emailed_ms: crate::epoch_ms(),
    });
    rec.record("exchange (drop → sender email)", started.elapsed());
    Ok(())
}

/// Maintenance unlocks: accepted by the api → the door unlocked at the agent.
pub async fn unlock(
    api: &Api,
    admin: &str,
    lockers: &[i64],
    site: &Site,
    budget: Arc<Budget>,
) -> Recorder {
    let tasks = lockers.iter().map(|&locker| {
        let (api, admin, mut tally) = (api.clone(), admin.to_owned(), budget.tally());
        let doors = site.doors.get(&locker).cloned();
        tokio::spawn(async move {
            let Some(doors) = doors else {
                let mut rec = Recorder::default();
                rec.error("unlock: locker has no agent");
                return rec;
            };
            while let Some(rec) = tally.next() {
                let path = format!("/Admin/{locker}/unlock");
                // The door may open before the answer has reached us: look from the send.
                let sent = Instant::now();
                if api
                    .call(
                        rec,
                        "POST /Admin/{id}/unlock",
                        Method::POST,
                        &path,
                        Some(&admin),
                        None,
                    )
                    .await
                    .is_err()
                {
                    continue;
                }
                let accepted = Instant::now();
                match doors.unlocked_after(locker, sent, STEP).await {
                    Ok(at) => rec.record(
                        "stage: unlock accepted → unlock at agent",
                        at.saturating_duration_since(accepted),
                    ),
                    Err(_) => rec.error("unlock: not unlocked at the agent"),
                }
                doors.doors.close(locker);
            }
            tally.finish()
        })
    });
    collect(tasks).await
}

async fn collect(tasks: impl Iterator<Item = tokio::task::JoinHandle<Recorder>>) -> Recorder {
    let mut all = Recorder::default();
    for rec in futures::future::join_all(tasks).await {
        match rec {
            Ok(rec) => all.merge(rec),
            Err(_) => all.error("task panicked"),
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn units_begun_in_the_warm_up_are_run_but_only_their_errors_kept() {
        let budget = Budget::new(None, Duration::from_secs(60), Duration::from_millis(100));
        let mut tally = budget.tally();
        let rec = tally.next().expect("the warm-up is run");
        rec.record("unit", Duration::from_millis(900));
        rec.error("unit: refused");
        tokio::time::sleep_until(budget.measured_from().into()).await;
        let rec = tally.next().expect("the measurement is run");
        rec.record("unit", Duration::from_millis(5));
        let rec = tally.finish();
        let summary = &rec.summaries(Duration::from_secs(1))["unit"];
        assert_eq!((summary.count, summary.max_ms), (1, 5.0));
        assert_eq!(rec.total_errors(), 1);
    }

    #[test]
    fn a_run_by_count_has_no_warm_up() {
        let budget = Budget::new(Some(1), Duration::ZERO, Duration::from_secs(60));
        let mut tally = budget.tally();
        tally
            .next()
            .expect("one unit was asked for")
            .record("unit", Duration::from_millis(5));
        assert!(tally.next().is_none(), "one unit was asked for");
        assert_eq!(
            tally.finish().series["unit"]
                .summary(Duration::from_secs(1))
                .count,
            1
        );
    }
}
