//! `/docs` and `/redoc` render in a real headless Chromium that can reach
//! nothing but 127.0.0.1: every script and style they need comes from the
//! binary, and the Content-Security-Policy lets them run.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

/// The Chromium binary; the test fails without it rather than pass unseen.
fn chromium() -> String {
    std::env::var("TEST_CHROMIUM")
        .expect("TEST_CHROMIUM must name a Chromium binary (Debian: /usr/bin/chromium)")
}

/// The page's DOM once its scripts have run, loaded with every host but
/// 127.0.0.1 unresolvable and every other address sent to a dead proxy.
async fn rendered_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("Chromium finished within 90 s")
        .expect("Chromium started");
    assert!(output.status.success(), "Chromium failed on {url}");
    String::from_utf8(output.stdout).unwrap()
}

/// Every operation of the document as (path, operation id).
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().expect("operationId");
            found.push((path.clone(), id.to_owned()));
        }
    }
    found
}

/// Both pages link each operation by its id (`#/tag/id`, `#operation/id`)
/// and print its path (Swagger UI in `data-path`, ReDoc as text).
fn shows(dom: &str, (path, id): &(String, String)) -> bool {
    dom.contains(&format!("/{id}\""))
        && (dom.contains(&format!("data-path=\"{path}\"")) || dom.contains(&format!(">{path}<")))
}

#[tokio::test]
#[ignore = "needs Chromium: set TEST_CHROMIUM (Debian package chromium)"]
async fn docs_pages_render_every_operation_offline() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let operations = operations(&doc);
    assert!(operations.len() > 15, "the document lists the API");

    for page in ["/docs/", "/redoc"] {
        let resp = app
            .client
            .get(format!("{}{page}", app.base))
            .send()
            .await
            .unwrap();
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{page}: {csp}");

        let dom = rendered_dom(&format!("{}{page}", app.base)).await;
        let missing: Vec<_> = operations.iter().filter(|op| !shows(&dom, op)).collect();
        assert!(
            missing.is_empty(),
            "{page} does not show {} of {} operations, e.g. {:?}",
            missing.len(),
            operations.len(),
            missing.first()
        );
    }
}
