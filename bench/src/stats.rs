//! Latency samples, error counts, and how they are reported.

use std::collections::BTreeMap;
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
}
