use std::time::Duration;

use locker_core::config::TwilioConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::JobError;

/// Twilio's Messages API: `POST /2010-04-01/Accounts/{sid}/Messages.json`
/// with Basic auth and the form fields `To`, `From`, `Body`.
pub struct TwilioSms {
    client: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: SecretString,
    from: String,
}

/// Twilio's error body.
#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioSms {
    pub fn new(config: &TwilioConfig) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.api_base, config.account_sid
            ),
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone(),
            from: config.from.clone(),
        })
    }

    pub async fn send(&self, to: &str, body: &str) -> Result<(), JobError> {
        let response = self
            .client
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&[("To", to), ("From", &self.from), ("Body", body)])
            .send()
            .await
            .map_err(|e| {
                JobError::Transient(anyhow::Error::new(e).context("Twilio unreachable"))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = response
            .json::<TwilioError>()
            .await
            .map(|e| {
                format!(
                    "code {}: {}",
                    e.code.unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
            .unwrap_or_default();
        // 429 and 5xx pass; any other 4xx is about the message itself.
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(JobError::Transient(anyhow::anyhow!(
                "Twilio answered {status} {detail}"
            )))
        } else {
            Err(JobError::Permanent(format!(
                "Twilio refused the message ({status}) {detail}"
            )))
        }
    }
}
