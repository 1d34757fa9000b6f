use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{Env, Profile};

/// HMAC algorithms for signing tokens; `ALGORITHM` picks one and validation
/// accepts no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_uppercase().as_str() {
            "HS256" => Ok(Self::HS256),
            "HS384" => Ok(Self::HS384),
            "HS512" => Ok(Self::HS512),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub access_secret: SecretString,
    pub refresh_secret: SecretString,
    pub algorithm: JwtAlgorithm,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl AuthConfig {
    pub fn load(env: &Env, profile: Profile) -> Option<Self> {
        // Development keys live as long as the process: restarting logs everyone out.
        let access_secret = env.secret("ACCESS_SECRET_KEY", profile, random_key);
        let refresh_secret = env.secret("REFRESH_SECRET_KEY", profile, random_key);
        if let (Some(access), Some(refresh)) = (&access_secret, &refresh_secret)
            && access.expose_secret() == refresh.expose_secret()
        {
            env.problem("REFRESH_SECRET_KEY", "must differ from ACCESS_SECRET_KEY");
        }
        let algorithm = env.parse("ALGORITHM", "one of HS256, HS384, HS512");
        let access_ttl = minutes(env, "ACCESS_TOKEN_EXPIRE_MINUTES");
        let refresh_ttl = minutes(env, "REFRESH_TOKEN_EXPIRE_MINUTES");
        Some(Self {
            access_secret: access_secret?,
            refresh_secret: refresh_secret?,
            algorithm: algorithm?,
            access_ttl: access_ttl?,
            refresh_ttl: refresh_ttl?,
        })
    }
}

fn random_key() -> String {
    use std::fmt::Write;
    rand::random::<[u8; 32]>()
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn minutes(env: &Env, name: &'static str) -> Option<Duration> {
    env.positive(name, " of minutes")
        .map(|n| Duration::from_secs(n * 60))
}

/// The first administrator, created (or a user account taken over) at start from `ADMIN_EMAIL`
/// and `ADMIN_PASSWORD`.
#[derive(Debug, Clone)]
pub struct AdminSeed {
    pub email: String,
    pub password: Option<SecretString>,
}

pub const DEV_ADMIN_EMAIL: &str = "admin@example.com";
pub const DEV_ADMIN_PASSWORD: &str = "locker-admin-dev";

impl AdminSeed {
    pub fn load(env: &Env, profile: Profile) -> Option<Self> {
        let email = env.get("ADMIN_EMAIL");
        let password = env.get("ADMIN_PASSWORD").map(SecretString::from);
        match (email, profile) {
            (Some(email), _) => Some(Self { email, password }),
            (None, Profile::Development) => Some(Self {
                email: DEV_ADMIN_EMAIL.into(),
                password: Some(password.unwrap_or_else(|| DEV_ADMIN_PASSWORD.into())),
            }),
            (None, Profile::Production) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a-very-long-access-secret-key-0123456789";
    const R: &str = "a-very-long-refresh-secret-key-0123456789";

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            (vec![("REFRESH_SECRET_KEY", R)], "ACCESS_SECRET_KEY"),
            (
                vec![("ACCESS_SECRET_KEY", "short"), ("REFRESH_SECRET_KEY", R)],
                "ACCESS_SECRET_KEY",
            ),
            (
                vec![("ACCESS_SECRET_KEY", A), ("REFRESH_SECRET_KEY", A)],
                "REFRESH_SECRET_KEY",
            ),
            (
                vec![
                    ("ACCESS_SECRET_KEY", A),
                    ("REFRESH_SECRET_KEY", R),
                    ("ALGORITHM", "none"),
                ],
                "ALGORITHM",
            ),
            (
                vec![
                    ("ACCESS_SECRET_KEY", A),
                    ("REFRESH_SECRET_KEY", R),
                    ("ACCESS_TOKEN_EXPIRE_MINUTES", "soon"),
                ],
                "ACCESS_TOKEN_EXPIRE_MINUTES",
            ),
        ];
        for (pairs, name) in cases {
            let env = Env::from_pairs(pairs);
            let err = env
                .finish(AuthConfig::load(&env, Profile::Production))
                .unwrap_err();
            assert_eq!(err.names(), [name], "{err}");
        }
    }

    #[test]
    fn defaults_follow_the_original_product() {
        let env = Env::from_pairs([("ACCESS_SECRET_KEY", A), ("REFRESH_SECRET_KEY", R)]);
        let auth = AuthConfig::load(&env, Profile::Production).unwrap();
        assert_eq!(auth.algorithm, JwtAlgorithm::HS256);
        assert_eq!(auth.access_ttl, Duration::from_secs(15 * 60));
        assert_eq!(auth.refresh_ttl, Duration::from_secs(10080 * 60));
        let dev = AuthConfig::load(&Env::from_pairs([]), Profile::Development).unwrap();
        assert_ne!(
            dev.access_secret.expose_secret(),
            dev.refresh_secret.expose_secret()
        );
    }
}
