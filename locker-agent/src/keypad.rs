//! The simulated site's keypad and scanner: a local socket taking one line
//! per code entered, `pin LOCKER CODE` or `qr LOCKER TEXT`, and answering
//! one line, what became of it (`accepted`, `opened_offline`, `wrong_code`,
//! ...). `locker-agent enter` writes such a line. One socket may serve the
//! keypads of several agents (`cargo run`'s simulated sites): each line goes
//! to the agent driving its locker.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use locker_protocol::PickupMethod;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::agent::Keypad;

/// Each locker's keypad, by locker id.
pub type Keypads = HashMap<i64, Keypad>;

/// Serves `keypads` on a Unix socket at `path` until `stop`.
pub async fn serve(path: &Path, keypads: Keypads, stop: CancellationToken) -> std::io::Result<()> {
    let keypads = Arc::new(keypads);
    // A socket left by an earlier run would refuse the bind.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted?.0,
        };
        let keypads = keypads.clone();
        tokio::spawn(async move {
            if let Err(error) = session(stream, &keypads).await {
                tracing::warn!(%error, "keypad session ended");
            }
        });
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

async fn session(stream: UnixStream, keypads: &Keypads) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match parse(&line) {
            Some((method, locker_id, code)) => match keypads.get(&locker_id) {
                Some(keypad) => keypad.enter(locker_id, method, code).await.as_str(),
                None => "unknown_locker",
            },
            None => "malformed: expected 'pin LOCKER CODE' or 'qr LOCKER TEXT'",
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
    Ok(())
}

fn parse(line: &str) -> Option<(PickupMethod, i64, &str)> {
    let mut words = line.split_whitespace();
    let method = match words.next()? {
        "pin" => PickupMethod::Pin,
        "qr" => PickupMethod::Qr,
        _ => return None,
    };
    let locker_id = words.next()?.parse().ok()?;
    let code = words.next()?;
    words.next().is_none().then_some((method, locker_id, code))
}

/// Sends one entry to a running agent's socket; returns its answer.
pub async fn enter(
    path: &Path,
    method: PickupMethod,
    locker_id: i64,
    code: &str,
) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(path).await?;
    stream
        .write_all(format!("{} {locker_id} {code}\n", method.as_str()).as_bytes())
        .await?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).await?;
    Ok(answer.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_a_method_a_locker_and_a_code() {
        assert_eq!(
            parse("pin 3 12345678"),
            Some((PickupMethod::Pin, 3, "12345678"))
        );
        assert_eq!(parse("qr 7 abc"), Some((PickupMethod::Qr, 7, "abc")));
        for bad in ["", "pin", "pin x 1", "pin 3", "card 3 1", "pin 3 1 2"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
