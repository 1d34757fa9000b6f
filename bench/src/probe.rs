//! What the run costs and what bounds it: CPU seconds and peak memory of the
//! stack's processes (from /proc), Argon2 verifications per core,
//! PostgreSQL's own read ceilings (pgbench: select-only, and the by-place
//! statement alone), and where an unlock's and an item's time goes (the
//! database's timestamps).

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use locker_core::domain::LockerStatus;
use serde::Serialize;

use crate::stats::ItemTimes;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    /// Of which on the process's Argon2 threads (named `argon2-N`).
    pub argon2_cpu_seconds: f64,
    /// Peak resident set size (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Current resident set size (VmRSS), MiB.
    pub rss_mib: f64,
}

/// Reads a process's CPU time and memory; `None` when it is not visible.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let (_, ticks) = cpu_ticks(&format!("/proc/{pid}/stat"))?;
    let argon2_ticks: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| cpu_ticks(&task.path().join("stat").to_string_lossy()))
        .filter(|(command, _)| command.starts_with("argon2-"))
        .map(|(_, ticks)| ticks)
        .sum();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hz = clock_ticks();
    Some(ProcSample {
        cpu_seconds: ticks as f64 / hz,
        argon2_cpu_seconds: argon2_ticks as f64 / hz,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        rss_mib: kib("VmRSS:") / 1024.0,
    })
}

/// A process's or thread's command name and CPU ticks (user + system) from
/// its `stat` file.
fn cpu_ticks(stat_path: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let (head, rest) = stat.rsplit_once(") ")?;
    let command = head.split_once(" (").map_or("", |(_, c)| c).to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((command, ticks(11)? + ticks(12)?))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU used and peak memory of each named process between two samples.
pub fn usage(
    before: &BTreeMap<String, Option<ProcSample>>,
    after: &BTreeMap<String, Option<ProcSample>>,
) -> BTreeMap<String, Option<ProcSample>> {
    after
        .iter()
        .map(|(name, a)| {
            let used = match (before.get(name).copied().flatten(), a) {
                (Some(b), Some(a)) => Some(ProcSample {
                    cpu_seconds: a.cpu_seconds - b.cpu_seconds,
                    argon2_cpu_seconds: a.argon2_cpu_seconds - b.argon2_cpu_seconds,
                    ..*a
                }),
                _ => None,
            };
            (name.clone(), used)
        })
        .collect()
}

pub fn sample_all(pids: &BTreeMap<String, u32>) -> BTreeMap<String, Option<ProcSample>> {
    pids.iter().map(|(n, p)| (n.clone(), sample(*p))).collect()
}

/// Every process's CPU ticks by pid (with its command name), and the
/// machine's busy and total ticks: the whole machine's share-out of a run,
/// beyond the processes named (PostgreSQL's backends, the broker, ...).
pub struct MachineSample {
    processes: BTreeMap<u32, (String, u64)>,
    busy: u64,
    total: u64,
}

pub fn sample_machine() -> MachineSample {
    let mut processes = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(found) = cpu_ticks(&entry.path().join("stat").to_string_lossy()) {
            processes.insert(pid, found);
        }
    }
    // The first line of /proc/stat: user nice system idle iowait irq softirq steal.
    let line = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = line
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    MachineSample {
        processes,
        busy: total - idle,
        total,
    }
}

#[derive(Debug, Serialize)]
pub struct MachineUsage {
    /// CPU seconds the machine was busy, of all its cores' seconds.
    pub busy_cpu_seconds: f64,
    pub cpu_seconds: f64,
    /// CPU seconds by command name, biggest first (processes that ended
    /// during the run are missing).
    pub by_command: Vec<(String, f64)>,
}

