use std::collections::HashMap;
use std::str::FromStr;

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

/// Where configuration is read from: the process environment (after loading
/// `.env`), or a fixed map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    fixed: Option<HashMap<String, String>>,
}

impl Env {
    /// The process environment, with a `.env` file in the working directory
    /// filling in what is not already set.
    pub fn process() -> Self {
        let _ = dotenvy::dotenv();
        Self { fixed: None }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let map = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { fixed: Some(map) }
    }

    /// The value of `name`, `None` when unset or blank.
    pub fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let raw = match &self.fixed {
            Some(map) => map.get(name).cloned(),
            None => match std::env::var(name) {
                Ok(v) => Some(v),
                Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::new(name, "is not valid UTF-8"));
                }
            },
        };
        Ok(raw.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name)?
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// A secret of at least 32 bytes (shorter keys are guessable offline).
    /// Required in production; under `cargo run`, `development` gives one.
    pub fn secret(
        &self,
        name: &'static str,
        profile: super::Profile,
        development: impl FnOnce() -> String,
    ) -> Result<secrecy::SecretString, ConfigError> {
        const MIN_SECRET_BYTES: usize = 32;
        match (self.get(name)?, profile) {
            (Some(value), _) if value.len() < MIN_SECRET_BYTES => Err(ConfigError::new(
                name,
                format!("must be at least {MIN_SECRET_BYTES} bytes long"),
            )),
            (Some(value), _) => Ok(value.into()),
            (None, super::Profile::Development) => Ok(development().into()),
            (None, super::Profile::Production) => {
                Err(ConfigError::new(name, "is required but not set"))
            }
        }
    }

    /// Parses `name`, falling back to `default` when unset; `expected` says
    /// what a valid value looks like.
    pub fn parse_or<T: FromStr>(
        &self,
        name: &'static str,
        default: &str,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let raw = self.get(name)?.unwrap_or_else(|| default.to_owned());
        raw.parse()
            .map_err(|_| ConfigError::new(name, format!("expected {expected}, got {raw:?}")))
    }
}
