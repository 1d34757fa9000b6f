//! The job pipeline's promises: nothing lost, nothing done twice, passing
//! failures retried, permanent ones dead-lettered with their reason; on the
//! in-process queue, and on RabbitMQ when `TEST_AMQP_URL` is set.

use std::time::Duration;

use locker_core::jobs::{Envelope, JobKind};
use locker_core::store::job_runs::{Claim, Claims};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, WAIT};

async fn lockers(app: &TestApp, admin: &str, n: usize) -> Vec<Value> {
    let mut made = Vec::new();
    for i in 0..n {
        made.push(app.locker(admin, &format!("Place {i}")).await);
    }
    made
}

pub(crate) async fn dead_letters(
    app: &TestApp,
    kind: JobKind,
    count: usize,
) -> Vec<(Envelope, String)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let dead = app.queue.dead_letters(kind).await.unwrap();
        if dead.len() >= count {
            return dead;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} dead letter(s) expected, found {}",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_redelivered_job_sends_nothing_twice() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let places = lockers(&app, &admin, 2).await;
    app.drop_item(
        &sender,
        &places[0]["id"],
        json!({"receiver_email": "once@example.com"}),
    )
    .await;
    app.smtp.wait_for("once@example.com", 1, WAIT).await;

    // The queue hands the same job out again, as after a lost acknowledgement.
    let (id, payload, trace): (i64, String, String) = sqlx::query_as(
        "SELECT id, payload, trace_id FROM outbox WHERE payload LIKE '%once@example.com%'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    let again = Envelope {
        id,
        kind: JobKind::Notify,
        attempt: 2,
        trace_id: trace,
        payload: serde_json::from_str(&payload).unwrap(),
        enqueued_at: None,
    };
    app.queue.publish(&again).await.unwrap();
    app.queue.publish(&again).await.unwrap();

    // A later job on the same queue is done, and the first still went out once.
    app.drop_item(
        &sender,
        &places[1]["id"],
        json!({"receiver_email": "later@example.com"}),
    )
    .await;
    app.smtp.wait_for("later@example.com", 1, WAIT).await;
    app.drain().await;
    let sent = app.smtp.mails_to("once@example.com");
    assert_eq!(sent.len(), 1);
    // Named by its job, the same on every try: a resend can be told apart.
    assert_eq!(
        sent[0].header("Message-ID"),
        Some(format!("<job-{id}@lockers.test>"))
    );
}

