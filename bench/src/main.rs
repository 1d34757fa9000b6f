//! `locker-bench`: drives a running Locker Exchange stack over its public
//! interfaces (HTTP, its own SMTP sink for codes and emails, its own
//! simulated agents over MQTT) and reports throughput, latency per endpoint
//! and per exchange stage, errors by kind, the stack's CPU and memory, and
//! the ceilings those figures are bounded by. See docs/benchmarks.md.

mod client;
mod probe;
mod reader;
mod scenarios;
mod site;
mod stats;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use locker_protocol::MqttEndpoint;
use locker_testkit::SmtpSink;
use serde_json::json;

use crate::client::Api;
use crate::scenarios::{Budget, Layout};
use crate::site::Site;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Read,
    Exchange,
    Unlock,
    Scale,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator and benchmark report for a running Locker Exchange stack")]
pub struct Options {
    #[arg(long, value_enum, default_value = "read")]
    scenario: Scenario,
    /// The api.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    base: String,
    #[arg(long, env = "ADMIN_EMAIL", default_value = "admin@example.com")]
    admin_email: String,
    #[arg(
        long,
        env = "ADMIN_PASSWORD",
        default_value = "locker-admin-dev",
        hide_env_values = true
    )]
    admin_password: String,
    /// Places the lockers are spread over.
    #[arg(long, default_value_t = 10)]
    pub places: usize,
    /// Lockers to create (exchange and unlock: at least --concurrency).
    #[arg(long, default_value_t = 50)]
    lockers: usize,
    /// Simulated agents driving those lockers (0: lockers without doors).
    #[arg(long, default_value_t = 5)]
    pub agents: usize,
    /// Requests or exchanges in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How long to run, in seconds (unless --count).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// How many requests or exchanges to run, instead of a duration.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds run before a run by duration is measured: units begun in them
    /// are not counted, nor the CPU spent then.
    #[arg(long, default_value_t = 2)]
    warm_up: u64,
    /// Where the benchmark's SMTP sink listens (the stack's SMTP_HOST/SMTP_PORT, SMTP_TLS=none).
    #[arg(long, default_value = "127.0.0.1:2525")]
    smtp: std::net::SocketAddr,
    /// The stack's broker, for the benchmark's agents.
    #[arg(long, default_value = "mqtt://127.0.0.1:1884", value_parser = MqttEndpoint::parse)]
    mqtt: MqttEndpoint,
    #[arg(long, default_value = "lockerx")]
    topic_root: String,
    /// The stack's AGENT_SIGNING_SECRET (default: `cargo run`'s).
    #[arg(
        long,
        env = "AGENT_SIGNING_SECRET",
        default_value = "development-agent-signing-secret-not-for-production",
        hide_env_values = true
    )]
    agent_secret: String,
    /// Processes to watch, name=pid (e.g. api=123 workers=456 broker=789).
    #[arg(long = "pid", value_parser = parse_pid)]
    pids: Vec<(String, u32)>,
    /// The stack's PostgreSQL database: its server's read ceiling is measured
    /// with pgbench (and, in read runs, by-place's own statement on it), and
    /// after exchange and unlock runs each unlock's stages are read from it.
    #[arg(long)]
    database_url: Option<String>,
    /// Skip measuring the ceilings.
    #[arg(long)]
    no_ceilings: bool,
    /// Write the report as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn parse_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=pid")?;
    Ok((
        name.to_owned(),
        pid.parse().map_err(|_| "pid is not a number")?,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The benchmark's own agents log their goodbyes at warn; keep the report clean.
    locker_core::telemetry::init("error");
    let opts = Options::parse();
    let api = Api::new(&opts.base);
    let pids: BTreeMap<String, u32> = opts.pids.iter().cloned().collect();
    let admin = api.login(&opts.admin_email, &opts.admin_password).await?;
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            % 0xfffff
    );

    if opts.scenario == Scenario::Scale {
        return scale(&api, &admin, &opts, &run, &pids).await;
    }

    let smtp = SmtpSink::start_on(opts.smtp).await?;
    let lockers_wanted = match opts.scenario {
        Scenario::Read => opts.lockers,
        _ => opts.lockers.max(opts.concurrency),
    };
    eprintln!(
        "setting up {lockers_wanted} lockers at {} places with {} agents",
        opts.places, opts.agents
    );
    let layout = Layout {
        places: opts.places,
        agents: opts.agents,
        lockers_per_agent: None,
        concurrency: opts.concurrency,
    };
    let (lockers, agents) =
        scenarios::make_lockers(&api, &admin, layout, &run, 0, lockers_wanted).await?;
    let site = Site::start(&opts.mqtt, &opts.topic_root, &opts.agent_secret, &agents);
    scenarios::wait_online(&api, &admin, &agents).await?;

    // Measured on both sides of the run: the machine's speed drifts.
    let ceilings_before = if opts.no_ceilings {
        None
    } else {
        Some(ceilings(&opts).await)
    };
    let progress = progress_line(api.clone());
    let budget = Budget::new(
        opts.count,
        Duration::from_secs(opts.duration),
        Duration::from_secs(opts.warm_up),
    );
    // The measurement begins when the warm-up ends.
    let window = async {
        let from = budget.measured_from();
        tokio::time::sleep_until(from.into()).await;
        // Units may begin before this wakes: the clock time of `from` itself
        // (a ms early, for rounding) is where the stack's timestamps of
        // measured units begin.
        let started_ms = epoch_ms() - from.elapsed().as_millis() as i64 - 1;
        (
            (from, started_ms),
            probe::sample_all(&pids),
            probe::sample_machine(),
        )
    };
    let work = async {
        anyhow::Ok(match opts.scenario {
            Scenario::Read => scenarios::read(&api, &admin, &opts, budget.clone()).await,
            Scenario::Exchange => {
                let sender_email = format!("sender-{run}@bench.test");
                let sender = api.new_user(&sender_email).await?;
                let mine = &lockers[..opts.concurrency.min(lockers.len())];
                scenarios::exchange(
                    &api,
                    &sender,
                    &sender_email,
                    mine,
                    &site,
                    &smtp,
                    budget.clone(),
                )
                .await
            }
            Scenario::Unlock => {
                let mine = &lockers[..opts.concurrency.min(lockers.len())];
                scenarios::unlock(&api, &admin, mine, &site, budget.clone()).await
            }
            Scenario::Scale => unreachable!(),
        })
    };
    let (rec, ((started, started_ms), before, machine_before)) = tokio::join!(work, window);
    let mut rec = rec?;
    let elapsed = started.elapsed();
    let ended_ms = epoch_ms();
    progress.abort();
    eprintln!();
    let usage = probe::usage(&before, &probe::sample_all(&pids));
    let machine = probe::machine_usage(&machine_before, &probe::sample_machine());
    site.stop().await;

    if opts.scenario == Scenario::Exchange {
        match postgres(&opts) {
            Some(url) => match probe::item_times(url, started_ms) {
                Ok(times) => rec.add_item_stages(&times),
                Err(error) => eprintln!("item stages: {error:#}"),
            },
            None => eprintln!(
                "the stages to STORED and COLLECTED are read from the items' timestamps: \
                 they need --database-url (PostgreSQL)"
            ),
        }
    }
    let summaries = rec.summaries(elapsed);
    let ceilings = match ceilings_before {
        Some(first) => Some(both_sides(first, ceilings(&opts).await)),
        None => None,
    };
    println!(
        "\nscenario {:?}, {:.1} s, concurrency {}\n",
        opts.scenario,
        elapsed.as_secs_f64(),
        opts.concurrency
    );
    print!("{}", stats::table(&summaries));
    println!(
        "\nerrors: {}",
        if rec.errors.is_empty() {
            "none".to_owned()
        } else {
            format!("{:?}", rec.errors)
        }
    );
    for (name, u) in &usage {
        match u {
            Some(u) => println!(
                "{name:<10} cpu {:.2} s ({:.0}% of one core), peak rss {:.1} MiB",
                u.cpu_seconds,
                100.0 * u.cpu_seconds / elapsed.as_secs_f64(),
                u.peak_rss_mib
            ),
            None => println!("{name:<10} not visible"),
        }
    }
    println!(
        "machine    busy {:.1} of {:.1} cpu s; {}",
        machine.busy_cpu_seconds,
        machine.cpu_seconds,
        machine
            .by_command
            .iter()
            .take(8)
            .map(|(c, s)| format!("{c} {s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(c) = &ceilings {
        print_ceilings(c, &summaries);
        print_argon2_share(c, &summaries, &usage, &machine);
    }
    let door_path = match postgres(&opts) {
        Some(url) if opts.scenario != Scenario::Read => probe::door_path(url, started_ms, ended_ms)
            .unwrap_or_else(|error| {
                eprintln!("door path: {error:#}");
                Vec::new()
            }),
        _ => Vec::new(),
    };
    print_door_path(&door_path);
    let report = json!({
        "scenario": format!("{:?}", opts.scenario).to_lowercase(),
        "seconds": elapsed.as_secs_f64(),
        "concurrency": opts.concurrency,
        "series": summaries,
        "errors": rec.errors,
        "processes": usage,
        "machine": machine,
        "ceilings": ceilings,
        "door_path": door_path,
    });
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    anyhow::ensure!(rec.total_errors() == 0, "{} errors", rec.total_errors());
    Ok(())
}

fn progress_line(api: Api) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let done = api.done.load(Ordering::Relaxed);
            eprint!(
                "\r{:>5.0} s  {done} requests  {:.0}/s   ",
                started.elapsed().as_secs_f64(),
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    })
}

