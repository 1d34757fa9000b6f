use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use locker_core::config::{SmtpConfig, SmtpTls};
use secrecy::ExposeSecret;

use crate::error::JobError;
use crate::messages::Text;

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        let builder = match config.tls {
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_secs(15)));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        let from = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("EMAIL_FROM: {e}"))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    pub async fn send(&self, to: &str, text: &Text, job_id: i64) -> Result<(), JobError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| JobError::Permanent(format!("bad recipient address: {e}")))?;
        let message = Message::builder()
            .message_id(Some(format!("<job-{job_id}@{}>", self.from.email.domain())))
            .from(self.from.clone())
            .to(to)
            .subject(&text.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text.body.clone())
            .map_err(|e| JobError::Permanent(format!("cannot build the email: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // 5xx: the server will never take it.
            Err(e) if e.is_permanent() => Err(JobError::Permanent(format!(
                "SMTP server refused the email: {e}"
            ))),
            Err(e) => Err(JobError::Transient(
                anyhow::Error::new(e).context("SMTP send failed"),
            )),
        }
    }
}
