//! The hashing service over HTTP, with the client the api and the workers
//! use, and with raw requests as a stranger would send them.

use locker_core::config::{HashingConfig, HashingService};
use locker_core::hashing::{self, Hasher, Threads};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "hasher-token-for-tests-0123456789abcdef";

async fn start() -> String {
    let any_port = "127.0.0.1:0".parse().unwrap();
    let threads = Threads::new().unwrap();
    let token = TOKEN.to_owned().into();
    let (addr, _) = locker_hasher::start(any_port, threads, &token, std::future::pending())
        .await
        .unwrap();
    format!("http://{addr}")
}

fn client(base: &str, token: &str) -> Hasher {
    let config = HashingConfig {
        service: Some(HashingService {
            url: base.parse().unwrap(),
            token: token.to_owned().into(),
        }),
    };
    Hasher::from_config(&config).unwrap()
}

#[tokio::test]
async fn hashes_and_verifies_for_callers_holding_the_token() {
    let base = start().await;
    let hasher = client(&base, TOKEN);
    let hash = hasher.hash("123456".to_owned().into()).await.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(
        hashing::verify_blocking("123456", &hash),
        "a hash this process can check"
    );
    let verify = |secret: &str, stored: Option<&str>| {
        hasher.verify(secret.to_owned().into(), stored.map(str::to_owned))
    };
    assert!(verify("123456", Some(&hash)).await.unwrap());
    assert!(!verify("654321", Some(&hash)).await.unwrap());
    // Nothing stored: the dummy's work, and never a match.
    assert!(
        !verify("locker-exchange timing equaliser", None)
            .await
            .unwrap()
    );
    assert_eq!(hasher.verifications(), 3);

    // Hashes made here verify there.
    let local = hashing::hash_blocking("s3cret").unwrap();
    assert!(verify("s3cret", Some(&local)).await.unwrap());

    // A wrong token is a fault of the caller's, not an outage to wait out.
    let error = client(&base, "another-token-of-thirty-two-bytes-or-more")
        .hash("123456".to_owned().into())
        .await
        .unwrap_err();
    assert!(!hashing::is_unavailable(&error), "{error:#}");
    assert!(format!("{error:#}").contains("401"), "{error:#}");
}

#[tokio::test]
async fn a_service_out_of_reach_is_told_apart() {
    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = client(&base, TOKEN)
        .verify("123456".to_owned().into(), None)
        .await
        .unwrap_err();
    assert!(hashing::is_unavailable(&error), "{error:#}");
}

#[tokio::test]
async fn strangers_and_bad_requests_get_a_detail_and_no_work() {
    let base = start().await;
    let http = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: String| {
        let mut request = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert!(body["detail"].is_string(), "{status}: {body}");
            status
        }
    };
    let secret = json!({"secret": "123456"}).to_string();
    assert_eq!(
        post("/hash", None, secret.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post("/verify", Some("guess"), secret.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post("/hash", Some(TOKEN), "{\"secret\":".into()).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post("/hash", Some(TOKEN), json!({"code": 1}).to_string()).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let long = json!({"secret": "x".repeat(2_000)}).to_string();
    assert_eq!(
        post("/hash", Some(TOKEN), long).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let huge = json!({"secret": "x".repeat(100_000)}).to_string();
    assert_eq!(
        post("/hash", Some(TOKEN), huge).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let malformed = json!({"secret": "123456", "hash": "$argon2id$v=19$nonsense"}).to_string();
    assert_eq!(
        post("/verify", Some(TOKEN), malformed).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}
