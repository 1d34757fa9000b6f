//! The operators' console over HTTP: sign-in with a cookie and CSRF tokens,
//! admins only; actions audited with their reason; live changes streamed.
//! What a browser makes of the pages is checked in `console_browser`.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestApp};

/// A browser as far as the console cares: keeps cookies, follows nothing.
pub struct Visitor {
    base: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Visitor {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.base)
    }

    /// A visitor of the api at `base` (another process's, say).
    pub fn at(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn answer(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let response = request
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for cookie in &set_cookies {
            let (name, rest) = cookie.split_once('=').unwrap();
            let value = rest.split(';').next().unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            set_cookies,
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let request = self.client.get(format!("{}{path}", self.base));
        self.answer(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.answer(request).await
    }

    /// Signs in through the form, as a person would.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Answer {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = csrf(&form.body);
        self.post(
            "/console/sign-in",
            &[("email", email), ("password", password), ("csrf", &csrf)],
        )
        .await
    }
}

/// The console's event stream, as a page holds it.
pub struct Events {
    response: reqwest::Response,
    seen: String,
}

impl Visitor {
    pub async fn events(&self) -> Events {
        let response = self
            .client
            .get(format!("{}/console/events", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Events {
            response,
            seen: String::new(),
        }
    }
}

impl Events {
    /// Reads on until the stream has said `needle`; panics after 10 s.
    pub async fn wait_for(&mut self, needle: &str) {
        let reading = async {
            while !self.seen.contains(needle) {
                let chunk = self.response.chunk().await.unwrap().expect("stream open");
                self.seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), reading)
            .await
            .is_err()
        {
            panic!("no {needle} in {}", self.seen);
        }
        self.seen.clear();
    }
}

/// The CSRF token in a page's first form.
pub fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn admins_sign_in_with_a_cookie_scripts_cannot_read_and_sign_out() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.locker(&admin, "Console Hall").await;
    let mut visitor = Visitor::new(&app);

    let away = visitor.get("/console/").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.location.as_deref(), Some("/console/sign-in"));

    // A form posted without the sign-in cookie did not come from our page.
    let page = visitor.get("/console/sign-in").await;
    let token = csrf(&page.body);
    let mut stranger = Visitor::new(&app);
    let forged = stranger
        .post(
            "/console/sign-in",
            &[
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("csrf", &token),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("lx_console"));

    let wrong = visitor
        .post(
            "/console/sign-in",
            &[
                ("email", ADMIN_EMAIL),
                ("password", "not-the-password"),
                ("csrf", &token),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.body.contains("Incorrect email or password"),
        "{}",
        wrong.body
    );

    let signed_in = visitor.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_in.location.as_deref(), Some("/console/"));
    let session = signed_in
        .set_cookies
        .iter()
        .find(|c| c.starts_with("lx_console="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(attribute), "{session} lacks {attribute}");
    }
    assert!(!session.contains("Secure"), "plain HTTP here: {session}");

    let places = visitor.get("/console/").await;
    assert_eq!(places.status, StatusCode::OK);
    assert!(places.body.contains("Console Hall"), "{}", places.body);

    // Behind a TLS proxy the cookie is Secure.
    let mut behind_tls = Visitor::new(&app);
    let form = behind_tls.get("/console/sign-in").await;
    let request = behind_tls
        .client
        .post(format!("{}/console/sign-in", app.base))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("email", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
            ("csrf", &csrf(&form.body)),
        ]);
    let tls = behind_tls.answer(request).await;
    assert!(
        tls.set_cookies
            .iter()
            .any(|c| c.starts_with("lx_console=") && c.contains("Secure")),
        "{:?}",
        tls.set_cookies
    );

    // Signing out needs the page's token, then ends the session for good.
    let refused = visitor
        .post("/console/sign-out", &[("csrf", "forged")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let kept = visitor.cookies.clone();
    let out = visitor
        .post("/console/sign-out", &[("csrf", &csrf(&places.body))])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!visitor.cookies.contains_key("lx_console"));
    visitor.cookies = kept;
    let replayed = visitor.get("/console/").await;
    assert_eq!(
        replayed.status,
        StatusCode::SEE_OTHER,
        "a signed-out cookie is dead"
    );
}

#[tokio::test]
async fn non_admins_and_other_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.user_token("not-an-admin@example.com").await;
    let mut visitor = Visitor::new(&app);
    let refused = visitor.sign_in("not-an-admin@example.com", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("for admins"), "{}", refused.body);
    assert!(!visitor.cookies.contains_key("lx_console"));

    // An API access token, even an admin's, is not a console session.
    let admin = app.admin_token().await;
    for token in [user, admin] {
        visitor.cookies.insert("lx_console".into(), token);
        let page = visitor.get("/console/").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
    }
}

/// The audit entries of one action on one locker, by the JSON API.
async fn audited(app: &TestApp, admin: &str, locker: &Value, action: &str) -> Vec<Value> {
    let (status, page) = app
        .get(
            &format!("/Admin/audit?locker_id={}&action={action}", locker["id"]),
            Some(admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    page["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_action_needs_the_form_token_a_reason_and_is_audited_with_both() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let locker = app
        .locker_with(&admin, json!({"location": "Depot", "agent_id": "depot-1"}))
        .await;
    let id = locker["id"].as_i64().unwrap();
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let page = visitor.get(&format!("/console/lockers/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let token = csrf(&page.body);
    let unlock = format!("/console/lockers/{id}/unlock");

    let forged = visitor
        .post(&unlock, &[("csrf", "0000"), ("reason", "stranger")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let bare = visitor
        .post(&unlock, &[("csrf", &token), ("reason", "  ")])
        .await;
    assert_eq!(bare.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bare.body.contains("Give a reason"), "{}", bare.body);
    assert!(
        audited(&app, &admin, &locker, "locker.unlocked")
            .await
            .is_empty()
    );

    let done = visitor
        .post(&unlock, &[("csrf", &token), ("reason", "jammed latch")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/console/lockers/{id}?done=unlock").as_str())
    );
    let entries = audited(&app, &admin, &locker, "locker.unlocked").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["reason"], "jammed latch");
    assert_eq!(entries[0]["actor_email"], ADMIN_EMAIL);

    let out = visitor
        .post(
            &format!("/console/lockers/{id}/out-of-service"),
            &[("csrf", &token), ("reason", "door sensor replaced")],
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let (_, now) = app.get(&format!("/lockers/{id}"), Some(&admin)).await;
    assert_eq!(now["status"], "OUT_OF_SERVICE");
    let updated = audited(&app, &admin, &locker, "locker.updated").await;
    assert_eq!(updated[0]["reason"], "door sensor replaced");

    // Deleting needs the box ticked; refused, nothing changes.
    let unconfirmed = visitor
        .post(
            &format!("/console/lockers/{id}/delete"),
            &[("csrf", &token), ("reason", "moved away")],
        )
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.get(&format!("/lockers/{id}"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);

    // An edit checked as the JSON API checks it.
    let bad = visitor
        .post(
            &format!("/console/lockers/{id}/edit"),
            &[
                ("csrf", &token),
                ("location", "  "),
                ("size", "HUGE"),
                ("reason", "typo"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let edited = visitor
        .post(
            &format!("/console/lockers/{id}/edit"),
            &[
                ("csrf", &token),
                ("location", "Depot East"),
                ("name", "D1"),
                ("size", "LARGE"),
                ("agent_id", "depot-1"),
                ("reason", "moved to the east wall"),
            ],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER);
    let updated = audited(&app, &admin, &locker, "locker.updated").await;
    assert_eq!(updated[0]["reason"], "moved to the east wall");
    let (_, now) = app.get(&format!("/lockers/{id}"), Some(&admin)).await;
    assert_eq!(
        (now["location"].as_str(), now["size"].as_str()),
        (Some("Depot East"), Some("LARGE"))
    );

    let deleted = visitor
        .post(
            &format!("/console/lockers/{id}/delete"),
            &[
                ("csrf", &token),
                ("reason", "moved away"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let (status, _) = app.get(&format!("/lockers/{id}"), Some(&admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let gone = audited(&app, &admin, &locker, "locker.deleted").await;
    assert_eq!(gone[0]["reason"], "moved away");

    // The console's own audit search finds it too.
    let search = visitor
        .get(&format!(
            "/console/audit?locker_id={id}&action=locker.deleted"
        ))
        .await;
    assert_eq!(search.status, StatusCode::OK);
    assert!(search.body.contains("moved away"), "{}", search.body);
    let bad_search = visitor.get("/console/audit?since=soon").await;
    assert_eq!(bad_search.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn pages_allow_nothing_from_elsewhere_and_stream_changes() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let response = visitor
        .client
        .get(format!("{}/console/", app.base))
        .header(COOKIE, visitor.cookie_header())
        .send()
        .await
        .unwrap();
    let csp = response.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");

    // The event stream says when it listens, then when anything changes.
    let mut events = visitor.events().await;
    events.wait_for("event: ready").await;
    app.locker(&admin, "Somewhere New").await;
    events.wait_for("event: change").await;

    // Without a sign-in there is no stream.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/console/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn odd_input_to_the_pages_is_refused_or_harmless() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for (path, status) in [
        ("/console/?place=%00", StatusCode::UNPROCESSABLE_ENTITY),
        ("/console/?status=OPEN", StatusCode::UNPROCESSABLE_ENTITY),
        ("/console/lockers/abc", StatusCode::NOT_FOUND),
        ("/console/lockers/424242", StatusCode::NOT_FOUND),
        (
            "/console/audit?action=a%00",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/console/audit?locker_id=one",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let answer = visitor.get(path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
    }
    let admin = app.admin_token().await;
    let locker = app.locker(&admin, "Far Page").await;
    let far = visitor
        .get(&format!(
            "/console/lockers/{}?page=9223372036854775807",
            locker["id"]
        ))
        .await;
    assert_eq!(far.status, StatusCode::OK);
    assert!(far.body.contains("Nothing yet"), "{}", far.body);
}
