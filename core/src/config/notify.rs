use secrecy::SecretString;

use super::{ConfigError, Env, Profile};

/// How email and SMS leave: SMTP and Twilio when configured. A channel left
/// out prints to the console under `cargo run`, and is refused (with a
/// warning at start) in production. And the secret one-time codes are
/// derived from (`OTP_SECRET`), so every try of a code job sends the same
/// code.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub smtp: Option<SmtpConfig>,
    pub twilio: Option<TwilioConfig>,
    pub code_secret: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: local relays and tests only.
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, SecretString)>,
    /// The sender, e.g. `Locker Exchange <lockers@example.com>`.
    pub from: String,
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: SecretString,
    /// The number messages come from, E.164.
    pub from: String,
    /// `https://api.twilio.com`, or a stand-in for tests.
    pub api_base: String,
}

pub const TWILIO_API_BASE: &str = "https://api.twilio.com";

impl NotifyConfig {
    pub fn load(env: &Env, profile: Profile) -> Result<Self, ConfigError> {
        let code_secret = env.secret("OTP_SECRET", profile, || {
            "development-otp-secret-not-for-production".into()
        })?;
        Ok(Self {
            smtp: SmtpConfig::load(env)?,
            twilio: TwilioConfig::load(env)?,
            code_secret,
        })
    }
}

impl SmtpConfig {
    fn load(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(host) = env.get("SMTP_HOST")? else {
            return Ok(None);
        };
        let tls = match env
            .get("SMTP_TLS")?
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(other) => {
                return Err(ConfigError::new(
                    "SMTP_TLS",
                    format!("expected starttls, tls or none, got {other:?}"),
                ));
            }
        };
        let default_port = match tls {
            SmtpTls::StartTls => "587",
            SmtpTls::Tls => "465",
            SmtpTls::None => "25",
        };
        let port = env.parse_or("SMTP_PORT", default_port, "a port number")?;
        let credentials = match (env.get("SMTP_USERNAME")?, env.get("SMTP_PASSWORD")?) {
            (Some(user), Some(password)) => Some((user, SecretString::from(password))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "SMTP_PASSWORD",
                    "is required with SMTP_USERNAME",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "SMTP_USERNAME",
                    "is required with SMTP_PASSWORD",
                ));
            }
        };
        let from = env.required("EMAIL_FROM")?;
        if !from.contains('@') {
            return Err(ConfigError::new(
                "EMAIL_FROM",
                "expected an address such as lockers@example.com",
            ));
        }
        Ok(Some(Self {
            host,
            port,
            tls,
            credentials,
            from,
        }))
    }
}

impl TwilioConfig {
    fn load(env: &Env) -> Result<Option<Self>, ConfigError> {
        let sid = env.get("TWILIO_ACCOUNT_SID")?;
        let token = env.get("TWILIO_AUTH_TOKEN")?;
        let from = env.get("TWILIO_PHONE_NUMBER")?;
        if sid.is_none() && token.is_none() && from.is_none() {
            return Ok(None);
        }
        let missing =
            |name: &'static str| ConfigError::new(name, "is required when Twilio is configured");
        let from = from.ok_or_else(|| missing("TWILIO_PHONE_NUMBER"))?;
        let from = crate::domain::Phone::parse(&from, None)
            .map_err(|problem| ConfigError::new("TWILIO_PHONE_NUMBER", problem))?;
        let api_base = env
            .get("TWILIO_API_BASE")?
            .unwrap_or_else(|| TWILIO_API_BASE.into());
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(ConfigError::new(
                "TWILIO_API_BASE",
                "expected an http(s):// URL",
            ));
        }
        Ok(Some(Self {
            account_sid: sid.ok_or_else(|| missing("TWILIO_ACCOUNT_SID"))?,
            auth_token: token.ok_or_else(|| missing("TWILIO_AUTH_TOKEN"))?.into(),
            from: from.to_string(),
            api_base: api_base.trim_end_matches('/').to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_channels_name_what_is_missing() {
        let err = NotifyConfig::load(
            &Env::from_pairs([("SMTP_HOST", "mail")]),
            Profile::Development,
        )
        .unwrap_err();
        assert_eq!(err.name, "EMAIL_FROM");
        let err = NotifyConfig::load(
            &Env::from_pairs([
                ("SMTP_HOST", "mail"),
                ("EMAIL_FROM", "a@b.c"),
                ("SMTP_TLS", "ssl"),
            ]),
            Profile::Development,
        )
        .unwrap_err();
        assert_eq!(err.name, "SMTP_TLS");
        let err = NotifyConfig::load(
            &Env::from_pairs([("TWILIO_ACCOUNT_SID", "AC1")]),
            Profile::Development,
        )
        .unwrap_err();
        assert_eq!(err.name, "TWILIO_PHONE_NUMBER");
        let ok = NotifyConfig::load(
            &Env::from_pairs([
                ("SMTP_HOST", "mail"),
                ("EMAIL_FROM", "a@b.c"),
                ("SMTP_TLS", "tls"),
            ]),
            Profile::Development,
        )
        .unwrap();
        assert_eq!(ok.smtp.unwrap().port, 465);
        assert!(ok.twilio.is_none());
    }

    #[test]
    fn production_needs_its_own_code_secret() {
        let err = NotifyConfig::load(&Env::from_pairs([]), Profile::Production).unwrap_err();
        assert_eq!(err.name, "OTP_SECRET");
        let err = NotifyConfig::load(
            &Env::from_pairs([("OTP_SECRET", "short")]),
            Profile::Production,
        )
        .unwrap_err();
        assert_eq!(err.name, "OTP_SECRET");
        let secret = "x".repeat(32);
        assert!(
            NotifyConfig::load(
                &Env::from_pairs([("OTP_SECRET", secret.as_str())]),
                Profile::Production
            )
            .is_ok()
        );
    }
}
