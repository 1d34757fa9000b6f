//! Email over SMTP with lettre's connections, kept open for the next email.
//!
//! lettre's pooled transport writes a message's content and the end-of-data
//! mark (`.`) in two writes on a socket with Nagle's algorithm on: the mark
//! waits for the server to acknowledge the content, which a server does
//! only with its delayed ACK (40 ms on Linux), so every email held its
//! worker for that long. Here the content and the mark go in one write, so
//! every step of a session is a write answered by a reply, whatever the
//! TLS mode or the socket's options.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use locker_core::config::{SmtpConfig, SmtpTls};
use secrecy::ExposeSecret;

use crate::error::JobError;
use crate::messages::Text;

/// Connecting, or one email's whole session, may take at most this long.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Connections kept open between emails (a worker sends at most one email
/// per consumer at a time).
const KEPT: usize = 8;
/// A connection idle this long is closed rather than reused: servers drop
/// idle clients after a few minutes.
const IDLE: Duration = Duration::from_secs(60);

type SmtpError = lettre::transport::smtp::Error;

/// How a connection is secured; TLS parameters (a rustls configuration
/// with its root certificates) are made once, at start.
enum Security {
    None,
    /// TLS from the first byte.
    Implicit(TlsParameters),
    /// Upgraded with STARTTLS, which the server must offer.
    StartTls(TlsParameters),
}