async fn ceilings(opts: &Options) -> serde_json::Value {
    let busy = tokio::task::spawn_blocking(|| probe::settle(Duration::from_secs(15)))
        .await
        .unwrap_or(f64::NAN);
    if busy >= 0.1 {
        eprintln!(
            "the machine stayed {:.0}% busy: ceilings measured beside that",
            100.0 * busy
        );
    }
    let argon = tokio::task::spawn_blocking(|| probe::argon2_ceiling(Duration::from_secs(3)))
        .await
        .ok();
    let pg = match postgres(opts) {
        Some(url) => {
            let (url, clients) = (url.to_owned(), opts.concurrency);
            tokio::task::spawn_blocking(move || probe::pgbench_select_only(&url, clients, 5))
                .await
                .ok()
                .and_then(|r| r.map_err(|e| eprintln!("pgbench: {e:#}")).ok())
        }
        _ => None,
    };
    let statement = match postgres(opts) {
        Some(url) if opts.scenario == Scenario::Read => {
            let (url, clients) = (url.to_owned(), opts.concurrency);
            let place = locker_core::domain::place_key(&scenarios::place_name(0));
            tokio::task::spawn_blocking(move || probe::pgbench_by_place(&url, &place, clients, 5))
                .await
                .ok()
                .and_then(|r| r.map_err(|e| eprintln!("pgbench (by-place): {e:#}")).ok())
        }
        _ => None,
    };
    json!({
        "argon2": argon,
        "pgbench_select_only_tps": pg,
        "pgbench_by_place_tps": statement,
    })
}

