//! The console in a real headless Chromium, driven over WebDriver, that can
//! reach nothing but 127.0.0.1: an operator is refused until signed in as an
//! admin, watches a door open and close live while an agent drives it,
//! unlocks a door with a reason and finds it in the audit log. The pages it
//! sees are saved as screenshots (into `CONSOLE_SCREENSHOTS`, when set: the
//! README's pictures are made this way).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestApp, WAIT};

pub(crate) struct Browser {
    pub client: Client,
    base: String,
    shots: PathBuf,
    _shots_dir: Option<tempfile::TempDir>,
    _profile: tempfile::TempDir,
    _driver: tokio::process::Child,
}

fn required(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} must name {what}"))
}

impl Browser {
    pub async fn open(app: &TestApp) -> Self {
        let chromium = required("TEST_CHROMIUM", "a Chromium binary (Debian: chromium)");
        let driver = required(
            "TEST_CHROMEDRIVER",
            "a ChromeDriver binary (Debian: chromium-driver, /usr/bin/chromedriver)",
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("ChromeDriver started");
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,1000",
                    "--proxy-server=http://127.0.0.1:9",
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let webdriver = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await
            {
                Ok(client) => break client,
                Err(error) if started.elapsed() > Duration::from_secs(30) => {
                    panic!("no WebDriver session: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let (shots, shots_dir) = match std::env::var("CONSOLE_SCREENSHOTS") {
            Ok(dir) => {
                std::fs::create_dir_all(&dir).unwrap();
                (PathBuf::from(dir), None)
            }
            Err(_) => {
                let dir = tempfile::tempdir().unwrap();
                (dir.path().to_owned(), Some(dir))
            }
        };
        Self {
            client,
            base: app.base.clone(),
            shots,
            _shots_dir: shots_dir,
            _profile: profile,
            _driver: driver,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Waits until the browser is at `path` (a click's navigation may
    /// still be under way).
    async fn wait_path(&self, path: &str) {
        let script = format!(
            "return window.location.pathname === '{path}' && document.readyState === 'complete';"
        );
        self.wait_for(&format!("at {path}"), &script).await;
    }

    /// Waits until the element `css` finds reads `text`.
    async fn wait_text(&self, css: &str, text: &str) {
        let script = format!(
            "const found = document.querySelector({css:?}); \
             return !!found && found.innerText.includes({text:?});"
        );
        self.wait_for(&format!("{css} reads {text:?}"), &script)
            .await;
    }

    /// The text of the element `css` finds, read in one step: live parts of
    /// the page are replaced while it is read.
    async fn text(&self, css: &str) -> String {
        let read = self
            .client
            .execute(
                "const found = document.querySelector(arguments[0]); \
                 return found ? found.innerText : null;",
                vec![json!(css)],
            )
            .await
            .unwrap();
        read.as_str()
            .unwrap_or_else(|| panic!("nothing matches {css}"))
            .to_owned()
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Waits until `check` holds on the page as it is now; panics after WAIT.
    pub async fn wait_for(&self, what: &str, script: &str) {
        let started = Instant::now();
        loop {
            let held = self.client.execute(script, vec![]).await.unwrap();
            if held == Value::Bool(true) {
                return;
            }
            assert!(started.elapsed() < WAIT, "{what}: not within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sign_in(&self, email: &str, password: &str) {
        self.goto("/console/sign-in").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form.sign-in button").await;
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }
}

fn door_is(locker: i64, state: &str) -> String {
    format!(
        "const door = document.getElementById('door-{locker}'); \
         return !!door && door.dataset.door === '{state}';"
    )
}

#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver: set TEST_CHROMIUM and TEST_CHROMEDRIVER"]
async fn operators_watch_doors_live_and_audit_what_they_do_in_chromium() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let locker = async |location: &str, name: &str, agent: Option<&str>| {
        let body = json!({"location": location, "name": name, "agent_id": agent});
        app.locker_with(&admin, body).await["id"].as_i64().unwrap()
    };
    // A site to look at: a door to watch, a locker holding an item, one out
    // of service; and another place.
    let watched = locker("Harbour Front", "A1", Some("harbour-1")).await;
    let stocked = locker("Harbour Front", "A2", Some("harbour-2")).await;
    let resting = locker("Harbour Front", "A3", None).await;
    locker("Station Square", "S1", None).await;
    let (status, _) = app
        .put(
            &format!("/Admin/{resting}"),
            Some(&admin),
            json!({"status": "OUT_OF_SERVICE"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let agent = app.agent("harbour-1", &[watched], None).await;
    let shelf = app
        .agent("harbour-2", &[stocked], Some(Duration::from_millis(200)))
        .await;
    let sender = app.user_token("sender@example.com").await;
    let (status, item) = app
        .drop_item(
            &sender,
            &json!(stocked),
            json!({"receiver_email": "friend@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    app.wait_until("item stored", || async {
        app.get(&format!("/Items/{}", item["id"]), Some(&sender))
            .await
            .1["status"]
            == "STORED"
    })
    .await;
    // The watched door has been opened and shut once, so it reads closed.
    app.post(&format!("/Admin/{watched}/unlock"), Some(&admin), json!({}))
        .await;
    app.wait_until("door opened", || async { agent.doors.is_open(watched) })
        .await;
    agent.doors.close(watched);
    app.wait_until("door closed", || async {
        app.get(&format!("/lockers/{watched}"), Some(&admin))
            .await
            .1["door"]
            == "closed"
    })
    .await;

    let browser = Browser::open(&app).await;

    // Someone who is not an admin gets no further than the sign-in page.
    browser.sign_in("sender@example.com", PASSWORD).await;
    browser.wait_text("main", "for admins").await;
    browser.goto("/console/").await;
    browser.wait_path("/console/sign-in").await;

    browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser.wait_path("/console/").await;
    browser
        .wait_for("live", "return document.body.dataset.live === 'on';")
        .await;
    browser
        .wait_for("door shown closed", &door_is(watched, "closed"))
        .await;
    assert!(
        browser
            .text(&format!("#locker-{stocked}"))
            .await
            .contains("STORED")
    );
    browser.screenshot("places").await;

    // The agent opens the door: the page shows it without being reloaded.
    browser
        .client
        .execute("window.notReloaded = true; return true;", vec![])
        .await
        .unwrap();
    let (status, _) = app
        .post(&format!("/Admin/{watched}/unlock"), Some(&admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.wait_until("door opened", || async { agent.doors.is_open(watched) })
        .await;
    let opened = Instant::now();
    browser
        .wait_for("door shown open", &door_is(watched, "open"))
        .await;
    println!(
        "door open at the agent → shown open: {:?}",
        opened.elapsed()
    );
    agent.doors.close(watched);
    browser
        .wait_for("door shown closed again", &door_is(watched, "closed"))
        .await;
    browser
        .wait_for("same page", "return window.notReloaded === true;")
        .await;

    // A remote unlock with a reason, found in the audit log.
    browser.goto(&format!("/console/lockers/{watched}")).await;
    // Without a reason the browser does not send the form.
    browser.click("form[action$='/unlock'] button").await;
    let unsent = "return document.querySelector('#unlock-reason').matches(':invalid') \
                  && !document.querySelector('.notice');";
    browser.wait_for("form held back", unsent).await;
    browser
        .fill("#unlock-reason", "Latch check after a report")
        .await;
    browser.click("form[action$='/unlock'] button").await;
    browser.wait_text(".notice", "Unlock command sent").await;
    browser
        .wait_for("door shown open", &door_is(watched, "open"))
        .await;
    browser.screenshot("locker").await;
    agent.doors.close(watched);

    browser.goto("/console/audit").await;
    browser.fill("#locker_id", &watched.to_string()).await;
    browser.fill("#action", "locker.unlocked").await;
    browser.click("form.audit button").await;
    browser.wait_text("#audit-results", "Latch check").await;
    let results = browser.text("#audit-results").await;
    assert!(results.contains("Latch check after a report"), "{results}");
    assert!(results.contains(ADMIN_EMAIL), "{results}");
    browser.screenshot("audit").await;

    browser.goto("/console/alarms").await;
    let alarms = browser.text("#alarms").await;
    assert!(alarms.contains("Out of service"), "{alarms}");
    assert!(alarms.contains(&format!("Locker {resting}")), "{alarms}");
    browser.screenshot("alarms").await;

    // On a phone-sized screen the page fits its width.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto("/console/").await;
    browser
        .wait_for(
            "no sideways scrolling",
            "return document.documentElement.scrollWidth <= window.innerWidth;",
        )
        .await;
    browser.screenshot("places-phone").await;

    browser.click("form.sign-out button").await;
    browser.wait_path("/console/sign-in").await;
    browser.goto("/console/").await;
    browser.wait_path("/console/sign-in").await;

    browser.client.close().await.unwrap();
    agent.stop().await;
    shelf.stop().await;
}
