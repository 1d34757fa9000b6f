use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

async fn raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn bad_bodies_get_json_refusals_not_500s() {
    let app = TestApp::spawn().await;
    let post = reqwest::Method::POST;

    let (status, body) = raw(
        &app,
        post.clone(),
        "/Auth/signup",
        Some("application/json"),
        b"{\"name\": ".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Malformed JSON"),
        "{body}"
    );

    let (status, body) = raw(
        &app,
        post.clone(),
        "/Auth/signup",
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body["detail"].is_string());

    let (status, body) = raw(
        &app,
        post.clone(),
        "/Auth/signup",
        Some("application/json"),
        b"[1, 2]".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let huge = format!(
        "{{\"name\": \"{}\", \"email\": \"a@example.com\", \"password\": \"StrongPassword@123\"}}",
        "x".repeat(100_000)
    );
    let (status, body) = raw(
        &app,
        post.clone(),
        "/Auth/signup",
        Some("application/json"),
        huge.into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["detail"].is_string());

    let (status, body) = raw(&app, reqwest::Method::GET, "/no/such/route", None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Not Found");

    let (status, body) = raw(&app, reqwest::Method::PATCH, "/Auth/signup", None, vec![]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let get = |p: &str| app.client.get(format!("{}{p}", app.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    app.state.db.close().await;
    assert_eq!(
        get("/readyz").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn openapi_documents_every_endpoint_with_its_refusals() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let expect = [
        ("/Auth/signup", "post", &["201", "409", "422"][..]),
        ("/Auth/login", "post", &["200", "401", "422"]),
        ("/Auth/refresh", "post", &["200", "401"]),
        ("/Auth/logout", "post", &["204", "401"]),
        ("/Auth/me", "get", &["200", "401"]),
        ("/Auth/", "get", &["200", "401", "403"]),
        ("/lockers/", "get", &["200", "401", "422"]),
        ("/lockers/by-place", "get", &["200", "401", "422"]),
        ("/lockers/{locker_id}", "get", &["200", "401", "404"]),
        ("/Admin/", "post", &["201", "401", "403", "422"]),
        (
            "/Admin/{locker_id}",
            "put",
            &["200", "401", "403", "404", "409", "422"],
        ),
        (
            "/Admin/{locker_id}",
            "delete",
            &["204", "401", "403", "404", "409"],
        ),
        (
            "/Admin/{locker_id}/force-clear",
            "delete",
            &["200", "401", "403", "404", "409"],
        ),
        (
            "/Admin/{locker_id}/unlock",
            "post",
            &["202", "401", "403", "404", "409"],
        ),
        ("/Items/", "post", &["201", "401", "404", "409", "422"]),
        ("/Items/", "get", &["200", "401", "422"]),
        ("/Items/{item_id}", "get", &["200", "401", "404"]),
        (
            "/Items/{item_id}/extend",
            "post",
            &["200", "401", "404", "409", "422"],
        ),
        ("/Admin/audit", "get", &["200", "401", "403", "422"]),
        ("/pickup/{token}", "get", &["200", "404"]),
        (
            "/Items/lockers/{locker_id}/request-otp",
            "post",
            &["202", "422", "429"],
        ),
        (
            "/Items/lockers/{locker_id}/collect",
            "post",
            &["200", "400", "422", "429"],
        ),
    ];
    // Every documented operation is one of these, and each of these is documented.
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (path.clone(), method.clone()))
        })
        .collect();
    let mut listed: Vec<(String, String)> = expect
        .iter()
        .map(|(path, method, _)| ((*path).to_owned(), (*method).to_owned()))
        .collect();
    documented.sort();
    listed.sort();
    assert_eq!(documented, listed);
    for (path, method, statuses) in expect {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        for status in statuses {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} lacks {status}"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // What the server refuses before any handler runs is documented too.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let mut must = vec!["408", "503"];
            if op["requestBody"].is_object() {
                must.extend(["400", "413", "415", "422"]);
            }
            for status in must {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }
    for schema in ["ErrorBody", "ValidationErrorBody"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }

    for (page, marker) in [("/docs/", "swagger-ui"), ("/redoc", "redoc")] {
        let resp = app
            .client
            .get(format!("{}{page}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let html = resp.text().await.unwrap();
        assert!(html.to_lowercase().contains(marker), "{page}");
    }
}

/// Every answer carries a request id: the client's when it is plain, a new
/// one otherwise (nothing a client sends is echoed into logs or headers raw).
#[tokio::test]
async fn answers_carry_a_request_id() {
    let app = TestApp::spawn().await;
    let id_for = |sent: Option<&'static str>| {
        let mut request = app.client.get(format!("{}/lockers/", app.base));
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        async move {
            let resp = request.send().await.unwrap();
            resp.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(id_for(Some("kiosk-7.req_42")).await, "kiosk-7.req_42");
    let plain = |id: &str| {
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    for unsafe_id in ["has space", "quote\"", "x".repeat(65).leak() as &str] {
        let given = id_for(Some(unsafe_id)).await;
        assert_ne!(given, unsafe_id);
        assert!(plain(&given), "{given}");
    }
    let first = id_for(None).await;
    assert!(plain(&first), "{first}");
    assert_ne!(first, id_for(None).await, "a new id per request");
}

/// `cargo run`'s binary serves Prometheus metrics on `METRICS_ADDR`, a port
/// apart from the API's, and they count what the API answered.
#[tokio::test]
async fn metrics_are_served_on_their_own_port() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (api, metrics, broker) = (free(), free(), free());
    let dir = tempfile::tempdir().unwrap();
    let mut stack = tokio::process::Command::new(env!("CARGO_BIN_EXE_locker-exchange"))
        .current_dir(dir.path())
        .env("LISTEN_ADDR", api.to_string())
        .env("METRICS_ADDR", metrics.to_string())
        .env("MQTT_EMBEDDED_ADDR", broker.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client
            .get(format!("http://{api}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the stack did not start");
    for _ in 0..3 {
        let resp = client
            .get(format!("http://{api}/lockers/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let text = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/lockers/\"")
                && l.contains("status=\"401\"")
        })
        .unwrap_or_else(|| panic!("no count of the 401s in\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    let api_port = client
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        api_port.status(),
        StatusCode::NOT_FOUND,
        "not on the API's port"
    );
    stack.kill().await.unwrap();
}
