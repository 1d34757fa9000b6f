//! The notices a door's closing writes (the receiver's that the item is
//! stored, the sender's that it was collected) are sent by the worker that
//! applied the closing, when it serves notices, without a trip through the
//! job queue; a failed send is tried again through the queue's retries, and
//! one refused for good is dead-lettered there, each once.

use std::time::Duration;

use locker_core::jobs::{Envelope, Job, JobKind, Message, NotifyJob};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::agents::TestAgent;
use crate::doors::{RECEIVER, Site, site};
use crate::helpers::{TestApp, WAIT};
use crate::pipeline::dead_letters;

const SENDER: &str = "sender@example.com";

/// An item dropped at `locker` for `receiver`, its door open for the sender.
async fn dropped_at_door(s: &Site, agent: &TestAgent, locker: i64, receiver: Value) -> Value {
    let (status, item) = s.app.drop_item(&s.sender, &json!(locker), receiver).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    s.wait_door(agent, locker, true).await;
    item
}

async fn dead_notices(app: &TestApp) -> Vec<(Envelope, String)> {
    app.queue.dead_letters(JobKind::Notify).await.unwrap()
}

#[tokio::test]
#[ignore = "needs RabbitMQ: run with TEST_AMQP_URL set and --include-ignored"]
async fn with_the_job_queue_out_of_reach_a_closing_door_still_sends_its_notice() {
    let app = TestApp::spawn_behind_amqp_proxy()
        .await
        .expect("TEST_AMQP_URL must name a RabbitMQ server for this test");
    let proxy = app.proxy.clone().unwrap();
    let admin = app.admin_token().await;
    let sender = app.user_token(SENDER).await;
    let s = Site { app, admin, sender };
    let locker = s.locker("closing-1").await;
    let agent = s.app.agent("closing-1", &[locker], None).await;

    // The drop's unlock goes through the queue; then the queue goes away.
    let item = s.drop_item(locker).await;
    s.wait_door(&agent, locker, true).await;
    proxy.cut();
    agent.doors.close(locker);
    s.wait_status(&item, "STORED").await;
    let told = s.app.smtp.wait_for(RECEIVER, 1, WAIT).await;
    assert!(told[0].body().contains("Mall Entrance"), "{}", told[0].data);

    // The code and the collect's unlock need the queue.
    proxy.restore();
    s.app.request_otp(&json!(locker), RECEIVER).await;
    // Consumers come back after their reconnection's wait.
    s.app
        .smtp
        .wait_for(RECEIVER, 2, Duration::from_secs(40))
        .await;
    let code = s.app.email_code(RECEIVER, 1).await;
    assert_eq!(s.app.collect(&json!(locker), &code).await.0, StatusCode::OK);
    s.wait_door(&agent, locker, true).await;
    proxy.cut();
    agent.doors.close(locker);
    s.wait_status(&item, "COLLECTED").await;
    let collected = s.app.smtp.wait_for(SENDER, 1, WAIT).await;
    assert!(
        collected[0].body().contains("collected"),
        "{}",
        collected[0].data
    );

    // Back, the queue is handed nothing more: each notice went once, and
    // every job is stamped.
    proxy.restore();
    s.app.drain().await;
    assert_eq!(s.app.smtp.mails_to(RECEIVER).len(), 2);
    assert_eq!(s.app.smtp.mails_to(SENDER).len(), 1);
    assert!(dead_notices(&s.app).await.is_empty());
}

#[tokio::test]
async fn a_closing_notice_that_fails_is_tried_again_through_the_queue() {
    let s = site().await;
    let locker = s.locker("closing-2").await;
    let agent = s.app.agent("closing-2", &[locker], None).await;
    let phone = "+14155552671";
    let item = dropped_at_door(&s, &agent, locker, json!({"receiver_phone": phone})).await;

    // Twilio fails the first two tries (5xx), then takes the message.
    s.app.twilio.script(&[503, 500]);
    agent.doors.close(locker);
    s.wait_status(&item, "STORED").await;
    let sent = s.app.twilio.wait_for(phone, 1, WAIT).await;
    assert!(sent[0].body.contains("Mall Entrance"), "{}", sent[0].body);

    s.app.drain().await;
    assert_eq!(s.app.twilio.sent().len(), 1);
    assert!(dead_notices(&s.app).await.is_empty());
}

