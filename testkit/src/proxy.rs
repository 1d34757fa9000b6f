//! A TCP proxy to cut the path between the application and a shared service
//! (RabbitMQ, PostgreSQL, a broker) without stopping the service itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone)]
pub struct TcpProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Connections let through so far.
    accepted: Arc<AtomicU64>,
    /// Bumped on every cut so open connections close.
    cuts: watch::Sender<u64>,
    /// Bumped on every freeze so open connections stop carrying bytes.
    freezes: watch::Sender<u64>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Self {
            addr: listener.local_addr().expect("proxy address"),
            up: Arc::new(AtomicBool::new(true)),
            accepted: Arc::default(),
            cuts: watch::channel(0).0,
            freezes: watch::channel(0).0,
        };
        let this = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !this.up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                this.accepted.fetch_add(1, Ordering::SeqCst);
                let mut cut = this.cuts.subscribe();
                let mut freeze = this.freezes.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                        _ = cut.changed() => return,
                        _ = freeze.changed() => {}
                    }
                    // Frozen: both ends stay open, and nothing passes, until a cut.
                    let _ = cut.changed().await;
                });
            }
        });
        proxy
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Stops every open connection carrying bytes, without closing it, as
    /// a peer that stops answering would; new connections pass as before.
    /// A [`cut`](Self::cut) closes the frozen ones.
    pub fn freeze(&self) {
        self.freezes.send_modify(|n| *n += 1);
    }

    /// How many connections it has let through.
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
