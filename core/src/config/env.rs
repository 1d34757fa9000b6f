use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Mutex;

use super::{Profile, vars};

/// A configuration value that is missing or malformed, named by its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(name: &'static str, problem: impl Into<String>) -> Self {
        Self {
            name,
            problem: problem.into(),
        }
    }
}

/// Every problem of one start, so an operator fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<ConfigError>);

impl Problems {
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|e| e.name).collect()
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<_> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl std::error::Error for Problems {}

/// The settings of one start: what clap found (flags, the environment, a
/// `.env` file), or a fixed map in tests. Defaults come from `vars`.
/// Reading a value never stops at a problem: each is noted, and `finish`
/// reports them all.
#[derive(Debug, Default)]
pub struct Env {
    values: HashMap<String, String>,
    problems: Mutex<Vec<ConfigError>>,
    /// Every name asked for, so tests can hold `vars` to what loaders read.
    read: Mutex<BTreeSet<&'static str>>,
}

impl Env {
    /// The values clap parsed for `groups`.
    pub fn from_matches(matches: &clap::ArgMatches, groups: &[&[vars::Var]]) -> Self {
        let (values, exposed) = vars::values(matches, groups);
        let env = Self::from_pairs(values.iter().map(|(k, v)| (*k, v.as_str())));
        for name in exposed {
            env.problem(
                name,
                "is a secret: set it in the environment or .env, not on the command line",
            );
        }
        env
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let values = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            values,
            ..Self::default()
        }
    }

    /// Notes a problem; loading goes on so that every problem is found.
    pub fn problem(&self, name: &'static str, problem: impl Into<String>) {
        self.problems
            .lock()
            .expect("not poisoned")
            .push(ConfigError::new(name, problem));
    }

    /// `value` when no problem was noted, else every problem.
    pub fn finish<T>(&self, value: Option<T>) -> Result<T, Problems> {
        let problems = self.problems.lock().expect("not poisoned").clone();
        match value {
            Some(value) if problems.is_empty() => Ok(value),
            _ => {
                assert!(!problems.is_empty(), "a loader gave up without a problem");
                Err(Problems(problems))
            }
        }
    }

    /// The value of `name` (or its default), `None` when unset or blank.
    pub fn get(&self, name: &'static str) -> Option<String> {
        self.read.lock().expect("not poisoned").insert(name);
        self.values
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| vars::default_of(name).map(str::to_owned))
    }

    pub fn required(&self, name: &'static str) -> Option<String> {
        let value = self.get(name);
        if value.is_none() {
            self.problem(name, "is required but not set");
        }
        value
    }

    /// A secret of at least 32 bytes (shorter keys are guessable offline).
    /// Required in production; under `cargo run`, `development` gives one.
    pub fn secret(
        &self,
        name: &'static str,
        profile: Profile,
        development: impl FnOnce() -> String,
    ) -> Option<secrecy::SecretString> {
        const MIN_SECRET_BYTES: usize = 32;
        match (self.get(name), profile) {
            (Some(value), _) if value.len() < MIN_SECRET_BYTES => {
                self.problem(
                    name,
                    format!("must be at least {MIN_SECRET_BYTES} bytes long"),
                );
                None
            }
            (Some(value), _) => Some(value.into()),
            (None, Profile::Development) => Some(development().into()),
            (None, Profile::Production) => {
                self.problem(name, "is required but not set");
                None
            }
        }
    }

    /// Parses `name` (its default when unset); `expected` says what a valid
    /// value looks like.
    pub fn parse<T: FromStr>(&self, name: &'static str, expected: &str) -> Option<T> {
        let raw = self.required(name)?;
        let parsed = raw.parse().ok();
        if parsed.is_none() {
            self.problem(name, format!("expected {expected}, got {raw:?}"));
        }
        parsed
    }

    /// The names loaders have asked for so far.
    pub fn names_read(&self) -> BTreeSet<&'static str> {
        self.read.lock().expect("not poisoned").clone()
    }

    /// A whole number of at least 1.
    pub fn positive(&self, name: &'static str, unit: &str) -> Option<u64> {
        let n: u64 = self.parse(name, &format!("a positive whole number{unit}"))?;
        if n == 0 {
            self.problem(name, "must be at least 1");
            return None;
        }
        Some(n)
    }
}
