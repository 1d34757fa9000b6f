//! The exchange over HTTP: drop, ask for a code, collect, and the messages
//! that go out on the way, read from the real SMTP server and the
//! Twilio-shaped API the test runs.

use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{EMAIL_FROM, TestApp, WAIT};

const RECEIVER: &str = "receiver@example.com";
const PHONE: &str = "+14155552671";

struct Scene {
    app: TestApp,
    admin: String,
    sender: String,
    locker: Value,
}

async fn scene() -> Scene {
    scene_with(&[]).await
}

async fn scene_with(extra: &[(&str, &str)]) -> Scene {
    let app = TestApp::spawn_with(extra).await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let (_, locker) = app
        .post(
            "/Admin/",
            Some(&admin),
            json!({"location": "Mall Entrance", "name": "A1"}),
        )
        .await;
    Scene {
        app,
        admin,
        sender,
        locker,
    }
}

impl Scene {
    /// The codes emailed to the receiver so far.
    fn codes_sent(&self) -> usize {
        self.app
            .smtp
            .mails_to(RECEIVER)
            .iter()
            .filter(|m| m.header("Subject").is_some_and(|h| h.contains("code")))
            .count()
    }

    fn locker_id(&self) -> &Value {
        &self.locker["id"]
    }

    async fn dropped(&self, receiver: Value) -> Value {
        let (status, item) = self
            .app
            .drop_item(&self.sender, self.locker_id(), receiver)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{item}");
        item
    }

    async fn locker_status(&self) -> Value {
        let (_, locker) = self
            .app
            .get(&format!("/lockers/{}", self.locker_id()), Some(&self.admin))
            .await;
        locker["status"].clone()
    }

    async fn item_status(&self, item: &Value) -> Value {
        let (_, item) = self
            .app
            .get(&format!("/Items/{}", item["id"]), Some(&self.sender))
            .await;
        item["status"].clone()
    }
}

#[tokio::test]
async fn the_whole_exchange_by_email() {
    let s = scene().await;
    let item = s
        .dropped(json!({"receiver_email": " Receiver@Example.com ", "description": "for Bob"}))
        .await;
    assert_eq!(item["status"], "STORED");
    assert_eq!(item["receiver_email"], RECEIVER);
    assert!(item.get("otp_hash").is_none() && item.get("otp").is_none());
    assert_eq!(s.locker_status().await, "OCCUPIED");

    // The receiver is told where the item waits.
    let told = s.app.smtp.wait_for(RECEIVER, 1, WAIT).await;
    assert!(told[0].body().contains("Mall Entrance"), "{}", told[0].data);
    assert!(told[0].header("From").unwrap().contains(EMAIL_FROM));

    let (status, body) = s
        .app
        .request_otp(s.locker_id(), "RECEIVER@example.com")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let code = s.app.email_code(RECEIVER, 1).await;

    let (status, body) = s.app.collect(s.locker_id(), &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["item_id"], item["id"]);
    assert_eq!(s.item_status(&item).await, "COLLECTED");
    assert_eq!(s.locker_status().await, "AVAILABLE");

    let collected = s.app.smtp.wait_for("sender@example.com", 1, WAIT).await;
    assert!(
        collected[0]
            .header("Subject")
            .unwrap()
            .contains("collected"),
        "{}",
        collected[0].data
    );
    // The code is spent.
    assert_eq!(
        s.app.collect(s.locker_id(), &code).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_whole_exchange_by_sms() {
    let s = scene().await;
    let item = s
        .dropped(json!({"receiver_phone": "+1 (415) 555-2671"}))
        .await;
    assert_eq!(item["receiver_phone"], PHONE);
    let told = s.app.twilio.wait_for(PHONE, 1, WAIT).await;
    assert!(told[0].body.contains("Mall Entrance"));
    assert_eq!(told[0].from, s.app.twilio.from);

    assert_eq!(
        s.app.request_otp(s.locker_id(), "+1 415 555 2671").await.0,
        StatusCode::ACCEPTED
    );
    let code = s.app.sms_code(PHONE, 1).await;
    assert_eq!(s.app.collect(s.locker_id(), &code).await.0, StatusCode::OK);
    assert_eq!(s.item_status(&item).await, "COLLECTED");
    s.app.smtp.wait_for("sender@example.com", 1, WAIT).await;
}

#[tokio::test]
async fn request_otp_answers_alike_and_sends_only_to_the_receiver() {
    let s = scene().await;
    let (_, empty) = s
        .app
        .post("/Admin/", Some(&s.admin), json!({"location": "Library"}))
        .await;
    s.dropped(json!({"receiver_email": RECEIVER})).await;

    let right = s.app.request_otp(s.locker_id(), RECEIVER).await;
    let wrong = s
        .app
        .request_otp(s.locker_id(), "someone@example.com")
        .await;
    let phone = s.app.request_otp(s.locker_id(), PHONE).await;
    let nothing_there = s.app.request_otp(&empty["id"], RECEIVER).await;
    let no_locker = s.app.request_otp(&json!(987654), RECEIVER).await;
    assert_eq!(right.0, StatusCode::ACCEPTED);
    for other in [&wrong, &phone, &nothing_there, &no_locker] {
        assert_eq!(other, &right);
    }
    s.app.email_code(RECEIVER, 1).await;
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM outbox WHERE kind = 'otp'")
            .await,
        1
    );

    let (status, body) = s.app.request_otp(s.locker_id(), "not a contact").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "contact"]));
}

