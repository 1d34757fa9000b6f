//! Where notifications leave: SMTP for email, Twilio for SMS, or the console
//! for a channel not configured under `cargo run`.

mod console;
mod email;
mod sms;

use locker_core::config::NotifyConfig;

pub use email::SmtpMailer;
pub use sms::TwilioSms;

use crate::error::JobError;
use crate::messages::Text;

pub struct Notifier {
    email: Option<SmtpMailer>,
    sms: Option<TwilioSms>,
    /// Print messages for channels that are not configured (development).
    console_fallback: bool,
}

impl Notifier {
    /// In production (`console_fallback` false) a missing channel is a
    /// warning now and a dead-lettered job later, never a silent drop.
    pub fn new(config: &NotifyConfig, console_fallback: bool) -> anyhow::Result<Self> {
        let email = config.smtp.as_ref().map(SmtpMailer::new).transpose()?;
        let sms = config.twilio.as_ref().map(TwilioSms::new).transpose()?;
        if !console_fallback {
            if email.is_none() {
                tracing::warn!(
                    "email is not configured (SMTP_HOST, EMAIL_FROM): email jobs will be dead-lettered"
                );
            }
            if sms.is_none() {
                tracing::warn!(
                    "SMS is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER): SMS jobs will be dead-lettered"
                );
            }
        }
        Ok(Self {
            email,
            sms,
            console_fallback,
        })
    }

    /// Sends `text` to an email address (contains `@`) or an E.164 number.
    /// `job_id` names the message: every try of one job sends it under the
    /// same name (an email's `Message-ID`), so a resend can be told apart.
    pub async fn send(&self, to: &str, text: &Text, job_id: i64) -> Result<(), JobError> {
        let is_email = to.contains('@');
        match (is_email, &self.email, &self.sms) {
            (true, Some(mailer), _) => mailer.send(to, text, job_id).await,
            (false, _, Some(sms)) => sms.send(to, &text.body).await,
            _ if self.console_fallback => {
                console::print(if is_email { "email" } else { "sms" }, to, text);
                Ok(())
            }
            (true, ..) => Err(JobError::Permanent(
                "email is not configured (SMTP_HOST)".into(),
            )),
            (false, ..) => Err(JobError::Permanent(
                "SMS is not configured (TWILIO_ACCOUNT_SID)".into(),
            )),
        }
    }
}