pub fn machine_usage(before: &MachineSample, after: &MachineSample) -> MachineUsage {
    let hz = clock_ticks();
    let mut by_command: BTreeMap<&str, u64> = BTreeMap::new();
    for (pid, (command, ticks)) in &after.processes {
        let earlier = match before.processes.get(pid) {
            Some((c, t)) if c == command => *t,
            Some(_) => continue,
            None => 0,
        };
        *by_command.entry(command).or_default() += ticks.saturating_sub(earlier);
    }
    let mut by_command: Vec<(String, f64)> = by_command
        .into_iter()
        .filter(|(_, t)| *t > 0)
        .map(|(c, t)| (c.to_owned(), t as f64 / hz))
        .collect();
    by_command.sort_by(|a, b| b.1.total_cmp(&a.1));
    MachineUsage {
        busy_cpu_seconds: after.busy.saturating_sub(before.busy) as f64 / hz,
        cpu_seconds: after.total.saturating_sub(before.total) as f64 / hz,
        by_command,
    }
}

/// Waits (up to `patience`) until the machine is nearly idle, so that a
/// ceiling is not measured against work a run left behind (the database's
/// autovacuum and checkpoints after a write load). Returns the busy share of
/// the last half second.
pub fn settle(patience: Duration) -> f64 {
    let started = Instant::now();
    loop {
        let before = sample_machine();
        std::thread::sleep(Duration::from_millis(500));
        let after = sample_machine();
        let total = after.total.saturating_sub(before.total).max(1);
        let busy = after.busy.saturating_sub(before.busy) as f64 / total as f64;
        if busy < 0.1 || started.elapsed() >= patience {
            return busy;
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Argon2Ceiling {
    pub cores: usize,
    pub verifications_per_second_per_core: f64,
    pub verifications_per_second: f64,
}

/// Argon2id verifications per second with the parameters the stack uses,
/// one thread per core for `for_how_long`.
pub fn argon2_ceiling(for_how_long: Duration) -> Argon2Ceiling {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hash = locker_core::hashing::hash_blocking("123456").expect("hash");
    let start = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                let hash = hash.clone();
                scope.spawn(move || {
                    let mut n = 0;
                    while start.elapsed() < for_how_long {
                        assert!(locker_core::hashing::verify_blocking("123456", &hash));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let total = counts.iter().sum::<u64>() as f64 / start.elapsed().as_secs_f64();
    Argon2Ceiling {
        cores,
        verifications_per_second_per_core: total / cores as f64,
        verifications_per_second: total,
    }
}

/// pgbench select-only transactions per second against a scratch database
/// beside `database_url`'s, at `clients` connections.
pub fn pgbench_select_only(
    database_url: &str,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    let (server, _) = database_url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("--database-url names no database"))?;
    let scratch = format!("{server}/lockerx_pgbench");
    let admin = format!("{server}/postgres");
    let _ = Command::new("psql")
        .args([&admin, "-qc", "CREATE DATABASE lockerx_pgbench"])
        .output();
    let init = Command::new("pgbench")
        .args(["-i", "-q", "-s", "10", &scratch])
        .output()?;
    anyhow::ensure!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    pgbench(&scratch, clients, seconds, &["-S"])
}

/// How many times a second PostgreSQL answers `GET /lockers/by-place`'s own
/// statement for `place_key`, with nothing but pgbench around it: prepared
/// once a connection, as the api's driver does, at `clients` connections,
/// on the stack's database. What reads could reach were the api free.
pub fn pgbench_by_place(
    database_url: &str,
    place_key: &str,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    // The api's parameters, written in: the status counted free, every
    // status kept, the api's default page.
    let statement = locker_core::store::lockers::AT_PLACE
        .replace("$5", "0")
        .replace("$4", "50")
        .replace("$3", "NULL")
        .replace("$2", &quoted(LockerStatus::Available.as_str()))
        .replace("$1", &quoted(place_key));
    let script =
        std::env::temp_dir().join(format!("locker-bench-by-place-{}.sql", std::process::id()));
    std::fs::write(&script, format!("{statement};\n"))?;
    let file = script.to_string_lossy();
    let tps = pgbench(
        database_url,
        clients,
        seconds,
        &["-M", "prepared", "-f", &file],
    );
    let _ = std::fs::remove_file(&script);
    tps
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs pgbench without vacuuming first; its transactions per second.
fn pgbench(database_url: &str, clients: usize, seconds: u64, how: &[&str]) -> anyhow::Result<f64> {
    let run = Command::new("pgbench")
        .args(how)
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            database_url,
        ])
        .output()?;
    let out = String::from_utf8_lossy(&run.stdout);
    anyhow::ensure!(
        run.status.success(),
        "pgbench {} failed: {}",
        how.join(" "),
        String::from_utf8_lossy(&run.stderr)
    );
    out.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {out}"))
}

/// One stage of the way from an unlock's job to its door, timed from the
/// database's own timestamps (every process stamps them with the same
/// machine's clock).
#[derive(Debug, Serialize)]
pub struct DoorHop {
    /// `drop`, `collect` or `maintenance`.
    pub purpose: String,
    pub hop: String,
    pub count: u64,
    pub p50_ms: i64,
    pub p90_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

/// The four stages of every unlock issued between `since` and `until` (ms
/// since the epoch): the job written (in the transaction that asked for
/// it) until a relay takes it for the queue; taken until a worker
/// records its command; recorded until the agent says the door opened;
/// opened until the agent's answer is recorded.
pub fn door_path(database_url: &str, since: i64, until: i64) -> anyhow::Result<Vec<DoorHop>> {
    let query = format!(
        "WITH c AS ( \
           SELECT c.purpose, o.created_at AS written, o.published_at AS relayed, \
                  c.issued_at AS recorded, e.at AS opened, c.acked_at AS answered \
           FROM commands c JOIN outbox o ON c.id = 'job-' || o.id \
           LEFT JOIN door_events e ON e.command_id = c.id AND e.kind = 'door_opened' \
           WHERE c.issued_at BETWEEN {since} AND {until}), \
         h AS ( \
           SELECT purpose, 1 AS n, 'written → taken by a relay' AS hop, relayed - written AS ms FROM c \
           UNION ALL SELECT purpose, 2, 'taken → command recorded', recorded - relayed FROM c \
           UNION ALL SELECT purpose, 3, 'recorded → door opened at the agent', opened - recorded FROM c \
           UNION ALL SELECT purpose, 4, 'opened → answer recorded', answered - opened FROM c) \
         SELECT purpose, hop, COUNT(*), \
           percentile_disc(0.5) WITHIN GROUP (ORDER BY ms), \
           percentile_disc(0.9) WITHIN GROUP (ORDER BY ms), \
           percentile_disc(0.99) WITHIN GROUP (ORDER BY ms), MAX(ms) \
         FROM h WHERE ms IS NOT NULL GROUP BY purpose, n, hop ORDER BY purpose, n"
    );
    psql_rows(database_url, &query)?
        .iter()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let number = |i: usize| -> anyhow::Result<i64> {
                f.get(i)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("unexpected psql row: {line}"))
            };
            let text = |i: usize| f.get(i).copied().unwrap_or_default().to_owned();
            Ok(DoorHop {
                purpose: text(0),
                hop: text(1),
                count: number(2)? as u64,
                p50_ms: number(3)?,
                p90_ms: number(4)?,
                p99_ms: number(5)?,
                max_ms: number(6)?,
            })
        })
        .collect()
}

/// The `STORED` and `COLLECTED` timestamps of the items made since `since`
/// (ms since the epoch) that reached both.
pub fn item_times(database_url: &str, since: i64) -> anyhow::Result<HashMap<i64, ItemTimes>> {
    let query = format!(
        "SELECT id, stored_at, collected_at FROM items \
         WHERE created_at >= {since} AND stored_at IS NOT NULL AND collected_at IS NOT NULL"
    );
    psql_rows(database_url, &query)?
        .iter()
        .map(|line| {
            let f: Vec<i64> = line.split('\t').filter_map(|v| v.parse().ok()).collect();
            match f[..] {
                [id, stored_ms, collected_ms] => Ok((
                    id,
                    ItemTimes {
                        stored_ms,
                        collected_ms,
                    },
                )),
                _ => anyhow::bail!("unexpected psql row: {line}"),
            }
        })
        .collect()
}

/// The rows `query` returns, each as its fields separated by tabs.
fn psql_rows(database_url: &str, query: &str) -> anyhow::Result<Vec<String>> {
    let run = Command::new("psql")
        .args(["-qAtX", "-F", "\t", database_url, "-c", query])
        .output()?;
    anyhow::ensure!(
        run.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    Ok(String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}