#[tokio::test]
async fn bad_drops_are_refused_and_change_nothing() {
    let s = scene().await;
    let id = s.locker_id();
    let cases = [
        (json!({}), vec!["receiver_phone", "receiver_email"]),
        (
            json!({"receiver_phone": "  ", "receiver_email": ""}),
            vec!["receiver_phone", "receiver_email"],
        ),
        (json!({"receiver_phone": "12345"}), vec!["receiver_phone"]),
        (json!({"receiver_email": "bob@"}), vec!["receiver_email"]),
        (
            json!({"receiver_email": RECEIVER, "name": " "}),
            vec!["name"],
        ),
    ];
    for (receiver, fields) in cases {
        let (status, body) = s.app.drop_item(&s.sender, id, receiver.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{receiver}: {body}"
        );
        let locs: Vec<_> = body["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["loc"][1].clone())
            .collect();
        assert_eq!(
            locs,
            fields.iter().map(|f| json!(f)).collect::<Vec<_>>(),
            "{body}"
        );
    }
    let receiver = json!({"receiver_email": RECEIVER});
    assert_eq!(
        s.app
            .drop_item(&s.sender, &json!(987654), receiver.clone())
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = s
        .app
        .post(
            "/Items/",
            None,
            json!({"locker_id": id, "name": "x", "receiver_email": RECEIVER}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(s.locker_status().await, "AVAILABLE");
    assert_eq!(s.app.count("SELECT COUNT(*) FROM items").await, 0);

    // Out of service, then occupied: both 409.
    let path = format!("/Admin/{id}");
    s.app
        .put(&path, Some(&s.admin), json!({"status": "OUT_OF_SERVICE"}))
        .await;
    assert_eq!(
        s.app.drop_item(&s.sender, id, receiver.clone()).await.0,
        StatusCode::CONFLICT
    );
    s.app
        .put(&path, Some(&s.admin), json!({"status": "AVAILABLE"}))
        .await;
    s.dropped(receiver.clone()).await;
    let (status, body) = s.app.drop_item(&s.sender, id, receiver).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"], "Locker is not available");
    assert_eq!(s.app.count("SELECT COUNT(*) FROM items").await, 1);
}

#[tokio::test]
async fn a_hundred_concurrent_drops_on_one_locker_make_one_item() {
    let s = scene().await;
    let drops = (0..100).map(|_| {
        s.app.drop_item(
            &s.sender,
            s.locker_id(),
            json!({"receiver_email": RECEIVER}),
        )
    });
    let statuses: Vec<_> = join_all(drops)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (1, 99), "{statuses:?}");
    assert_eq!(s.app.count("SELECT COUNT(*) FROM items").await, 1);
}

#[tokio::test]
async fn senders_see_their_own_items_newest_first() {
    let s = scene().await;
    let (_, second_locker) = s
        .app
        .post("/Admin/", Some(&s.admin), json!({"location": "Library"}))
        .await;
    let first = s.dropped(json!({"receiver_email": RECEIVER})).await;
    let (_, second) = s
        .app
        .drop_item(
            &s.sender,
            &second_locker["id"],
            json!({"receiver_phone": PHONE}),
        )
        .await;

    let (status, mine) = s.app.get("/Items/", Some(&s.sender)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(ids, [second["id"].clone(), first["id"].clone()]);
    let (_, page) = s.app.get("/Items/?limit=1&offset=1", Some(&s.sender)).await;
    assert_eq!(page[0]["id"], first["id"]);

    let stranger = s.app.user_token("stranger@example.com").await;
    let (_, theirs) = s.app.get("/Items/", Some(&stranger)).await;
    assert_eq!(theirs, json!([]));
    let path = format!("/Items/{}", first["id"]);
    assert_eq!(
        s.app.get(&path, Some(&stranger)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.app.get(&path, Some(&s.admin)).await.0, StatusCode::OK);
    assert_eq!(s.app.get(&path, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.app.get("/Items/987654", Some(&s.sender)).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_sixth_try_fails_even_with_the_right_code() {
    let s = scene().await;
    s.dropped(json!({"receiver_email": RECEIVER})).await;
    s.app.request_otp(s.locker_id(), RECEIVER).await;
    let code = s.app.email_code(RECEIVER, 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let (status, body) = s.app.collect(s.locker_id(), wrong).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["detail"], "Invalid or expired code");
    }
    let (status, body) = s.app.collect(s.locker_id(), &code).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(s.locker_status().await, "OCCUPIED");

    // A new code works, and the right code after wrong ones still opens
    // (three more wrong: this client's tenth wrong code would wait).
    s.app.request_otp(s.locker_id(), RECEIVER).await;
    let fresh = s.app.email_code(RECEIVER, 2).await;
    let wrong = if fresh == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..3 {
        assert_eq!(
            s.app.collect(s.locker_id(), wrong).await.0,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(s.app.collect(s.locker_id(), &fresh).await.0, StatusCode::OK);
}

#[tokio::test]
async fn codes_expire() {
    let s = scene().await;
    s.dropped(json!({"receiver_email": RECEIVER})).await;
    s.app.request_otp(s.locker_id(), RECEIVER).await;
    let code = s.app.email_code(RECEIVER, 1).await;
    s.app.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(
        s.app.collect(s.locker_id(), &code).await.0,
        StatusCode::FORBIDDEN
    );

    s.app.request_otp(s.locker_id(), RECEIVER).await;
    let fresh = s.app.email_code(RECEIVER, 2).await;
    s.app.advance(Duration::from_secs(4 * 60));
    assert_eq!(s.app.collect(s.locker_id(), &fresh).await.0, StatusCode::OK);
}

#[tokio::test]
async fn repeated_wrong_codes_bring_a_cool_down() {
    let s = scene().await;
    s.dropped(json!({"receiver_email": RECEIVER})).await;
    let mut codes = 0;
    let mut last = None;
    // Ten wrong codes in a row, over two codes.
    for round in 0..2 {
        s.app.request_otp(s.locker_id(), RECEIVER).await;
        codes += 1;
        let code = s.app.email_code(RECEIVER, codes).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for attempt in 0..5 {
            last = Some(s.app.collect(s.locker_id(), wrong).await);
            if round == 0 || attempt < 4 {
                assert_eq!(last.as_ref().unwrap().0, StatusCode::FORBIDDEN);
            }
        }
    }
    let (status, body) = last.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // During the cool-down no new code is issued (nor paid for), and this
    // client's tries wait.
    assert_eq!(
        s.app.request_otp(s.locker_id(), RECEIVER).await.0,
        StatusCode::ACCEPTED
    );
    s.app.drain().await;
    assert_eq!(s.codes_sent(), codes, "no code sent during the cool-down");
    let resp = s
        .app
        .client
        .post(format!(
            "{}/Items/lockers/{}/collect",
            s.app.base,
            s.locker_id()
        ))
        .json(&json!({"otp": "123456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");

    s.app.advance(Duration::from_secs(15 * 60 + 1));
    s.app.request_otp(s.locker_id(), RECEIVER).await;
    codes += 1;
    let code = s.app.email_code(RECEIVER, codes).await;
    assert_eq!(s.app.collect(s.locker_id(), &code).await.0, StatusCode::OK);
}

#[tokio::test]
async fn code_requests_are_limited_per_client_and_per_contact_from_it() {
    let s = scene_with(&[("OTP_RATE_PER_CLIENT", "4"), ("OTP_RATE_PER_CONTACT", "2")]).await;
    let (_, other) = s
        .app
        .post("/Admin/", Some(&s.admin), json!({"location": "Library"}))
        .await;

    s.dropped(json!({"receiver_email": RECEIVER})).await;
    // Per contact (from this client): the third request is refused.
    for _ in 0..2 {
        assert_eq!(
            s.app.request_otp(s.locker_id(), RECEIVER).await.0,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        s.app.request_otp(s.locker_id(), RECEIVER).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The refused request queued no code: two code jobs, the others'.
    s.app.drain().await;
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM outbox WHERE kind = 'otp'")
            .await,
        2
    );
    // Per client: four requests in all (that refused one counted), then none.
    assert_eq!(
        s.app.request_otp(&other["id"], "b@example.com").await.0,
        StatusCode::ACCEPTED
    );
    let (status, body) = s.app.request_otp(&other["id"], "c@example.com").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body["detail"].is_string());

    // A new window starts afresh.
    s.app.advance(Duration::from_secs(10 * 60));
    assert_eq!(
        s.app.request_otp(&other["id"], "c@example.com").await.0,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn a_locker_issues_a_bounded_number_of_codes_and_says_nothing_of_it() {
    let s = scene_with(&[("OTP_RATE_PER_LOCKER", "2"), ("OTP_RATE_PER_CONTACT", "5")]).await;
    s.dropped(json!({"receiver_email": RECEIVER})).await;
    for _ in 0..4 {
        assert_eq!(
            s.app.request_otp(s.locker_id(), RECEIVER).await.0,
            StatusCode::ACCEPTED
        );
    }
    s.app.email_code(RECEIVER, 1).await;
    s.app.drain().await;
    // Two code jobs: each sends its code, unless the newer one ran first
    // (an older code never replaces a newer one). Never more than two.
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM outbox WHERE kind = 'otp'")
            .await,
        2
    );
    let codes = s.codes_sent();
    assert!((1..=2).contains(&codes), "{codes}");
}

#[tokio::test]
async fn two_collects_with_the_right_code_have_one_winner() {
    let s = scene().await;
    s.dropped(json!({"receiver_email": RECEIVER})).await;
    s.app.request_otp(s.locker_id(), RECEIVER).await;
    let code = s.app.email_code(RECEIVER, 1).await;
    let (a, b) = tokio::join!(
        s.app.collect(s.locker_id(), &code),
        s.app.collect(s.locker_id(), &code)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::FORBIDDEN]);
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM outbox WHERE payload LIKE '%item_collected%'")
            .await,
        1
    );
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'item.collected'")
            .await,
        1
    );
    s.app.smtp.wait_for("sender@example.com", 1, WAIT).await;
}

#[tokio::test]
async fn force_clear_empties_the_locker_keeps_the_item_and_tells_the_sender() {
    let s = scene().await;
    let item = s.dropped(json!({"receiver_email": RECEIVER})).await;
    s.app.request_otp(s.locker_id(), RECEIVER).await;
    let code = s.app.email_code(RECEIVER, 1).await;
    let path = format!("/Admin/{}/force-clear", s.locker_id());

    assert_eq!(
        s.app.delete(&path, Some(&s.sender)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.app.delete(&path, None).await.0, StatusCode::UNAUTHORIZED);
    let (status, cleared) = s.app.delete(&path, Some(&s.admin)).await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["id"], item["id"]);
    assert_eq!(cleared["status"], "CLEARED");
    assert_eq!(s.item_status(&item).await, "CLEARED");
    assert_eq!(s.locker_status().await, "AVAILABLE");
    let told = s.app.smtp.wait_for("sender@example.com", 1, WAIT).await;
    assert!(
        told[0].header("Subject").unwrap().contains("removed"),
        "{}",
        told[0].data
    );

    // The receiver's code no longer opens anything.
    assert_eq!(
        s.app.collect(s.locker_id(), &code).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = s.app.delete(&path, Some(&s.admin)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        s.app
            .delete("/Admin/987654/force-clear", Some(&s.admin))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // The locker can be used again, and deleted with its history kept.
    s.dropped(json!({"receiver_email": RECEIVER})).await;
    s.app.delete(&path, Some(&s.admin)).await;
    assert_eq!(
        s.app
            .delete(&format!("/Admin/{}", s.locker_id()), Some(&s.admin))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, kept) = s
        .app
        .get(&format!("/Items/{}", item["id"]), Some(&s.sender))
        .await;
    assert_eq!(kept["status"], "CLEARED");
    assert_eq!(kept["locker_id"], Value::Null);
}
