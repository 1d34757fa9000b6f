//! Pickup deadlines on a controllable clock: the receiver is reminded once
//! before the deadline (and again after the sender extends it), the sender
//! may extend a limited number of times, when the time is up sender and
//! receiver are both told, and the sender can take the item back with a
//! code of their own.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, WAIT, access};

const RECEIVER: &str = "late-receiver@example.com";
const PHONE: &str = "+14155552671";
const SENDER: &str = "patient-sender@example.com";
const HOUR: Duration = Duration::from_secs(3600);

struct Waiting {
    app: TestApp,
    item: Value,
}

/// An item stored at a locker without a door (stored at once), due in 72 h.
async fn waiting(extra: &[(&str, &str)]) -> Waiting {
    let app = TestApp::spawn_with(extra).await;
    let admin = app.admin_token().await;
    let locker = app.locker(&admin, "Long Wait").await;
    let sender = app.user_token(SENDER).await;
    let (status, item) = app
        .drop_item(
            &sender,
            &locker["id"],
            json!({"receiver_email": RECEIVER, "receiver_phone": PHONE}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["status"], "STORED");
    app.smtp.wait_for(RECEIVER, 1, WAIT).await;
    Waiting { app, item }
}

impl Waiting {
    /// The sender's token, logged in now: hours pass on this clock.
    async fn sender(&self) -> String {
        access(&self.app.login(SENDER, PASSWORD).await)
    }

    fn extend_path(&self) -> String {
        format!("/Items/{}/extend", self.item["id"])
    }

    /// Moves the clock on, then lets the sweeper and the jobs it wrote run.
    async fn pass(&self, by: Duration) {
        self.app.advance(by);
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.app.drain().await;
    }

    fn subjects_to(&self, to: &str) -> Vec<String> {
        self.app
            .smtp
            .mails_to(to)
            .iter()
            .map(|m| m.header("Subject").unwrap_or_default())
            .collect()
    }

    async fn audited(&self, action: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM audit_log WHERE action = '{action}'");
        let pool = self.app.state.db.pool();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn receivers_are_reminded_senders_extend_once_and_both_hear_when_time_is_up() {
    let w = waiting(&[]).await;

    // 25 h before the deadline: too early.
    w.pass(47 * HOUR).await;
    assert_eq!(w.subjects_to(RECEIVER).len(), 1);
    // 23 h before: reminded, by email and SMS, once.
    w.pass(2 * HOUR).await;
    let subjects = w.subjects_to(RECEIVER);
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects[1].starts_with("Reminder"), "{subjects:?}");
    let sms = w.app.twilio.wait_for(PHONE, 2, WAIT).await;
    assert!(sms[1].body.contains("still waiting"), "{}", sms[1].body);
    w.pass(HOUR).await;
    assert_eq!(w.subjects_to(RECEIVER).len(), 2, "reminded once");

    // Someone else cannot extend it; its sender can, once.
    let stranger = w.app.user_token("stranger@example.com").await;
    let (status, _) = w
        .app
        .post(&w.extend_path(), Some(&stranger), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, extended) = w
        .app
        .post(&w.extend_path(), Some(&w.sender().await), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{extended}");
    assert_eq!(extended["extensions"], 1);
    let before = time::OffsetDateTime::parse(
        w.item["collect_by"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let after = time::OffsetDateTime::parse(
        extended["collect_by"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(after - before, time::Duration::hours(24));
    let mails = w.app.smtp.wait_for(RECEIVER, 3, WAIT).await;
    assert!(
        mails[2].header("Subject").unwrap().starts_with("More time"),
        "{}",
        mails[2].data
    );
    let (status, refused) = w
        .app
        .post(&w.extend_path(), Some(&w.sender().await), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        refused["detail"].as_str().unwrap().contains("1 time"),
        "{refused}"
    );

    // Reminded again before the new deadline (22 h before it).
    w.pass(24 * HOUR).await;
    let subjects = w.subjects_to(RECEIVER);
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert!(subjects[3].starts_with("Reminder"), "{subjects:?}");

    // Time is up: expired; the sender and the receiver are told.
    w.pass(23 * HOUR).await;
    let (_, item) = w
        .app
        .get(&format!("/Items/{}", w.item["id"]), Some(&w.sender().await))
        .await;
    assert_eq!(item["status"], "EXPIRED");
    let told = w.app.smtp.wait_for(SENDER, 1, WAIT).await;
    assert!(told[0].header("Subject").unwrap().contains("not collected"));
    let subjects = w.subjects_to(RECEIVER);
    assert_eq!(subjects.len(), 5, "{subjects:?}");
    assert!(
        subjects[4].contains("can no longer be collected"),
        "{subjects:?}"
    );
    let (status, _) = w
        .app
        .post(&w.extend_path(), Some(&w.sender().await), json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an expired item is not extended"
    );

    assert_eq!(w.audited("item.reminded").await, 2);
    assert_eq!(w.audited("item.extended").await, 1);
    assert_eq!(w.audited("item.expired").await, 1);
}

#[tokio::test]
async fn racing_extensions_add_time_only_as_often_as_allowed() {
    let w = waiting(&[("PICKUP_EXTENSIONS_MAX", "2")]).await;
    let path = w.extend_path();
    let sender = w.sender().await;
    let racers = (0..6).map(|_| w.app.post(&path, Some(&sender), json!({})));
    let answers = futures::future::join_all(racers).await;
    let granted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .count();
    assert_eq!((granted, refused), (2, 4), "{answers:?}");
    let (_, item) = w
        .app
        .get(&format!("/Items/{}", w.item["id"]), Some(&w.sender().await))
        .await;
    assert_eq!(item["extensions"], 2);
}

#[tokio::test]
async fn extensions_can_be_turned_off() {
    let w = waiting(&[("PICKUP_EXTENSIONS_MAX", "0")]).await;
    let (status, body) = w
        .app
        .post(&w.extend_path(), Some(&w.sender().await), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

/// Expires the waiting item and has its sender ask for a code at its locker.
async fn expired_and_asked_back(w: &Waiting, locker: &Value) -> String {
    w.pass(73 * HOUR).await;
    let told = w.app.smtp.wait_for(SENDER, 1, WAIT).await;
    assert!(
        told[0].body().contains("ask for a code"),
        "{}",
        told[0].data
    );

    // The receiver's time is over: no code for them any more.
    let (status, _) = w.app.request_otp(locker, RECEIVER).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = w.app.request_otp(locker, SENDER).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = w.app.email_code(SENDER, 1).await;
    w.app.drain().await;
    let codes_to_receiver = w
        .subjects_to(RECEIVER)
        .iter()
        .filter(|s| s.contains("code"))
        .count();
    assert_eq!(codes_to_receiver, 0);
    code
}

#[tokio::test]
async fn the_sender_takes_an_expired_item_back_once() {
    let w = waiting(&[]).await;
    let locker = w.item["locker_id"].clone();
    let code = expired_and_asked_back(&w, &locker).await;

    let (status, body) = w.app.collect(&locker, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = w.app.collect(&locker, &code).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a code opens once");
    let (_, item) = w
        .app
        .get(&format!("/Items/{}", w.item["id"]), Some(&w.sender().await))
        .await;
    assert_eq!(item["status"], "RETURNED");
    assert!(item["collected_at"].is_string());
    let (_, now) = w
        .app
        .get(&format!("/lockers/{locker}"), Some(&w.sender().await))
        .await;
    assert_eq!(now["status"], "AVAILABLE");
    let mails = w.app.smtp.wait_for(SENDER, 3, WAIT).await;
    assert!(
        mails[2]
            .header("Subject")
            .unwrap()
            .contains("back with you"),
        "{}",
        mails[2].data
    );
    assert_eq!(w.audited("item.returned").await, 1);
    assert_eq!(w.audited("item.collected").await, 0);
}

#[tokio::test]
async fn an_expired_item_goes_back_through_its_door() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let locker = app
        .locker_with(
            &admin,
            json!({"location": "Door Wait", "agent_id": "door-wait"}),
        )
        .await;
    let agent = app
        .agent(
            "door-wait",
            &[locker["id"].as_i64().unwrap()],
            Some(Duration::from_millis(200)),
        )
        .await;
    let sender = app.user_token(SENDER).await;
    let (status, item) = app
        .drop_item(&sender, &locker["id"], json!({"receiver_email": RECEIVER}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let w = Waiting { app, item };
    w.app
        .wait_until("stored", || async {
            w.app
                .get(&format!("/Items/{}", w.item["id"]), Some(&sender))
                .await
                .1["status"]
                == "STORED"
        })
        .await;
    let code = expired_and_asked_back(&w, &locker["id"]).await;

    let (status, body) = w.app.collect(&locker["id"], &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sender = w.sender().await;
    w.app
        .wait_until("returned once the door has closed", || async {
            w.app
                .get(&format!("/Items/{}", w.item["id"]), Some(&sender))
                .await
                .1["status"]
                == "RETURNED"
        })
        .await;
    assert_eq!(agent.doors.openings(locker["id"].as_i64().unwrap()), 2);
    assert_eq!(w.audited("item.returning").await, 1);
    assert_eq!(w.audited("item.returned").await, 1);
    // The locker is free again, and the sender told so.
    let view = w
        .app
        .get(
            &format!("/lockers/{}", locker["id"]),
            Some(&w.app.admin_token().await),
        )
        .await
        .1;
    assert_eq!(view["status"], "AVAILABLE", "{view}");
    w.app
        .wait_until("the sender told it is back", || async {
            w.subjects_to(SENDER)
                .iter()
                .any(|s| s.contains("is back with you"))
        })
        .await;
    agent.stop().await;
}
