//! Latency samples, error counts, and how they are reported.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

#[derive(Debug, Serialize)]
pub struct Summary {
    pub count: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn summary(&self, elapsed: Duration) -> Summary {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
            }
        };
        Summary {
            count: v.len(),
            per_second: v.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// Named latency series (per endpoint or per stage) and errors by kind.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    pub series: BTreeMap<String, Samples>,
    pub errors: BTreeMap<String, u64>,
    /// Each completed exchange's steps as the benchmark saw them.
    pub exchanges: Vec<ExchangeMarks>,
}

/// When the benchmark sent an exchange's drop, closed its door after the
/// collect, and took the sender's email (ms since the epoch), to set beside
/// the item's own timestamps in the database: the benchmark waits on what a
/// person waits on (the emails), never polling the item for its status.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeMarks {
    pub item: i64,
    pub dropped_ms: i64,
    pub closed_ms: i64,
    pub emailed_ms: i64,
}

/// An item's own timestamps (ms since the epoch), stamped by the stack.
#[derive(Debug, Clone, Copy)]
pub struct ItemTimes {
    pub stored_ms: i64,
    pub collected_ms: i64,
}

impl Recorder {
    pub fn record(&mut self, name: &str, d: Duration) {
        self.series.entry(name.to_owned()).or_default().push(d);
    }

    pub fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        for (k, v) in other.series {
            self.series.entry(k).or_default().extend(v);
        }
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.exchanges.extend(other.exchanges);
    }

    /// The stages around `STORED` and `COLLECTED`: from the benchmark's
    /// marks to the items' timestamps, both on this machine's clock (to the
    /// ms).
    pub fn add_item_stages(&mut self, times: &HashMap<i64, ItemTimes>) {
        let span =
            |from: i64, to: i64| Duration::from_millis(to.saturating_sub(from).max(0) as u64);
        for m in std::mem::take(&mut self.exchanges) {
            let Some(t) = times.get(&m.item) else {
                self.error("exchange: item not found in the database");
                continue;
            };
            self.record("stage: drop → STORED", span(m.dropped_ms, t.stored_ms));
            self.record(
                "stage: door closed → COLLECTED",
                span(m.closed_ms, t.collected_ms),
            );
            self.record(
                "stage: COLLECTED → sender email at SMTP",
                span(t.collected_ms, m.emailed_ms),
            );
        }
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn summaries(&self, elapsed: Duration) -> BTreeMap<String, Summary> {
        self.series
            .iter()
            .map(|(k, v)| (k.clone(), v.summary(elapsed)))
            .collect()
    }
}

pub fn table(summaries: &BTreeMap<String, Summary>) -> String {
    let mut out = format!(
        "{:<44} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "series", "count", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (name, s) in summaries {
        out += &format!(
            "{:<44} {:>8} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
            name, s.count, s.per_second, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_sample() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.push(Duration::from_millis(ms));
        }
        let sum = s.summary(Duration::from_secs(10));
        assert_eq!(
            (sum.p50_ms, sum.p95_ms, sum.p99_ms, sum.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(sum.per_second, 10.0);
    }

    #[test]
    fn item_stages_run_from_the_benchmarks_marks_to_the_items_timestamps() {
        let mut rec = Recorder::default();
        let mark = |item| ExchangeMarks {
            item,
            dropped_ms: 1_000,
            closed_ms: 2_000,
            emailed_ms: 2_050,
        };
        rec.exchanges = vec![mark(1), mark(2)];
        // Item 1 was stamped 30 ms after its drop and 4 ms after its door
        // closed; item 2 is not in the database.
        let times = HashMap::from([(
            1,
            ItemTimes {
                stored_ms: 1_030,
                collected_ms: 2_004,
            },
        )]);
        rec.add_item_stages(&times);
        let ms = |name: &str| rec.series[name].summary(Duration::from_secs(1)).max_ms;
        assert_eq!(ms("stage: drop → STORED"), 30.0);
        assert_eq!(ms("stage: door closed → COLLECTED"), 4.0);
        assert_eq!(ms("stage: COLLECTED → sender email at SMTP"), 46.0);
        assert_eq!(rec.series["stage: drop → STORED"].0.len(), 1);
        assert_eq!(rec.total_errors(), 1);
    }
}
