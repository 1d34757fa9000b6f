//! An SMTP server (RFC 5321's plain-text subset: EHLO/HELO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT) that stores every accepted message. Recipients whose
//! address contains `reject` get a permanent 550, to test refusals; a held
//! recipient keeps its sender waiting until released, to catch a sender
//! mid-conversation.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA: headers, blank line, body.
    pub data: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }

    /// The body, with quoted-printable soft line breaks undone.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"))
        {
            body.replace("=\r\n", "").replace("=3D", "=")
        } else {
            body.to_owned()
        }
    }
}

#[derive(Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    arrived: Arc<Notify>,
    hold: Arc<Hold>,
}

#[derive(Default)]
struct Hold {
    addresses: Mutex<Vec<String>>,
    /// Senders waiting on a held address.
    waiting: Mutex<usize>,
    changed: Notify,
    released: Notify,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind SMTP sink")
    }

    /// A sink on a given address.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let sink = Self {
            addr: listener.local_addr()?,
            mails: Arc::default(),
            arrived: Arc::default(),
            hold: Arc::default(),
        };
        let server = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    if let Err(error) = server.session(stream).await {
                        tracing::debug!(%error, "SMTP sink session ended");
                    }
                });
            }
        });
        Ok(sink)
    }

    /// Makes every RCPT for these addresses wait until [`release`](Self::release).
    pub fn hold(&self, addresses: &[&str]) {
        *self.hold.addresses.lock().expect("sink lock") =
            addresses.iter().map(|a| (*a).to_owned()).collect();
    }

    /// Resolves once `senders` are waiting on held addresses.
    pub async fn holding(&self, senders: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.hold.changed.notified();
            if *self.hold.waiting.lock().expect("sink lock") >= senders {
                return;
            }
            tokio::time::timeout_at(deadline, changed)
                .await
                .unwrap_or_else(|_| panic!("{senders} sender(s) held within {within:?}"));
        }
    }

    pub fn release(&self) {
        self.hold.addresses.lock().expect("sink lock").clear();
        self.hold.released.notify_waiters();
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("sink lock").clone()
    }

    /// Mails to `to`, in arrival order.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.found(to, 0, &|_| true, false).unwrap_or_default()
    }

    /// At least `count` mails to `to` that satisfy `filter`, in arrival
    /// order (with `take`, removed from the sink), or how many there are.
    fn found(
        &self,
        to: &str,
        count: usize,
        filter: &(dyn Fn(&Mail) -> bool + Sync),
        take: bool,
    ) -> Result<Vec<Mail>, usize> {
        let mut mails = self.mails.lock().expect("sink lock");
        let wanted = |m: &Mail| m.to.iter().any(|t| t == to) && filter(m);
        let n = mails.iter().filter(|m| wanted(m)).count();
        if n < count {
            return Err(n);
        }
        if take {
            let (found, kept) = std::mem::take(&mut *mails).into_iter().partition(wanted);
            *mails = kept;
            Ok(found)
        } else {
            Ok(mails.iter().filter(|m| wanted(m)).cloned().collect())
        }
    }

    /// Waits until `count` mails to `to` have arrived and returns them.
    pub async fn wait_for(&self, to: &str, count: usize, within: Duration) -> Vec<Mail> {
        self.wait_matching(to, count, within, |_| true).await
    }

    /// Waits until `count` mails to `to` that satisfy `filter` have arrived.
    pub async fn wait_matching(
        &self,
        to: &str,
        count: usize,
        within: Duration,
        filter: impl Fn(&Mail) -> bool + Sync,
    ) -> Vec<Mail> {
        self.try_wait_matching(to, count, within, filter)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`wait_matching`](Self::wait_matching), with an error instead of a panic.
    pub async fn try_wait_matching(
        &self,
        to: &str,
        count: usize,
        within: Duration,
        filter: impl Fn(&Mail) -> bool + Sync,
    ) -> Result<Vec<Mail>, String> {
        self.wait(to, count, within, &filter, false).await
    }

    /// As [`try_wait_matching`](Self::try_wait_matching), and the mails
    /// found leave the sink: a long run keeps only what is still awaited.
    pub async fn try_take_matching(
        &self,
        to: &str,
        count: usize,
        within: Duration,
        filter: impl Fn(&Mail) -> bool + Sync,
    ) -> Result<Vec<Mail>, String> {
        self.wait(to, count, within, &filter, true).await
    }

    async fn wait(
        &self,
        to: &str,
        count: usize,
        within: Duration,
        filter: &(dyn Fn(&Mail) -> bool + Sync),
        take: bool,
    ) -> Result<Vec<Mail>, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            let got = match self.found(to, count, filter, take) {
                Ok(mails) => return Ok(mails),
                Err(got) => got,
            };
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(format!(
                    "{count} matching mail(s) to {to} within {within:?}; got {got}"
                ));
            }
        }
    }

    async fn session(&self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let verb = command
                .split([' ', ':'])
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
                "HELO" => b"250 sink.test\r\n",
                "MAIL" => {
                    from = address(&command);
                    to.clear();
                    b"250 2.1.0 OK\r\n"
                }
                "RCPT" => {
                    let rcpt = address(&command);
                    let held = self
                        .hold
                        .addresses
                        .lock()
                        .expect("sink lock")
                        .contains(&rcpt);
                    if held {
                        let released = self.hold.released.notified();
                        *self.hold.waiting.lock().expect("sink lock") += 1;
                        self.hold.changed.notify_waiters();
                        released.await;
                        *self.hold.waiting.lock().expect("sink lock") -= 1;
                    }
                    if rcpt.contains("reject") {
                        b"550 5.1.1 No such mailbox\r\n"
                    } else {
                        to.push(rcpt);
                        b"250 2.1.5 OK\r\n"
                    }
                }
                "DATA" => {
                    write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await? == 0 {
                            return Ok(());
                        }
                        if line == ".\r\n" || line == ".\n" {
                            break;
                        }
                        // Undo dot-stuffing.
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    }
                    self.mails.lock().expect("sink lock").push(Mail {
                        from: from.clone(),
                        to: std::mem::take(&mut to),
                        data,
                    });
                    self.arrived.notify_waiters();
                    b"250 2.0.0 Queued\r\n"
                }
                "RSET" => {
                    to.clear();
                    b"250 2.0.0 OK\r\n"
                }
                "NOOP" => b"250 2.0.0 OK\r\n",
                "QUIT" => {
                    write.write_all(b"221 2.0.0 Bye\r\n").await?;
                    return Ok(());
                }
                _ => b"502 5.5.2 Command not recognised\r\n",
            };
            write.write_all(reply).await?;
        }
    }
}

/// The address inside `<...>` of a MAIL or RCPT command.
fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(addr, _)| addr.to_owned())
        .unwrap_or_default()
}