/// The mean of the ceilings measured before and after the run, each side
/// kept beside it.
fn both_sides(before: serde_json::Value, after: serde_json::Value) -> serde_json::Value {
    let mean = |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => json!((a + b) / 2.0),
        _ => serde_json::Value::Null,
    };
    let ops = "verifications_per_second";
    let mut argon = before["argon2"].clone();
    if let Some(fields) = argon.as_object_mut() {
        let cores = before["argon2"]["cores"].as_f64().unwrap_or(1.0);
        let both = mean(&before["argon2"][ops], &after["argon2"][ops]);
        fields.insert(
            format!("{ops}_per_core"),
            json!(both.as_f64().map(|v| v / cores)),
        );
        fields.insert(ops.into(), both);
        fields.insert(
            format!("{ops}_each"),
            json!([before["argon2"][ops], after["argon2"][ops]]),
        );
    }
    let mut both = json!({ "argon2": argon });
    for tps in ["pgbench_select_only_tps", "pgbench_by_place_tps"] {
        both[tps] = mean(&before[tps], &after[tps]);
        both[format!("{tps}_each")] = json!([before[tps], after[tps]]);
    }
    both
}

fn print_ceilings(c: &serde_json::Value, summaries: &BTreeMap<String, stats::Summary>) {
    let per_s = |name: &str| summaries.get(name).map_or(0.0, |s| s.per_second);
    if let Some(v) = c["argon2"]["verifications_per_second"].as_f64() {
        println!(
            "argon2id operations: {v:.1}/s on {} cores ({:.1}/s per core; before the run {}, after {})",
            c["argon2"]["cores"],
            c["argon2"]["verifications_per_second_per_core"]
                .as_f64()
                .unwrap_or(0.0),
            one_decimal(&c["argon2"]["verifications_per_second_each"][0]),
            one_decimal(&c["argon2"]["verifications_per_second_each"][1]),
        );
        let exchanges = per_s("exchange (drop → sender email)");
        if exchanges > 0.0 {
            // One hash (the code, in a worker) and one verification (the
            // collect, in the api) per exchange.
            let bound = v / 2.0;
            println!(
                "  exchanges/s = {exchanges:.2} = {:.1}% of the Argon2 bound {bound:.1}/s (2 operations an exchange)",
                100.0 * exchanges / bound
            );
        }
    }
    if let Some(tps) = c["pgbench_select_only_tps"].as_f64() {
        println!(
            "pgbench select-only: {tps:.0} tps (before the run {}, after {})",
            one_decimal(&c["pgbench_select_only_tps_each"][0]),
            one_decimal(&c["pgbench_select_only_tps_each"][1]),
        );
        let reads = per_s("GET /lockers/by-place");
        if reads > 0.0 {
            println!(
                "  by-place reads/s = {reads:.0} = {:.1}% of that ceiling",
                100.0 * reads / tps
            );
        }
        if let Some(alone) = c["pgbench_by_place_tps"].as_f64() {
            println!(
                "pgbench running by-place's own statement, prepared: {alone:.0} tps = {:.1}% of select-only \
                 (before the run {}, after {}); by-place reads/s = {:.1}% of it",
                100.0 * alone / tps,
                one_decimal(&c["pgbench_by_place_tps_each"][0]),
                one_decimal(&c["pgbench_by_place_tps_each"][1]),
                100.0 * reads / alone,
            );
        }
    }
}

