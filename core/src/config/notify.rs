use secrecy::SecretString;

use super::{Env, Profile};

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
    /// Where people reach the api (`PUBLIC_URL`), for the pickup page's
    /// link; without it the deposit notice carries the PIN only.
    pub public_url: Option<String>,
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
    pub fn load(env: &Env, profile: Profile) -> Option<Self> {
        let code_secret = env.secret("OTP_SECRET", profile, || {
            "development-otp-secret-not-for-production".into()
        });
        let smtp = SmtpConfig::load(env);
        let twilio = TwilioConfig::load(env);
        let public_url = match (env.get("PUBLIC_URL"), profile) {
            (Some(url), _) => Some(url.trim_end_matches('/').to_owned()),
            (None, Profile::Development) => Some("http://127.0.0.1:8000".to_owned()),
            (None, Profile::Production) => None,
        };
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            env.problem("PUBLIC_URL", "must start with http:// or https://");
            return None;
        }
        Some(Self {
            smtp: smtp?,
            twilio: twilio?,
            code_secret: code_secret?,
            public_url,
        })
    }
}

impl SmtpConfig {
    /// `Some(None)` when email is not configured.
    fn load(env: &Env) -> Option<Option<Self>> {
        let Some(host) = env.get("SMTP_HOST") else {
            return Some(None);
        };
        let tls = match env
            .get("SMTP_TLS")
            .map(|tls| tls.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("starttls") => Some(SmtpTls::StartTls),
            Some("tls") => Some(SmtpTls::Tls),
            Some("none") => Some(SmtpTls::None),
            Some(other) => {
                env.problem(
                    "SMTP_TLS",
                    format!("expected starttls, tls or none, got {other:?}"),
                );
                None
            }
        };
        let port = match env.get("SMTP_PORT") {
            Some(_) => env.parse("SMTP_PORT", "a port number"),
            None => tls.map(|tls| match tls {
                SmtpTls::StartTls => 587,
                SmtpTls::Tls => 465,
                SmtpTls::None => 25,
            }),
        };
        let credentials = match (env.get("SMTP_USERNAME"), env.get("SMTP_PASSWORD")) {
            (Some(user), Some(password)) => Some(Some((user, SecretString::from(password)))),
            (None, None) => Some(None),
            (Some(_), None) => {
                env.problem("SMTP_PASSWORD", "is required with SMTP_USERNAME");
                None
            }
            (None, Some(_)) => {
                env.problem("SMTP_USERNAME", "is required with SMTP_PASSWORD");
                None
            }
        };
        let from = env.required("EMAIL_FROM").filter(|from| {
            let address = from.contains('@');
            if !address {
                env.problem(
                    "EMAIL_FROM",
                    "expected an address such as lockers@example.com",
                );
            }
            address
        });
        Some(Some(Self {
            host,
            port: port?,
            tls: tls?,
            credentials: credentials?,
            from: from?,
        }))
    }
}

impl TwilioConfig {
    /// `Some(None)` when SMS is not configured.
    fn load(env: &Env) -> Option<Option<Self>> {
        let sid = env.get("TWILIO_ACCOUNT_SID");
        let token = env.get("TWILIO_AUTH_TOKEN");
        let from = env.get("TWILIO_PHONE_NUMBER");
        if sid.is_none() && token.is_none() && from.is_none() {
            return Some(None);
        }
        let sid = env.required("TWILIO_ACCOUNT_SID");
        let token = env.required("TWILIO_AUTH_TOKEN");
        let from = env.required("TWILIO_PHONE_NUMBER").and_then(|from| {
            crate::domain::Phone::parse(&from, None)
                .map_err(|problem| env.problem("TWILIO_PHONE_NUMBER", problem))
                .ok()
        });
        let api_base = env.required("TWILIO_API_BASE").filter(|base| {
            let http = base.starts_with("https://") || base.starts_with("http://");
            if !http {
                env.problem("TWILIO_API_BASE", "expected an http(s):// URL");
            }
            http
        });
        Some(Some(Self {
            account_sid: sid?,
            auth_token: token?.into(),
            from: from?.to_string(),
            api_base: api_base?.trim_end_matches('/').to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(pairs: &[(&str, &str)], profile: Profile) -> Vec<&'static str> {
        let env = Env::from_pairs(pairs.iter().copied());
        match env.finish(NotifyConfig::load(&env, profile)) {
            Ok(_) => vec![],
            Err(problems) => problems.names(),
        }
    }

    #[test]
    fn partial_channels_name_what_is_missing() {
        let dev = Profile::Development;
        assert_eq!(problems(&[("SMTP_HOST", "mail")], dev), ["EMAIL_FROM"]);
        assert_eq!(
            problems(
                &[
                    ("SMTP_HOST", "mail"),
                    ("EMAIL_FROM", "a@b.c"),
                    ("SMTP_TLS", "ssl")
                ],
                dev
            ),
            ["SMTP_TLS"]
        );
        assert_eq!(
            problems(&[("TWILIO_ACCOUNT_SID", "AC1")], dev),
            ["TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"]
        );
        let env = Env::from_pairs([
            ("SMTP_HOST", "mail"),
            ("EMAIL_FROM", "a@b.c"),
            ("SMTP_TLS", "tls"),
        ]);
        let ok = env
            .finish(NotifyConfig::load(&env, Profile::Development))
            .unwrap();
        assert_eq!(ok.smtp.unwrap().port, 465);
        assert!(ok.twilio.is_none());
    }

    #[test]
    fn production_needs_its_own_code_secret() {
        let prod = Profile::Production;
        assert_eq!(problems(&[], prod), ["OTP_SECRET"]);
        assert_eq!(problems(&[("OTP_SECRET", "short")], prod), ["OTP_SECRET"]);
        let secret = "x".repeat(32);
        assert!(problems(&[("OTP_SECRET", secret.as_str())], prod).is_empty());
    }
}
