use std::time::Duration;

use super::Env;

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
    /// How long before the pickup deadline the receiver is reminded
    /// (`PICKUP_REMINDER_HOURS`, default 24).
    pub reminder_before: Duration,
    /// What one extension adds to the deadline (`PICKUP_EXTENSION_HOURS`,
    /// default 24).
    pub extension: Duration,
    /// How many times a sender may extend (`PICKUP_EXTENSIONS_MAX`, default 1).
    pub max_extensions: i64,
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
    pub fn load(env: &Env) -> Option<Self> {
        let minutes = |name| {
            env.positive(name, " of minutes")
                .map(|n| Duration::from_secs(n * 60))
        };
        let count = |name| env.positive(name, "").map(|n| n as i64);
        let phone_region = env.get("PHONE_DEFAULT_REGION");
        let known_region =
            |r: &String| r.len() == 2 && r.parse::<phonenumber::country::Id>().is_ok();
        if phone_region
            .as_ref()
            .is_some_and(|r| !known_region(&r.to_ascii_uppercase()))
        {
            env.problem(
                "PHONE_DEFAULT_REGION",
                "expected a two-letter country code such as US",
            );
        }
        let otp_expiry = minutes("OTP_EXPIRY_MINUTES");
        let otp_cooldown = minutes("OTP_COOLDOWN_MINUTES");
        let window = minutes("OTP_RATE_WINDOW_MINUTES");
        let per_locker = count("OTP_RATE_PER_LOCKER");
        let per_client = count("OTP_RATE_PER_CLIENT");
        let per_contact = count("OTP_RATE_PER_CONTACT");
        let collects_per_client = count("COLLECT_RATE_PER_CLIENT");
        let drop_window = minutes("DROP_WINDOW_MINUTES");
        let pickup_window = minutes("PICKUP_HOURS");
        let hours = |name| {
            env.positive(name, " of hours")
                .map(|n| Duration::from_secs(n * 3600))
        };
        let reminder_before = hours("PICKUP_REMINDER_HOURS");
        let extension = hours("PICKUP_EXTENSION_HOURS");
        let max_extensions = env.parse::<u32>("PICKUP_EXTENSIONS_MAX", "a whole number");
        Some(Self {
            otp_expiry: otp_expiry?,
            otp_max_attempts: 5,
            otp_failure_cap: 10,
            otp_cooldown: otp_cooldown?,
            limits: RateLimits {
                window: window?,
                per_locker: per_locker?,
                per_client: per_client?,
                per_contact: per_contact?,
                collects_per_client: collects_per_client?,
            },
            drop_window: drop_window?,
            pickup_window: pickup_window? * 60,
            reminder_before: reminder_before?,
            extension: extension?,
            max_extensions: i64::from(max_extensions?),
            phone_region,
        })
    }
}