#[tokio::test]
async fn a_closing_notice_refused_for_good_is_dead_lettered_once() {
    let s = site().await;
    let locker = s.locker("closing-3").await;
    let agent = s.app.agent("closing-3", &[locker], None).await;
    let to = json!({"receiver_email": "reject@example.com"});
    let item = dropped_at_door(&s, &agent, locker, to).await;
    agent.doors.close(locker);
    s.wait_status(&item, "STORED").await;

    let dead = dead_letters(&s.app, JobKind::Notify, 1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (envelope, reason) = &dead[0];
    assert!(reason.contains("SMTP server refused"), "{reason}");
    assert_eq!(envelope.attempt, 1);
    assert!(envelope.payload.to_string().contains("reject@example.com"));

    // Stamped (the pipeline drains only then): no sweep publishes it again.
    s.app.drain().await;
    assert_eq!(
        s.app
            .queue
            .dead_letters(JobKind::Notify)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// The notices a closing writes carry the item's and the locker's own
/// words, whatever characters they hold, to each of the receiver's
/// contacts and then to the sender: each job as the worker reads it is the
/// one the exchange means to send.
#[tokio::test]
async fn a_closings_notices_carry_the_words_as_written() {
    let s = site().await;
    let (name, location, door) = (
        r#"Tom's "best" box \ ünï 🎁"#,
        r#"O'Hare "T1" \ Gate ß"#,
        r#"D\"7"#,
    );
    let (status, locker) = s
        .app
        .post(
            "/Admin/",
            Some(&s.admin),
            json!({"location": location, "name": door, "agent_id": "closing-4"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{locker}");
    let locker = locker["id"].as_i64().unwrap();
    let agent = s.app.agent("closing-4", &[locker], None).await;
    let phone = "+14155552671";
    let (status, item) = s
        .app
        .post(
            "/Items/",
            Some(&s.sender),
            json!({"locker_id": locker, "name": name,
                   "receiver_email": RECEIVER, "receiver_phone": phone}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = item["id"].as_i64().unwrap();
    s.wait_door(&agent, locker, true).await;
    agent.doors.close(locker);
    s.wait_status(&item, "STORED").await;
    let collect_by: i64 = sqlx::query_scalar("SELECT collect_by FROM items WHERE id = $1")
        .bind(id)
        .fetch_one(s.app.state.db.pool())
        .await
        .unwrap();
    let stored_for = |to: &str| {
        Job::Notify(NotifyJob {
            to: to.into(),
            message: Message::ItemStored {
                item: name.into(),
                location: location.into(),
                locker: door.into(),
                until: Some(locker_core::clock::human(collect_by)),
                pickup: Some(id),
            },
        })
    };
    let sms = s.app.twilio.wait_for(phone, 1, WAIT).await;
    assert!(sms[0].body.contains(name), "{}", sms[0].body);

    s.app.request_otp(&json!(locker), RECEIVER).await;
    let code = s.app.email_code(RECEIVER, 1).await;
    assert_eq!(s.app.collect(&json!(locker), &code).await.0, StatusCode::OK);
    s.wait_door(&agent, locker, true).await;
    agent.doors.close(locker);
    s.wait_status(&item, "COLLECTED").await;
    s.app.smtp.wait_for(SENDER, 1, WAIT).await;
    s.app.drain().await;

    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE kind = 'notify' ORDER BY id")
            .fetch_all(s.app.state.db.pool())
            .await
            .unwrap();
    let mut jobs: Vec<Job> = payloads
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    // The receiver's two, in either order, then the sender's.
    jobs[..2].sort_by_key(|job| format!("{job:?}"));
    let collected = Job::Notify(NotifyJob {
        to: SENDER.into(),
        message: Message::ItemCollected {
            item: name.into(),
            location: location.into(),
        },
    });
    assert_eq!(jobs, [stored_for(phone), stored_for(RECEIVER), collected]);
    assert_eq!(s.locker_view(locker).await["status"], "AVAILABLE");
    assert_eq!(
        locker_core::store::audit::actions_for(s.app.state.db.pool(), &format!("item:{id}"))
            .await
            .unwrap()
            .iter()
            .filter(|a| a.starts_with("item.stored") || a.starts_with("item.collected"))
            .count(),
        2
    );
}