/// Two deliveries of one job at once (a redelivery while the first still
/// runs): the second waits for the first's claim, then finds the job done;
/// had the first failed (and given the job up), the second runs it.
#[tokio::test]
async fn two_deliveries_at_once_run_a_job_once() {
    let app = TestApp::spawn().await;
    let db = app.state.db.clone();
    let claims = Claims::default();
    for (job_id, first_finishes) in [(9_000_001, true), (9_000_002, false)] {
        let Claim::Mine(first) = claims.claim(&db, job_id, JobKind::Notify).await.unwrap() else {
            panic!("a job nobody ran is not done");
        };
        let second = tokio::spawn({
            let (claims, db) = (claims.clone(), db.clone());
            async move { claims.claim(&db, job_id, JobKind::Notify).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !second.is_finished(),
            "the second delivery waits for the first"
        );
        if first_finishes {
            first.finish(1).await.unwrap();
        } else {
            first.release().await.unwrap();
        }
        // At once: not after the first's lease would have run out.
        let second = tokio::time::timeout(Duration::from_secs(2), second)
            .await
            .expect("the second delivery goes on as soon as the first ends");
        match second.unwrap() {
            Claim::Done => assert!(first_finishes, "a failed first delivery left it done"),
            Claim::Mine(guard) => {
                assert!(!first_finishes, "a finished job was run again");
                guard.finish(2).await.unwrap();
            }
        }
    }
}

/// A job claimed by a first delivery, and a second delivery claiming it
/// meanwhile, on a PostgreSQL database of their own.
struct Contested {
    db: locker_core::Db,
    claims: Claims,
    first: locker_core::store::job_runs::Guard,
    second: tokio::task::JoinHandle<Claim>,
    _database: crate::helpers::TestDb,
}

async fn contested_on_postgres(job_id: i64) -> Contested {
    use locker_core::config::DatabaseConfig;

    let database = crate::helpers::TestDb::postgres_required().await;
    let db = locker_core::Db::connect(&DatabaseConfig::parse(&database.url).unwrap())
        .await
        .unwrap();
    let claims = Claims::default();
    let Claim::Mine(first) = claims.claim(&db, job_id, JobKind::Notify).await.unwrap() else {
        panic!("a job nobody ran is not done");
    };
    let second = tokio::spawn({
        let (claims, db) = (claims.clone(), db.clone());
        async move { claims.claim(&db, job_id, JobKind::Notify).await.unwrap() }
    });
    Contested {
        db,
        claims,
        first,
        second,
        _database: database,
    }
}

/// A worker that dies mid-job gives nothing up: its claim keeps the job
/// from a redelivery until the claim's lease runs out, then the redelivery
/// takes it.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set and --include-ignored"]
async fn a_job_whose_worker_died_is_taken_once_its_lease_runs_out() {
    use locker_core::store::job_runs::LEASE;

    let job_id = 9_000_003;
    let Contested {
        db,
        claims,
        first,
        second,
        _database,
    } = contested_on_postgres(job_id).await;
    // Dropped without a word, as by a worker killed mid-send.
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "a redelivery waits while the lease runs"
    );
    // The lease runs out (moved back rather than waited for).
    let lease = i64::try_from(LEASE.as_millis()).unwrap();
    sqlx::query("UPDATE job_runs SET claimed_until = claimed_until - $2 WHERE job_id = $1")
        .bind(job_id)
        .bind(lease + 1_000)
        .execute(db.pool())
        .await
        .unwrap();
    let Claim::Mine(guard) = tokio::time::timeout(WAIT, second).await.unwrap().unwrap() else {
        panic!("the job was never done");
    };
    guard.finish(1).await.unwrap();
    assert!(matches!(
        claims.claim(&db, job_id, JobKind::Notify).await.unwrap(),
        Claim::Done
    ));
}

/// A job whose work outlasts the lease keeps its claim: its worker renews
/// it, and a redelivery meanwhile waits, then finds the job done.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set and --include-ignored"]
async fn a_job_longer_than_its_lease_keeps_its_claim() {
    use locker_core::store::job_runs::LEASE;

    let Contested {
        mut first,
        second,
        _database,
        ..
    } = contested_on_postgres(9_000_004).await;
    let worked = first
        .hold_while(async {
            tokio::time::sleep(LEASE + LEASE / 2).await;
            second.is_finished()
        })
        .await
        .expect("the lease is kept while the database answers");
    assert!(!worked, "a redelivery waited while the work went on");
    first.finish(1).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(WAIT, second).await.unwrap().unwrap(),
        Claim::Done
    ));
}

