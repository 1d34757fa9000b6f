//! PostgreSQL's `LISTEN`: what other processes announce on commit (jobs
//! written, sessions ended, places changed), heard on one connection per
//! process for every channel it follows, remade with backoff when lost.
//! Notices are not kept while nobody listens, so whoever follows a channel
//! is told when listening (re)starts and when it stops, and catches up then.

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

/// Someone told what is heard on one channel.
pub struct Follower {
    channel: &'static str,
    on: Box<dyn FnMut(Heard<'_>) + Send>,
}

impl Follower {
    pub fn new(channel: &'static str, on: impl FnMut(Heard<'_>) + Send + 'static) -> Self {
        Self {
            channel,
            on: Box::new(on),
        }
    }
}

/// Follows every follower's channel at `url` on one connection until
/// `shutdown`: each notice goes to the followers of its channel, and every
/// follower is told when listening starts and stops.
pub async fn follow(
    url: String,
    link: &'static str,
    shutdown: CancellationToken,
    mut followers: Vec<Follower>,
) {
    let mut channels: Vec<&str> = followers.iter().map(|f| f.channel).collect();
    channels.sort_unstable();
    channels.dedup();
    let mut link = Reconnect::new(Outage::new(link));
    loop {
        let listening = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen_all(channels.iter().copied()).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let failure = match tokio::select! {
            () = shutdown.cancelled() => return,
            listener = listening => listener,
        } {
            Ok(mut listener) => {
                link.recovered();
                tell(&mut followers, None, Heard::Listening);
                loop {
                    let heard = tokio::select! {
                        () = shutdown.cancelled() => return,
                        heard = listener.try_recv() => heard,
                    };
                    match heard {
                        Ok(Some(notice)) => tell(
                            &mut followers,
                            Some(notice.channel()),
                            Heard::Notice(notice.payload()),
                        ),
                        // Lost; made again (and said so) from the top.
                        Ok(None) => break "connection lost".to_owned(),
                        Err(error) => break super::describe(&error),
                    }
                }
            }
            Err(error) => super::describe(&error),
        };
        tell(&mut followers, None, Heard::Lost);
        let delay = link.failed(&failure);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Tells the followers of `channel`, or with none every follower.
fn tell(followers: &mut [Follower], channel: Option<&str>, heard: Heard<'_>) {
    for follower in followers {
        if channel.is_none_or(|c| c == follower.channel) {
            (follower.on)(heard);
        }
    }
}