/// Where each unlock's time went, stage by stage, from the database.
fn print_door_path(hops: &[probe::DoorHop]) {
    if hops.is_empty() {
        return;
    }
    println!("\nunlocks by stage, from the database's timestamps (ms):\n");
    println!("| unlock | stage | count | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for h in hops {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            h.purpose, h.hop, h.count, h.p50_ms, h.p90_ms, h.p99_ms, h.max_ms
        );
    }
}

/// `--database-url`, when it names a PostgreSQL database.
fn postgres(opts: &Options) -> Option<&str> {
    opts.database_url
        .as_deref()
        .filter(|url| url.starts_with("postgres"))
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn one_decimal(v: &serde_json::Value) -> String {
    v.as_f64().map_or("–".into(), |v| format!("{v:.1}"))
}

/// Where an exchange's CPU went: the stack's Argon2 threads against what the
/// probe's operations cost alone, and the rest of the machine's work.
fn print_argon2_share(
    c: &serde_json::Value,
    summaries: &BTreeMap<String, stats::Summary>,
    usage: &BTreeMap<String, Option<probe::ProcSample>>,
    machine: &probe::MachineUsage,
) {
    let Some(exchanges) = summaries
        .get("exchange (drop → sender email)")
        .map(|s| s.count as f64)
        .filter(|n| *n > 0.0)
    else {
        return;
    };
    let argon2: f64 = usage.values().flatten().map(|u| u.argon2_cpu_seconds).sum();
    let bench: f64 = machine
        .by_command
        .iter()
        .filter(|(command, _)| command == "locker-bench")
        .map(|(_, s)| s)
        .sum();
    let alone = c["argon2"]["cores"].as_f64().unwrap_or(1.0)
        / c["argon2"]["verifications_per_second"]
            .as_f64()
            .unwrap_or(f64::NAN);
    println!(
        "  Argon2 threads: {argon2:.1} CPU s = {:.1} ms an operation (alone: {:.1} ms); \
         the rest of the machine but the benchmark: {:.1} ms an exchange",
        1000.0 * argon2 / (2.0 * exchanges),
        1000.0 * alone,
        1000.0 * (machine.busy_cpu_seconds - argon2 - bench) / exchanges,
    );
}

/// 1,000 agents holding 10,000 lockers on one broker, grown in steps; at
/// each step the watched processes' memory and CPU, and a round of unlocks.
async fn scale(
    api: &Api,
    admin: &str,
    opts: &Options,
    run: &str,
    pids: &BTreeMap<String, u32>,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut sites = Vec::new();
    let mut made = 0;
    let mut all_lockers = Vec::new();
    let mut last = probe::sample_all(pids);
    let steps = [1_000usize, 5_000, 10_000];
    for target in steps.into_iter().filter(|t| *t <= opts.lockers.max(1_000)) {
        let started = Instant::now();
        let layout = Layout {
            places: opts.places,
            agents: 0,
            lockers_per_agent: Some(10),
            concurrency: opts.concurrency,
        };
        let (ids, by_agent) =
            scenarios::make_lockers(api, admin, layout, run, made, target - made).await?;
        made = target;
        all_lockers.extend(ids);
        sites.push(Site::start(
            &opts.mqtt,
            &opts.topic_root,
            &opts.agent_secret,
            &by_agent,
        ));
        scenarios::wait_online(api, admin, &by_agent).await?;
        let setup = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = probe::sample_all(pids);
        let usage = probe::usage(&last, &now);
        last = now;
        // A round of unlocks spread over every locker so far.
        let mut rec = stats::Recorder::default();
        let sample: Vec<i64> = all_lockers
            .iter()
            .step_by((all_lockers.len() / 200).max(1))
            .copied()
            .collect();
        let round = Instant::now();
        for site in &sites {
            let mine: Vec<i64> = sample
                .iter()
                .copied()
                .filter(|l| site.doors.contains_key(l))
                .collect();
            rec.merge(
                scenarios::unlock(
                    api,
                    admin,
                    &mine,
                    site,
                    Budget::new(
                        Some(mine.len() as u64),
                        Duration::from_secs(60),
                        Duration::ZERO,
                    ),
                )
                .await,
            );
        }
        let summaries = rec.summaries(round.elapsed());
        println!(
            "\n{target} lockers, {} agents (set up in {:.1} s)",
            target / 10,
            setup.as_secs_f64()
        );
        print!("{}", stats::table(&summaries));
        for (name, u) in &usage {
            if let Some(u) = u {
                println!(
                    "  {name:<10} rss {:.1} MiB (peak {:.1}), cpu {:.2} s during the step",
                    u.rss_mib, u.peak_rss_mib, u.cpu_seconds
                );
            }
        }
        rows.push(json!({"lockers": target, "agents": target / 10, "setup_seconds": setup.as_secs_f64(), "processes": usage, "unlocks": summaries, "errors": rec.errors}));
    }
    for site in sites {
        site.stop().await;
    }
    if let Some(path) = &opts.json {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&json!({"scenario": "scale", "steps": rows}))?,
        )?;
    }
    Ok(())
}