/// Emails stuck at a mail server that does not answer hold no database
/// connection: with as few connections as stuck emails, drops are still
/// accepted and their SMS notices sent, and the stuck emails go once the
/// server answers, each once.
#[tokio::test]
async fn a_stalled_mail_server_holds_no_database_connection() {
    // Two connections for the process's writes (one more for reads), and
    // two email jobs at a time (the test stack's concurrency).
    let app = TestApp::spawn_with(&[("DATABASE_POOL_SIZE", "3")]).await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let places = lockers(&app, &admin, 4).await;
    let stuck = ["stuck-1@example.com", "stuck-2@example.com"];
    app.smtp.hold(&stuck);
    for (place, to) in places.iter().zip(stuck) {
        let (status, body) = app
            .drop_item(&sender, &place["id"], json!({"receiver_email": to}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.smtp.holding(2, WAIT).await;

    for (place, phone) in places[2..].iter().zip(["+14155552671", "+14155552672"]) {
        let (status, body) = app
            .drop_item(&sender, &place["id"], json!({"receiver_phone": phone}))
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "a drop is accepted while emails are stuck: {body}"
        );
        let sent = app.twilio.wait_for(phone, 1, WAIT).await;
        assert!(sent[0].body.contains("Place"), "{}", sent[0].body);
    }
    assert!(
        app.smtp.mails().is_empty(),
        "the stuck emails are still held"
    );

    app.smtp.release();
    for to in stuck {
        app.smtp.wait_for(to, 1, WAIT).await;
    }
    app.drain().await;
    for to in stuck {
        assert_eq!(app.smtp.mails_to(to).len(), 1, "{to} got its notice once");
    }
}

#[tokio::test]
async fn a_passing_provider_failure_is_retried() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let place = app.locker(&admin, "Library").await;
    app.twilio.script(&[503, 500]);
    app.drop_item(
        &sender,
        &place["id"],
        json!({"receiver_phone": "+14155552671"}),
    )
    .await;
    let sent = app.twilio.wait_for("+14155552671", 1, WAIT).await;
    assert!(sent[0].body.contains("Library"));
    assert!(
        app.queue
            .dead_letters(JobKind::Notify)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn refused_and_exhausted_jobs_are_dead_lettered_with_the_reason() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let places = lockers(&app, &admin, 3).await;

    // The SMTP server refuses the mailbox for good.
    app.drop_item(
        &sender,
        &places[0]["id"],
        json!({"receiver_email": "reject@example.com"}),
    )
    .await;
    let dead = dead_letters(&app, JobKind::Notify, 1).await;
    assert!(dead[0].1.contains("SMTP server refused"), "{dead:?}");
    assert!(dead[0].0.payload.to_string().contains("reject@example.com"));

    // Twilio refuses the message (a 4xx): no retry.
    app.twilio.script(&[400]);
    app.drop_item(
        &sender,
        &places[1]["id"],
        json!({"receiver_phone": "+14155552671"}),
    )
    .await;
    let dead = dead_letters(&app, JobKind::Notify, 2).await;
    assert!(
        dead.iter()
            .any(|(e, reason)| reason.contains("Twilio refused") && e.attempt == 1),
        "{dead:?}"
    );

    // Twilio fails three times (5xx): three tries, then given up.
    app.twilio.script(&[500, 502, 503]);
    app.drop_item(
        &sender,
        &places[2]["id"],
        json!({"receiver_phone": "+14155552672"}),
    )
    .await;
    let dead = dead_letters(&app, JobKind::Notify, 3).await;
    assert!(
        dead.iter()
            .any(|(e, reason)| reason.starts_with("gave up after 3 tries") && e.attempt == 3),
        "{dead:?}"
    );
    assert!(app.twilio.sent().is_empty());
}

#[tokio::test]
async fn a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice() {
    let mut app = match TestApp::spawn_behind_amqp_proxy().await {
        Some(app) => app,
        None => TestApp::spawn().await,
    };
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let places = lockers(&app, &admin, 8).await;
    let receivers: Vec<_> = (0..8).map(|i| format!("r{i}@example.com")).collect();

    // From r3 on, the mail server keeps each worker waiting mid-conversation:
    // both end up stuck in a send, with the mails before done and the rest
    // queued or prefetched.
    let held: Vec<&str> = receivers[3..].iter().map(String::as_str).collect();
    app.smtp.hold(&held);
    for (place, to) in places.iter().zip(&receivers) {
        let (status, _) = app
            .drop_item(&sender, &place["id"], json!({"receiver_email": to}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    app.smtp.holding(2, WAIT).await;

    // Killed there: its connections vanish without goodbye.
    if let Some(proxy) = &app.proxy {
        proxy.cut();
    }
    app.kill_and_restart().await;
    if let Some(proxy) = &app.proxy {
        proxy.restore();
    }
    app.smtp.release();

    for to in &receivers {
        app.smtp.wait_for(to, 1, WAIT).await;
    }
    app.drain().await;
    for to in &receivers {
        assert_eq!(app.smtp.mails_to(to).len(), 1, "{to}");
    }

    // And the exchange goes on after the restart.
    let locker = &places[3]["id"];
    assert_eq!(
        app.request_otp(locker, "r3@example.com").await.0,
        StatusCode::ACCEPTED
    );
    let code = app.email_code("r3@example.com", 1).await;
    assert_eq!(app.collect(locker, &code).await.0, StatusCode::OK);
}

/// On RabbitMQ through a proxy the test cuts: the app, its proxy, a
/// sender's token and `n` lockers.
async fn behind_amqp_proxy(n: usize) -> (TestApp, locker_testkit::TcpProxy, String, Vec<Value>) {
    let app = TestApp::spawn_behind_amqp_proxy()
        .await
        .expect("TEST_AMQP_URL must name a RabbitMQ server for this test");
    let proxy = app.proxy.clone().unwrap();
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let places = lockers(&app, &admin, n).await;
    (app, proxy, sender, places)
}

/// A broker that stops answering without closing the connection is given
/// up on: a job waiting to go is published on a new connection within
/// seconds, and the consumers on the stuck connection notice by its
/// heartbeats (two missed: 10 s, not RabbitMQ's default two minutes) and
/// take the job on a new one, once. Nothing closes the stuck connection.
#[tokio::test]
#[ignore = "needs RabbitMQ: run with TEST_AMQP_URL set and --include-ignored"]
async fn a_broker_that_stops_answering_is_given_up_on() {
    let (app, proxy, sender, places) = behind_amqp_proxy(2).await;
    let receivers = ["first@example.com", "second@example.com"];
    let drop_for = async |i: usize| {
        let to = json!({"receiver_email": receivers[i]});
        let (status, _) = app.drop_item(&sender, &places[i]["id"], to).await;
        assert_eq!(status, StatusCode::CREATED);
    };
    // A first job opens the connection the jobs go out on.
    drop_for(0).await;
    app.smtp.wait_for(receivers[0], 1, WAIT).await;

    proxy.freeze();
    drop_for(1).await;
    app.wait_until("the job published on a new connection", || async {
        app.count("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
            .await
            == 0
    })
    .await;

    app.smtp.wait_for(receivers[1], 1, WAIT).await;
    app.drain().await;
    for to in receivers {
        assert_eq!(app.smtp.mails_to(to).len(), 1, "{to} got its notice once");
    }
}

#[tokio::test]
#[ignore = "needs RabbitMQ: run with TEST_AMQP_URL set and --include-ignored"]
async fn with_rabbitmq_out_of_reach_drops_are_accepted_and_delivered_later() {
    let (app, proxy, sender, places) = behind_amqp_proxy(5).await;

    proxy.cut();
    for (i, place) in places.iter().enumerate() {
        let (status, body) = app
            .drop_item(
                &sender,
                &place["id"],
                json!({"receiver_email": format!("late{i}@example.com")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = app
        .count("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .await;
    assert_eq!(
        waiting, 5,
        "jobs wait in the outbox while the broker is away"
    );
    assert!(app.smtp.mails().is_empty());

    proxy.restore();
    for i in 0..5 {
        app.smtp
            .wait_for(&format!("late{i}@example.com"), 1, Duration::from_secs(40))
            .await;
    }
    // Every job is stamped published, and none went out twice.
    app.drain().await;
    for i in 0..5 {
        assert_eq!(app.smtp.mails_to(&format!("late{i}@example.com")).len(), 1);
    }
}

/// A code job whose effect went out but whose completion was never recorded
/// (the worker died, or the database failed, right after the provider took
/// the message) runs again: the receiver gets the same code again, and it
/// still opens the locker.
#[tokio::test]
async fn a_code_job_run_again_sends_the_same_code() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let place = app.locker(&admin, "Library").await;
    let phone = "+14155552671";
    app.drop_item(&sender, &place["id"], json!({"receiver_phone": phone}))
        .await;
    app.request_otp(&place["id"], phone).await;
    let first = app.sms_code(phone, 1).await;

    let (id, payload, trace): (i64, String, String) =
        sqlx::query_as("SELECT id, payload, trace_id FROM outbox WHERE kind = 'otp'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    app.drain().await;
    sqlx::query("DELETE FROM job_runs WHERE job_id = $1")
        .bind(id)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let again = Envelope {
        id,
        kind: JobKind::Otp,
        attempt: 2,
        trace_id: trace,
        payload: serde_json::from_str(&payload).unwrap(),
        enqueued_at: None,
    };
    app.queue.publish(&again).await.unwrap();
    let second = app.sms_code(phone, 2).await;
    assert_eq!(
        second, first,
        "a retry re-sends the code the receiver holds"
    );
    let (status, body) = app.collect(&place["id"], &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The RabbitMQ URL a relay test publishes to.
fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("TEST_AMQP_URL must name a RabbitMQ server for this test")
}

fn otp_job(n: i64) -> locker_core::jobs::Job {
    locker_core::jobs::Job::Otp(locker_core::jobs::OtpJob {
        item_id: n,
        contact: format!("r{n}@example.com"),
    })
}

/// A job handed to the relay of the process that committed it goes out at
/// once, without waiting for a sweep. A job whose process stopped between
/// its commit and its publishing (written here straight to the outbox,
/// handed to no relay) waits for the grace period, then another process's
/// sweep publishes it; the job handed over is not published again.
#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ: run with TEST_DATABASE_URL and TEST_AMQP_URL set and --include-ignored"]
async fn the_sweep_publishes_what_no_relay_was_handed_and_nothing_else() {
    use locker_core::config::{DatabaseConfig, QueueType};
    use locker_core::queue::{AmqpQueue, JobQueue};
    use locker_core::relay::{Outgoing, Relay};
    use locker_core::store::outbox;
    use locker_core::{Clock, Db, SystemClock};

    let url = amqp_url();
    let database = crate::helpers::TestDb::postgres_required().await;
    let config = DatabaseConfig::parse(&database.url).unwrap();
    let writing = Db::connect(&config).await.unwrap();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let delays = [Duration::from_millis(100)];
    let queue = || JobQueue::Amqp(AmqpQueue::new(&url, &prefix, &delays, QueueType::Classic));
    let mut consumer = queue().consume(JobKind::Otp, 10).await.unwrap();
    let relay = |db: Db, outgoing: Outgoing, grace: Duration| {
        Relay::new(db, queue(), std::sync::Arc::new(SystemClock), outgoing)
            .poll_every(Duration::from_millis(50))
            .grace(grace)
    };

    // The first process sweeps only what is an hour old.
    let outgoing = Outgoing::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let db = Db::connect(&config).await.unwrap();
    let first = relay(db, outgoing.clone(), Duration::from_secs(3600));
    let first = tokio::spawn(first.run(stop.clone()));
    let now = SystemClock.now_millis();
    let handed = outbox::enqueue(writing.pool(), &otp_job(1), "trace", now)
        .await
        .unwrap();
    let left = outbox::enqueue(writing.pool(), &otp_job(2), "trace", now)
        .await
        .unwrap();
    let handed_id = handed.id;
    outgoing.committed(vec![handed]);
    let delivery = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("the job handed over published at once")
        .expect("a delivery");
    assert_eq!(delivery.envelope.id, handed_id);
    delivery.ack().await.unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), consumer.next()).await;
    assert!(
        early.is_err(),
        "a job no relay was handed is published before its grace period"
    );
    // Its process stops (stamping what it published); another sweeps.
    stop.cancel();
    first.await.unwrap();

    let stop = tokio_util::sync::CancellationToken::new();
    let db = Db::connect(&config).await.unwrap();
    let second = relay(db, Outgoing::default(), Duration::from_millis(300));
    let second = tokio::spawn(second.run(stop.clone()));
    let delivery = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("the sweep published the job left behind")
        .expect("a delivery");
    assert_eq!(delivery.envelope.id, left.id);
    delivery.ack().await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(1), consumer.next()).await;
    assert!(
        again.is_err(),
        "a job published twice: {:?}",
        again.map(|d| d.map(|d| d.envelope.id))
    );
    assert_eq!(outbox::backlog(writing.pool()).await.unwrap(), 0);
    stop.cancel();
    second.await.unwrap();
    drop(consumer);
    AmqpQueue::delete_queues(&url, &prefix, &[100])
        .await
        .unwrap();
}

/// Two api processes' relays over one outbox and one RabbitMQ, while jobs
/// are written all at once: most handed to one relay or the other as their
/// transactions commit, some left behind by a process that stopped. Every
/// job reaches the queue, and none twice; every one is stamped published.
#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ: run with TEST_DATABASE_URL and TEST_AMQP_URL set and --include-ignored"]
async fn relays_side_by_side_publish_every_job_once() {
    use std::collections::HashSet;

    use futures::future::join_all;
    use locker_core::config::{DatabaseConfig, QueueType};
    use locker_core::queue::{AmqpQueue, JobQueue};
    use locker_core::relay::{Outgoing, Relay};
    use locker_core::store::outbox::{self, OutboxTx};
    use locker_core::{Clock, Db, SystemClock};

    const JOBS: i64 = 400;
    let url = amqp_url();
    let database = crate::helpers::TestDb::postgres_required().await;
    let config = DatabaseConfig::parse(&database.url).unwrap();
    let writing = Db::connect(&config).await.unwrap();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let delays = [Duration::from_millis(100)];
    let queue = AmqpQueue::new(&url, &prefix, &delays, QueueType::Classic);
    let mut consumer = JobQueue::Amqp(queue.clone())
        .consume(JobKind::Otp, 500)
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut relays = Vec::new();
    let mut handed_to = Vec::new();
    for _ in 0..2 {
        let outgoing = Outgoing::default();
        let relay = Relay::new(
            Db::connect(&config).await.unwrap(),
            // Each process publishes on a connection of its own.
            JobQueue::Amqp(AmqpQueue::new(&url, &prefix, &delays, QueueType::Classic)),
            std::sync::Arc::new(SystemClock),
            outgoing.clone(),
        )
        .poll_every(Duration::from_millis(100))
        .grace(Duration::from_secs(2));
        relays.push(tokio::spawn(relay.run(stop.clone())));
        handed_to.push(outgoing);
    }

    // Eight writers at once, a transaction a job: writers 0-2 hand theirs
    // to the first relay, 3-5 to the second, 6 and 7 to none.
    let writers = (0..8).map(|writer| {
        let (db, outgoing) = (writing.clone(), handed_to.get(writer as usize / 3).cloned());
        async move {
            for n in 0..JOBS / 8 {
                let mut tx = OutboxTx::new(db.begin().await.unwrap(), db.backend());
                tx.enqueue(
                    &otp_job(writer * 1_000 + n),
                    "trace",
                    SystemClock.now_millis(),
                );
                match &outgoing {
                    Some(relay) => tx.commit(relay).await.unwrap(),
                    None => tx.commit(&Outgoing::default()).await.unwrap(),
                }
            }
        }
    });
    join_all(writers).await;

    let mut seen = HashSet::new();
    while seen.len() < JOBS as usize {
        let delivery = tokio::time::timeout(WAIT, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {JOBS} jobs published", seen.len()))
            .expect("a delivery");
        assert!(
            seen.insert(delivery.envelope.id),
            "job {} published twice",
            delivery.envelope.id
        );
        delivery.ack().await.unwrap();
    }
    // Nothing more comes: no job went out twice.
    let more = tokio::time::timeout(Duration::from_secs(3), consumer.next()).await;
    assert!(
        more.is_err(),
        "a job published twice: {:?}",
        more.map(|d| d.map(|d| d.envelope.id))
    );
    let waiting = outbox::backlog(writing.pool()).await.unwrap();
    assert_eq!(waiting, 0, "every job stamped published");

    stop.cancel();
    for relay in relays {
        relay.await.unwrap();
    }
    drop(consumer);
    AmqpQueue::delete_queues(&url, &prefix, &[100])
        .await
        .unwrap();
}
