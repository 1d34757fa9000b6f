use std::time::Duration;

use super::{ConfigError, Env};

/// The rules of the exchange: one-time codes, their limits, and how phone
/// numbers are read.
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// How long a code stays valid (`OTP_EXPIRY_MINUTES`, default 5).
    pub otp_expiry: Duration,
    /// Wrong tries that void a code.
    pub otp_max_attempts: i64,
    /// Wrong codes in a row on one item that start a cool-down.
    pub otp_failure_cap: i64,
    /// How long that cool-down lasts (`OTP_COOLDOWN_MINUTES`, default 15).
    pub otp_cooldown: Duration,
    pub limits: RateLimits,
    /// How long a sender has to open the door after dropping
    /// (`DROP_WINDOW_MINUTES`, default 10).
    pub drop_window: Duration,
    /// How long a receiver has to collect (`PICKUP_HOURS`, default 72).
    pub pickup_window: Duration,
    /// ISO country for numbers written without `+` (`PHONE_DEFAULT_REGION`).
    pub phone_region: Option<String>,
}

/// Code requests allowed per window, counted per locker, per client address
/// and per contact; and collect attempts per client address.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub window: Duration,
    pub per_locker: i64,
    pub per_client: i64,
    pub per_contact: i64,
    pub collects_per_client: i64,
}

impl ExchangeConfig {
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let minutes = |name, default| -> Result<Duration, ConfigError> {
            let n: u64 = env.parse_or(name, default, "a positive whole number of minutes")?;
            if n == 0 {
                return Err(ConfigError::new(name, "must be at least 1"));
            }
            Ok(Duration::from_secs(n * 60))
        };
        let count = |name, default| -> Result<i64, ConfigError> {
            let n: i64 = env.parse_or(name, default, "a positive whole number")?;
            if n < 1 {
                return Err(ConfigError::new(name, "must be at least 1"));
            }
            Ok(n)
        };
        let phone_region = env.get("PHONE_DEFAULT_REGION")?;
        let known_region =
            |r: &String| r.len() == 2 && r.parse::<phonenumber::country::Id>().is_ok();
        if phone_region
            .as_ref()
            .is_some_and(|r| !known_region(&r.to_ascii_uppercase()))
        {
            return Err(ConfigError::new(
                "PHONE_DEFAULT_REGION",
                "expected a two-letter country code such as US",
            ));
        }
        Ok(Self {
            otp_expiry: minutes("OTP_EXPIRY_MINUTES", "5")?,
            otp_max_attempts: 5,
            otp_failure_cap: 10,
            otp_cooldown: minutes("OTP_COOLDOWN_MINUTES", "15")?,
            limits: RateLimits {
                window: minutes("OTP_RATE_WINDOW_MINUTES", "10")?,
                per_locker: count("OTP_RATE_PER_LOCKER", "10")?,
                per_client: count("OTP_RATE_PER_CLIENT", "20")?,
                per_contact: count("OTP_RATE_PER_CONTACT", "5")?,
                collects_per_client: count("COLLECT_RATE_PER_CLIENT", "30")?,
            },
            drop_window: minutes("DROP_WINDOW_MINUTES", "10")?,
            pickup_window: minutes("PICKUP_HOURS", "72")? * 60,
            phone_region,
        })
    }
}
