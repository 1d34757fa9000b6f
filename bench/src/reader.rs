//! The read load's client, as wrk does it: each task keeps one HTTP/1.1
//! connection alive and sends on it, through hyper's client connection
//! alone (no pool to check out from, no URL parsed per request, headers made
//! once). reqwest's general-purpose client cost about 40 µs of CPU a read,
//! a sixth of the machine the stack it measures runs on.

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Reader {
    authority: String,
    host: HeaderValue,
    auth: HeaderValue,
    link: Option<SendRequest<Empty<Bytes>>>,
}

impl Reader {
    /// A reader of `base` (`http://host:port`) with `token`; it connects on
    /// its first request.
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let authority = base
            .strip_prefix("http://")
            .context("the read load speaks plain http://")?
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            host: HeaderValue::from_str(&authority)?,
            auth: HeaderValue::from_str(&format!("Bearer {token}"))?,
            authority,
            link: None,
        })
    }

    /// `GET path`, its answer read to the end; the status it had. A failed
    /// connection is made again on the next request.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<StatusCode> {
        let result = self.try_get(path).await;
        if result.is_err() {
            self.link = None;
        }
        result
    }

    async fn try_get(&mut self, path: &str) -> anyhow::Result<StatusCode> {
        let link = match &mut self.link {
            Some(link) => link,
            None => self.link.insert(connect(&self.authority).await?),
        };
        link.ready().await?;
        let request = Request::get(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .body(Empty::new())?;
        let answer = link.send_request(request).await?;
        let status = answer.status();
        answer.into_body().collect().await?;
        Ok(status)
    }
}

async fn connect(authority: &str) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (link, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(link)
}