pub struct SmtpMailer {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    from: Mailbox,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        let from = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("EMAIL_FROM: {e}"))?;
        let tls = || {
            TlsParameters::new(config.host.clone())
                .map_err(|e| anyhow::anyhow!("SMTP_HOST for TLS: {e}"))
        };
        let security = match config.tls {
            SmtpTls::None => Security::None,
            SmtpTls::Tls => Security::Implicit(tls()?),
            SmtpTls::StartTls => Security::StartTls(tls()?),
        };
        Ok(Self {
            host: config.host.clone(),
            port: config.port,
            security,
            credentials: config.credentials.as_ref().map(|(user, password)| {
                Credentials::new(user.clone(), password.expose_secret().to_owned())
            }),
            hello: ClientId::default(),
            from,
            idle: Mutex::new(Vec::new()),
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
        let envelope = message.envelope().clone();
        let content = message.formatted();
        match tokio::time::timeout(TIMEOUT, self.deliver(&envelope, &content)).await {
            Ok(Ok(_)) => Ok(()),
            // 5xx: the server will never take it.
            Ok(Err(Failed::Before(e) | Failed::During(e))) if e.is_permanent() => Err(
                JobError::Permanent(format!("SMTP server refused the email: {e}")),
            ),
            Ok(Err(Failed::Before(e) | Failed::During(e))) => Err(JobError::Transient(
                anyhow::Error::new(e).context("SMTP send failed"),
            )),
            Ok(Err(Failed::Unsupported(extension))) => Err(JobError::Permanent(format!(
                "the SMTP server cannot take this email: it lacks {extension}"
            ))),
            Err(_) => Err(JobError::Transient(anyhow::anyhow!(
                "SMTP send took longer than {TIMEOUT:?}"
            ))),
        }
    }

    /// One email on a kept connection, or on a new one when none is kept or
    /// the kept one turns out closed before the email began.
    async fn deliver(&self, envelope: &Envelope, content: &[u8]) -> Result<Response, Failed> {
        if let Some(mut conn) = self.kept() {
            match session(&mut conn, envelope, content).await {
                Ok(response) => {
                    self.keep(conn);
                    return Ok(response);
                }
                // The server closed it meanwhile, or will take no more on
                // it (421), before it took anything of this email: a new
                // connection.
                Err(Failed::Before(e)) if !e.is_permanent() => {}
                Err(failed) => return Err(failed),
            }
        }
        let mut conn = self.connect().await.map_err(Failed::Before)?;
        let response = session(&mut conn, envelope, content).await?;
        self.keep(conn);
        Ok(response)
    }

    /// The most recently used kept connection; those idle too long are
    /// dropped without a goodbye (the server sees the socket close).
    fn kept(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().expect("smtp connections");
        idle.retain(|(_, since)| since.elapsed() < IDLE);
        idle.pop().map(|(conn, _)| conn)
    }

    fn keep(&self, conn: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().expect("smtp connections");
        if idle.len() < KEPT {
            idle.push((conn, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let implicit = match &self.security {
            Security::Implicit(tls) => Some(tls.clone()),
            Security::StartTls(_) | Security::None => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(TIMEOUT),
            &self.hello,
            implicit,
            None,
        )
        .await?;
        if let Security::StartTls(tls) = &self.security {
            // Fails when the server offers no STARTTLS: never in clear.
            conn.starttls(tls.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }
}

/// Why an email was not sent.
enum Failed {
    /// Before the server took anything of it.
    Before(SmtpError),
    /// After it had taken some.
    During(SmtpError),
    /// The server lacks an extension the email needs.
    Unsupported(&'static str),
}

/// MAIL, RCPT, DATA, then the content with its end mark in one write. A
/// failed session's connection is not kept.
async fn session(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    content: &[u8],
) -> Result<Response, Failed> {
    let mut parameters = Vec::new();
    if !content.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(Failed::Unsupported("8BITMIME"));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mut addresses = envelope.from().into_iter().chain(envelope.to());
    if addresses.any(|a| !AsRef::<str>::as_ref(a).is_ascii()) {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(Failed::Unsupported("SMTPUTF8"));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    conn.command(Mail::new(envelope.from().cloned(), parameters))
        .await
        .map_err(Failed::Before)?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![]))
            .await
            .map_err(Failed::During)?;
    }
    conn.command(Data).await.map_err(Failed::During)?;
    conn.command(Content(content)).await.map_err(Failed::During)
}

/// A message's content made transparent (RFC 5321 4.5.2: a line that
/// begins with `.` gets one more) and ended with `<CRLF>.<CRLF>`.
struct Content<'a>(&'a [u8]);

impl std::fmt::Display for Content<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `Message::formatted` is text, its lines ended by CRLF.
        let text = String::from_utf8_lossy(self.0);
        for line in text.split_inclusive("\r\n") {
            if line.starts_with('.') {
                f.write_str(".")?;
            }
            f.write_str(line)?;
        }
        if !text.is_empty() && !text.ends_with("\r\n") {
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

#[cfg(test)]
mod tests {
    use locker_testkit::{SmtpSink, TcpProxy};

    use super::*;

    fn mailer(port: u16) -> SmtpMailer {
        SmtpMailer::new(&SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            credentials: None,
            from: "Lockers <lockers@example.com>".into(),
        })
        .unwrap()
    }

    fn text(body: &str) -> Text {
        Text {
            subject: "Your item".into(),
            body: body.into(),
        }
    }

    #[tokio::test]
    async fn lines_that_begin_with_a_dot_arrive_as_written() {
        let sink = SmtpSink::start().await;
        let mailer = mailer(sink.addr.port());
        let body = ".hidden line\r\n.\r\n..two dots\r\nlast line";
        mailer.send("r@example.com", &text(body), 1).await.unwrap();
        let mail = &sink
            .wait_for("r@example.com", 1, Duration::from_secs(5))
            .await[0];
        assert_eq!(mail.body().trim_end(), body);
    }

    #[tokio::test]
    async fn one_connection_carries_email_after_email_and_a_lost_one_is_replaced() {
        let sink = SmtpSink::start().await;
        let proxy = TcpProxy::start(sink.addr).await;
        let mailer = mailer(proxy.addr.port());
        for n in 1..=3 {
            mailer
                .send("r@example.com", &text("hello"), n)
                .await
                .unwrap();
        }
        assert_eq!(sink.mails_to("r@example.com").len(), 3);
        assert_eq!(proxy.connections(), 1);

        // The server side goes away while the connection is kept: the next
        // email goes on a new one, and is not lost.
        proxy.cut();
        proxy.restore();
        mailer
            .send("r@example.com", &text("after"), 4)
            .await
            .unwrap();
        assert_eq!(sink.mails_to("r@example.com").len(), 4);
        assert_eq!(proxy.connections(), 2);
    }

    #[tokio::test]
    async fn a_refused_recipient_is_permanent_and_the_next_email_goes_through() {
        let sink = SmtpSink::start().await;
        let mailer = mailer(sink.addr.port());
        let refused = mailer.send("reject@example.com", &text("no"), 1).await;
        assert!(
            matches!(refused, Err(JobError::Permanent(_))),
            "{refused:?}"
        );
        mailer.send("r@example.com", &text("yes"), 2).await.unwrap();
        assert_eq!(sink.mails_to("r@example.com").len(), 1);
    }
}
