use super::{Env, Profile};

/// The development database when `DATABASE_URL` is not set: a file beside
/// where `cargo run` was started.
pub const DEV_DATABASE_URL: &str = "sqlite://locker-exchange.db?mode=rwc";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub backend: Backend,
    /// How long a request waits for a connection before it is answered 503
    /// (`DATABASE_ACQUIRE_TIMEOUT_SECONDS`, default 5).
    pub acquire_timeout: std::time::Duration,
    /// Connections to PostgreSQL per process (`DATABASE_POOL_SIZE`).
    pub pool_size: u32,
}

impl DatabaseConfig {
    pub fn load(env: &Env, profile: Profile) -> Option<Self> {
        let url = match profile {
            Profile::Development => env.get("DATABASE_URL").or(Some(DEV_DATABASE_URL.into())),
            Profile::Production => env.required("DATABASE_URL"),
        };
        let config = url.and_then(|url| {
            Self::parse(&url)
                .map_err(|problem| env.problem("DATABASE_URL", problem))
                .ok()
        });
        let seconds = env.positive("DATABASE_ACQUIRE_TIMEOUT_SECONDS", " of seconds");
        let pool_size = env
            .positive("DATABASE_POOL_SIZE", " of connections")
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        Some(Self {
            acquire_timeout: std::time::Duration::from_secs(seconds?),
            pool_size: pool_size?,
            ..config?
        })
    }

    /// Accepts `postgres://`, `postgresql://`, `sqlite:` and the SQLAlchemy
    /// spellings of the original product (`postgresql+asyncpg://`,
    /// `sqlite+aiosqlite://`), which name a Python driver we drop.
    pub fn parse(url: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(
                "expected a URL such as postgres://user@host/db or sqlite://file.db".into(),
            );
        };
        let base = scheme
            .split('+')
            .next()
            .unwrap_or(scheme)
            .to_ascii_lowercase();
        let backend = match base.as_str() {
            "postgres" | "postgresql" => Backend::Postgres,
            "sqlite" => Backend::Sqlite,
            _ => {
                return Err(format!(
                    "unsupported scheme {scheme:?}: use postgres:// or sqlite:"
                ));
            }
        };
        let url = match backend {
            Backend::Postgres => format!("postgres:{rest}"),
            Backend::Sqlite => {
                // SQLAlchemy writes `sqlite:///relative.db` and `sqlite:////absolute.db`.
                let path = match (scheme.contains('+'), rest.strip_prefix("///")) {
                    (true, Some(path)) => format!("//{path}"),
                    _ => rest.to_owned(),
                };
                // Create the file on first start unless the URL says otherwise.
                let create = if path.contains("mode=") || path.contains(":memory:") {
                    ""
                } else if path.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                };
                format!("sqlite:{path}{create}")
            }
        };
        Ok(Self {
            url,
            backend,
            acquire_timeout: std::time::Duration::from_secs(5),
            pool_size: 16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_spellings_select_the_backend() {
        let pg = DatabaseConfig::parse("postgresql+asyncpg://u:p@localhost:5432/db").unwrap();
        assert_eq!(pg.backend, Backend::Postgres);
        assert_eq!(pg.url, "postgres://u:p@localhost:5432/db");
        let lite = DatabaseConfig::parse("sqlite+aiosqlite:///./x.db").unwrap();
        assert_eq!(lite.backend, Backend::Sqlite);
        assert_eq!(lite.url, "sqlite://./x.db?mode=rwc");
        let abs = DatabaseConfig::parse("sqlite+aiosqlite:////var/x.db").unwrap();
        assert_eq!(abs.url, "sqlite:///var/x.db?mode=rwc");
        let plain = DatabaseConfig::parse("sqlite://data.db?mode=ro").unwrap();
        assert_eq!(plain.url, "sqlite://data.db?mode=ro");
        assert!(DatabaseConfig::parse("mysql://x").is_err());
        assert!(DatabaseConfig::parse("nonsense").is_err());
    }

    #[test]
    fn production_requires_a_database() {
        let env = Env::from_pairs([]);
        let err = env
            .finish(DatabaseConfig::load(&env, Profile::Production))
            .unwrap_err();
        assert_eq!(err.names(), ["DATABASE_URL"]);
        let dev = DatabaseConfig::load(&Env::from_pairs([]), Profile::Development).unwrap();
        assert_eq!(dev.backend, Backend::Sqlite);
    }
}
