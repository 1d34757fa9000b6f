//! PostgreSQL's `LISTEN`: what other processes announce on commit (jobs
//! written, sessions ended), heard on a connection of its own, remade with
//! backoff when lost. Notices are not kept while nobody listens, so whoever
//! follows a channel is told when listening (re)starts and when it stops,
//! and catches up then.

use locker_runtime::backoff::{Outage, Reconnect};
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

/// What a follower of a channel is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// Listening (again): notices raised before now were not heard.
    Listening,
    /// A notice on the channel, with its payload.
    Notice(&'a str),
    /// The connection was lost: notices are not heard until `Listening`.
    Lost,
}

/// Follows `channel` at `url` until `shutdown`, telling `on` what is heard.
pub async fn follow(
    url: String,
    channel: &'static str,
    link: &'static str,
    shutdown: CancellationToken,
    mut on: impl FnMut(Heard<'_>) + Send,
) {
    let mut link = Reconnect::new(Outage::new(link));
    loop {
        let listening = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let failure = match tokio::select! {
            () = shutdown.cancelled() => return,
            listener = listening => listener,
        } {
            Ok(mut listener) => {
                link.recovered();
                on(Heard::Listening);
                loop {
                    let heard = tokio::select! {
                        () = shutdown.cancelled() => return,
                        heard = listener.try_recv() => heard,
                    };
                    match heard {
                        Ok(Some(notice)) => on(Heard::Notice(notice.payload())),
                        // Lost; made again (and said so) from the top.
                        Ok(None) => break "connection lost".to_owned(),
                        Err(error) => break super::describe(&error),
                    }
                }
            }
            Err(error) => super::describe(&error),
        };
        on(Heard::Lost);
        let delay = link.failed(&failure);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
