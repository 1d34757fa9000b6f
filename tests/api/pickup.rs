//! Pickup at the locker: the PIN and the pickup page's QR code from the
//! deposit notice, entered on the locker's keypad or scanner and checked by
//! the server; and, with the site cut off, checked by the agent against the
//! grant the server sent it, the collection applied once when it is back.

use std::time::Duration;

use locker_agent::pickups::OfflineRefusal;
use locker_agent::{EntryOutcome, keypad};
use locker_protocol::{OfflineCollection, PickupMethod, ReplyReason, Topics, agent_key};
use locker_testkit::TcpProxy;
use reqwest::StatusCode;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};

use crate::agents::TestAgent;
use crate::console_browser::Browser;
use crate::doors::{RECEIVER, Site, site};
use crate::helpers::{AGENT_SECRET, TestApp, WAIT};

const SENDER: &str = "sender@example.com";

/// What the deposit notice gave the receiver.
pub(crate) struct Pass {
    pub pin: String,
    pub token: String,
    pub link: String,
}

impl Site {
    /// Drops an item through the agent's door and returns it stored, with
    /// the pass its receiver was sent.
    async fn stored(&self, agent: &TestAgent, locker: i64) -> (Value, Pass) {
        let item = self.drop_item(locker).await;
        self.wait_door(agent, locker, true).await;
        agent.doors.close(locker);
        self.wait_status(&item, "STORED").await;
        let notices = self.app.smtp.wait_for(RECEIVER, 1, WAIT).await;
        let pass = pass_in(&notices.last().unwrap().body());
        // The grant reaches the agent through the pipeline.
        self.app.drain().await;
        (item, pass)
    }

    async fn page(&self, token: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let response = self
            .app
            .client
            .get(format!("{}/pickup/{token}", self.app.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }
}

/// A code of the same length that is not `code`.
pub(crate) fn not(code: &str) -> String {
    let digit = if code.starts_with('0') { "1" } else { "0" };
    digit.repeat(code.len())
}

/// The PIN and the link of a deposit notice.
pub(crate) fn pass_in(body: &str) -> Pass {
    let body = body.replace("=\r\n", "").replace("\r\n", " ");
    let pin_at = body.find("pickup PIN is ").expect("a PIN in the notice") + 14;
    let pin = body[pin_at..pin_at + 8].to_owned();
    assert!(pin.bytes().all(|b| b.is_ascii_digit()), "{body}");
    let link_at = body.find("http").expect("a link in the notice");
    let link: String = body[link_at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let token = link.rsplit('/').next().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{link}");
    Pass { pin, token, link }
}

#[tokio::test]
async fn the_pin_from_the_notice_opens_the_door_once_and_the_item_is_collected() {
    let s = site().await;
    let locker = s.locker("pick-1").await;
    let agent = s.app.agent("pick-1", &[locker], None).await;
    let (item, pass) = s.stored(&agent, locker).await;
    assert!(pass.link.contains("/pickup/"), "{}", pass.link);
    // Nothing stored reveals the PIN or the token.
    let stored: i64 = s
        .app
        .count("SELECT COUNT(*) FROM pickup_passes WHERE pin_hash LIKE '%' AND salt <> ''")
        .await;
    assert_eq!(stored, 1);

    let wrong = &not(&pass.pin);
    let outcome = agent.keypad.enter(locker, PickupMethod::Pin, wrong).await;
    assert_eq!(outcome, EntryOutcome::Refused(ReplyReason::WrongCode));
    assert!(!agent.doors.is_open(locker));

    let outcome = agent
        .keypad
        .enter(locker, PickupMethod::Pin, &pass.pin)
        .await;
    assert_eq!(outcome, EntryOutcome::Accepted);
    s.wait_door(&agent, locker, true).await;
    assert_eq!(s.item(&item).await["status"], "RELEASING");
    agent.doors.close(locker);
    s.wait_status(&item, "COLLECTED").await;
    s.app.smtp.wait_for(SENDER, 1, WAIT).await;

    // Spent: the same PIN opens nothing again.
    let again = agent
        .keypad
        .enter(locker, PickupMethod::Pin, &pass.pin)
        .await;
    assert_eq!(again, EntryOutcome::Refused(ReplyReason::WrongCode));
    s.app.drain().await;
    assert_eq!(agent.doors.openings(locker), 2, "the drop and the pickup");
    let (status, _, page) = s.page(&pass.token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("has been collected"), "{page}");
    assert!(!page.contains("<svg"), "no code once collected");
    agent.stop().await;
}

#[tokio::test]
async fn the_pickup_page_shows_where_and_a_qr_code_the_scanner_accepts() {
    let s = site().await;
    let locker = s.locker("pick-2").await;
    let agent = s.app.agent("pick-2", &[locker], None).await;
    let (item, pass) = s.stored(&agent, locker).await;

    let (status, headers, page) = s.page(&pass.token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(
        page.contains("Mall Entrance") && page.contains("D1"),
        "{page}"
    );
    assert!(
        page.contains("<svg") && page.contains("Pickup QR code"),
        "{page}"
    );
    assert!(!page.contains(&pass.pin), "the page never shows the PIN");
    assert!(!page.contains(RECEIVER) && !page.contains(SENDER));

    // Scanned, through the simulated site's keypad socket (what
    // `locker-agent enter --qr` writes to).
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("keypad.sock");
    let keypads = [(locker, agent.keypad.clone())].into_iter().collect();
    let stop = tokio_util::sync::CancellationToken::new();
    let served = tokio::spawn({
        let (socket, stop) = (socket.clone(), stop.clone());
        async move { keypad::serve(&socket, keypads, stop).await }
    });
    s.app
        .wait_until("the keypad socket", || async { socket.exists() })
        .await;
    let unknown = keypad::enter(&socket, PickupMethod::Qr, locker + 1, &pass.token).await;
    assert_eq!(unknown.unwrap(), "unknown_locker");
    let answer = keypad::enter(&socket, PickupMethod::Qr, locker, &pass.token).await;
    assert_eq!(answer.unwrap(), "accepted");
    s.wait_door(&agent, locker, true).await;
    agent.doors.close(locker);
    s.wait_status(&item, "COLLECTED").await;
    stop.cancel();
    served.await.unwrap().unwrap();
    agent.stop().await;
}

#[tokio::test]
async fn strangers_learn_nothing_from_pickup_links() {
    let s = site().await;
    let unknown = "0123456789abcdef0123456789abcdef";
    let (status, _, not_found) = s.page(unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for probe in [
        "x",
        "0123456789abcdef0123456789abcdeg",
        "%00",
        &"a".repeat(5000),
    ] {
        let (status, _, page) = s.page(probe).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{probe}");
        assert_eq!(
            page, not_found,
            "a malformed token looks like an unknown one"
        );
    }
}

#[tokio::test]
async fn wrong_pins_count_with_wrong_codes_and_cool_the_item_down() {
    let s = site().await;
    let locker = s.locker("pick-3").await;
    let agent = s.app.agent("pick-3", &[locker], None).await;
    let (item, pass) = s.stored(&agent, locker).await;
    let wrong = &not(&pass.pin);
    s.app.request_otp(&json!(locker), RECEIVER).await;
    let code = s.app.email_code(RECEIVER, 1).await;
    for _ in 0..9 {
        let outcome = agent.keypad.enter(locker, PickupMethod::Pin, wrong).await;
        assert_eq!(outcome, EntryOutcome::Refused(ReplyReason::WrongCode));
    }
    // The tenth wrong try is a wrong one-time code at the api: one count.
    let (status, _) = s.app.collect(&json!(locker), &not(&code)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let outcome = agent
        .keypad
        .enter(locker, PickupMethod::Pin, &pass.pin)
        .await;
    assert_eq!(outcome, EntryOutcome::Refused(ReplyReason::CoolingDown));
    let outcome = agent
        .keypad
        .enter(locker, PickupMethod::Qr, &pass.token)
        .await;
    assert_eq!(outcome, EntryOutcome::Refused(ReplyReason::CoolingDown));
    assert_eq!(s.item(&item).await["status"], "STORED");

    s.app.advance(Duration::from_secs(16 * 60));
    let outcome = agent
        .keypad
        .enter(locker, PickupMethod::Pin, &pass.pin)
        .await;
    assert_eq!(outcome, EntryOutcome::Accepted);
    agent.stop().await;
}

#[tokio::test]
async fn a_pin_and_a_code_at_once_open_the_door_once() {
    let s = site().await;
    let locker = s.locker("pick-4").await;
    let agent = s.app.agent("pick-4", &[locker], None).await;
    let (item, pass) = s.stored(&agent, locker).await;
    s.app.request_otp(&json!(locker), RECEIVER).await;
    let code = s.app.email_code(RECEIVER, 1).await;

    let at_locker = json!(locker);
    let (entered, (status, _)) = tokio::join!(
        agent.keypad.enter(locker, PickupMethod::Pin, &pass.pin),
        s.app.collect(&at_locker, &code),
    );
    let winners =
        usize::from(entered == EntryOutcome::Accepted) + usize::from(status == StatusCode::OK);
    assert_eq!(winners, 1, "entry {entered:?}, collect {status}");
    s.wait_door(&agent, locker, true).await;
    agent.doors.close(locker);
    s.wait_status(&item, "COLLECTED").await;
    s.app.drain().await;
    assert_eq!(agent.doors.openings(locker), 2);
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM commands WHERE purpose = 'collect'")
            .await,
        1
    );
    agent.stop().await;
}

/// An agent whose link to the broker the test can cut.
/// Where notices run on workers without the doors' link, the pass's grant
/// is queued as a job for a worker that has it: the PIN still opens the
/// door while the site is offline.
#[tokio::test]
async fn with_notices_apart_from_the_doors_the_grant_is_queued_and_the_pin_opens_offline() {
    let app = TestApp::spawn_split().await;
    let admin = app.admin_token().await;
    let sender = app.user_token(SENDER).await;
    let s = Site { app, admin, sender };
    let locker = s.locker("pick-apart").await;
    let (agent, proxy) = cuttable_agent(&s, "pick-apart", locker).await;
    let (item, pass) = s.stored(&agent, locker).await;
    let grants = s
        .app
        .count("SELECT COUNT(*) FROM outbox WHERE payload LIKE '%grant_locker_id%'")
        .await;
    assert_eq!(grants, 1, "the grant queued as a job");

    proxy.cut();
    s.app.wait_agent_online("pick-apart", false).await;
    let outcome = enter_offline(&agent, locker, PickupMethod::Pin, &pass.pin).await;
    assert_eq!(outcome, EntryOutcome::OpenedOffline);
    agent.doors.close(locker);
    proxy.restore();
    s.wait_status(&item, "COLLECTED").await;
}

async fn cuttable_agent(s: &Site, id: &str, locker: i64) -> (TestAgent, TcpProxy) {
    let (proxy, via) = s.app.broker_proxy().await;
    (s.app.agent_via(id, &[locker], None, via).await, proxy)
}

/// Enters a code until the agent itself has noticed its link is gone.
async fn enter_offline(
    agent: &TestAgent,
    locker: i64,
    method: PickupMethod,
    code: &str,
) -> EntryOutcome {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let outcome = agent.keypad.enter(locker, method, code).await;
        if outcome != EntryOutcome::NoAnswer {
            return outcome;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never noticed the cut"
        );
    }
}

#[tokio::test]
async fn a_pin_opens_the_door_while_the_site_is_offline_and_is_collected_once() {
    let s = site().await;
    let locker = s.locker("pick-5").await;
    let (agent, proxy) = cuttable_agent(&s, "pick-5", locker).await;
    let (item, pass) = s.stored(&agent, locker).await;

    proxy.cut();
    s.app.wait_agent_online("pick-5", false).await;
    let wrong = &not(&pass.pin);
    let outcome = enter_offline(&agent, locker, PickupMethod::Pin, wrong).await;
    assert_eq!(
        outcome,
        EntryOutcome::RefusedOffline(OfflineRefusal::WrongCode)
    );
    let outcome = agent
        .keypad
        .enter(locker, PickupMethod::Pin, &pass.pin)
        .await;
    assert_eq!(outcome, EntryOutcome::OpenedOffline);
    assert!(agent.doors.is_open(locker));
    agent.doors.close(locker);
    // Spent at the agent too.
    let again = agent
        .keypad
        .enter(locker, PickupMethod::Pin, &pass.pin)
        .await;
    assert_eq!(
        again,
        EntryOutcome::RefusedOffline(OfflineRefusal::NothingToCollect)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.item(&item).await["status"],
        "STORED",
        "nothing reached the server"
    );

    proxy.restore();
    s.wait_status(&item, "COLLECTED").await;
    s.app.smtp.wait_for(SENDER, 1, WAIT).await;
    let locker_view = s
        .app
        .get(&format!("/lockers/{locker}"), Some(&s.admin))
        .await
        .1;
    assert_eq!(locker_view["status"], "AVAILABLE");

    // A copy of the report, as a broker may deliver again: nothing more.
    let key = agent_key(AGENT_SECRET.as_bytes(), "pick-5");
    let report_id: String =
        sqlx::query_scalar("SELECT id FROM pickup_requests WHERE kind = 'collection'")
            .fetch_one(s.app.state.db.pool())
            .await
            .unwrap();
    let at: i64 = s.item(&item).await["id"].as_i64().unwrap();
    let copy =
        OfflineCollection::signed(report_id, locker, at, PickupMethod::Pin, 0, key.as_bytes());
    publish(
        &s.app,
        &Topics::new(&s.app.doors.topic_root).collections("pick-5"),
        &copy,
    )
    .await;
    s.app.drain().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.app.smtp.mails_to(SENDER).len(),
        1,
        "the sender is told once"
    );
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'item.collected_offline'")
            .await,
        1
    );
    assert_eq!(s.app.count("SELECT COUNT(*) FROM pickup_requests").await, 1);
    assert_eq!(agent.doors.openings(locker), 2);
    agent.stop().await;
}

#[tokio::test]
async fn an_item_cleared_while_the_site_was_away_cannot_be_opened_offline_later() {
    let s = site().await;
    let locker = s.locker("pick-6").await;
    let (agent, proxy) = cuttable_agent(&s, "pick-6", locker).await;
    let (item, pass) = s.stored(&agent, locker).await;

    proxy.cut();
    s.app.wait_agent_online("pick-6", false).await;
    // The agent holds the grant: a wrong PIN is checked against it.
    let outcome = enter_offline(&agent, locker, PickupMethod::Pin, &not(&pass.pin)).await;
    assert_eq!(
        outcome,
        EntryOutcome::RefusedOffline(OfflineRefusal::WrongCode)
    );
    let (status, _) = s
        .app
        .delete(&format!("/Admin/{locker}/force-clear"), Some(&s.admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.item(&item).await["status"], "CLEARED");
    s.app.drain().await;

    // Back online, the agent hears the grant was revoked...
    proxy.restore();
    s.app.wait_agent_online("pick-6", true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...so cut off again, the old PIN opens nothing.
    proxy.cut();
    s.app.wait_agent_online("pick-6", false).await;
    let outcome = enter_offline(&agent, locker, PickupMethod::Pin, &pass.pin).await;
    assert_eq!(
        outcome,
        EntryOutcome::RefusedOffline(OfflineRefusal::NothingToCollect)
    );
    assert!(!agent.doors.is_open(locker));
    proxy.restore();
    agent.stop().await;
}

/// The sender gives more time while the site is up: the agent's grant
/// follows the new deadline, so offline, past the first deadline and before
/// the new one, the PIN still opens the door.
#[tokio::test]
async fn an_extended_deadline_reaches_the_agent_s_grant() {
    let s = site().await;
    let locker = s.locker("pick-8").await;
    let (agent, proxy) = cuttable_agent(&s, "pick-8", locker).await;
    let (item, pass) = s.stored(&agent, locker).await;
    let (status, extended) = s
        .app
        .post(
            &format!("/Items/{}/extend", item["id"]),
            Some(&s.sender),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{extended}");
    s.app.drain().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.cut();
    s.app.wait_agent_online("pick-8", false).await;
    // PICKUP_HOURS (72) and a minute: past the first deadline only.
    // (Tokens have expired by then: the database is read directly.)
    s.app.advance(Duration::from_secs(72 * 3600 + 60));
    let stored = "SELECT COUNT(*) FROM items WHERE status = 'STORED'";
    assert_eq!(s.app.count(stored).await, 1);
    let outcome = enter_offline(&agent, locker, PickupMethod::Pin, &pass.pin).await;
    assert_eq!(outcome, EntryOutcome::OpenedOffline);
    agent.doors.close(locker);
    proxy.restore();
    s.app
        .wait_until("collected", || async {
            s.app
                .count("SELECT COUNT(*) FROM items WHERE status = 'COLLECTED'")
                .await
                == 1
        })
        .await;
    agent.stop().await;
}

async fn publish(app: &TestApp, topic: &str, message: &OfflineCollection) {
    let broker = app.doors.broker.clone().unwrap();
    let mut options = MqttOptions::new(
        format!("test-{}", uuid::Uuid::new_v4()),
        broker.host.clone(),
        broker.port,
    );
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(message).unwrap(),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, eventloop.poll()).await;
        if let Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) = event {
            break;
        }
        assert!(event.is_ok(), "the broker never took the copy");
    }
}

/// The pickup page in a real headless Chromium that can reach nothing but
/// 127.0.0.1: it loads nothing besides itself, its inline style applies
/// under its Content-Security-Policy, and the QR code as the browser paints
/// it reads back (decoded from a screenshot) as the token the scanner sends.
#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver: set TEST_CHROMIUM and TEST_CHROMEDRIVER"]
async fn the_pickup_page_paints_a_qr_code_that_reads_back_as_the_token() {
    let s = site().await;
    let locker = s.locker("pick-7").await;
    let agent = s.app.agent("pick-7", &[locker], None).await;
    let (_, pass) = s.stored(&agent, locker).await;
    let browser = Browser::open(&s.app).await;
    browser.goto(&format!("/pickup/{}", pass.token)).await;
    browser
        .wait_for(
            "the QR code painted",
            "const qr = document.querySelector('.qr svg'); \
             return document.readyState === 'complete' && !!qr \
               && qr.getBoundingClientRect().width >= 200;",
        )
        .await;
    let seen = browser
        .client
        .execute(
            "return [document.body.innerText, getComputedStyle(document.body).maxWidth, \
                     performance.getEntriesByType('resource').map(r => r.name) \
                       .filter(name => !name.endsWith('/favicon.ico'))];",
            vec![],
        )
        .await
        .unwrap();
    let text = seen[0].as_str().unwrap();
    assert!(text.contains("Locker D1 at Mall Entrance"), "{text}");
    assert_eq!(seen[1], "448px", "the page's own style applies");
    assert_eq!(
        seen[2],
        json!([]),
        "the page asks for nothing else (the browser asks for a favicon)"
    );
    browser.screenshot("pickup").await;

    let png = browser.client.screenshot().await.unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.color_type.samples();
    let (width, height) = (frame.width as usize, frame.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        let at = (y * width + x) * channels;
        let rgb = &pixels[at..at + channels.min(3)];
        (rgb.iter().map(|&c| u32::from(c)).sum::<u32>() / rgb.len() as u32) as u8
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the page");
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, pass.token);

    let outcome = agent.keypad.enter(locker, PickupMethod::Qr, &content).await;
    assert_eq!(outcome, EntryOutcome::Accepted);
    agent.stop().await;
}

/// A grant that finds the locker's pass held (by another grant, say) waits
/// for it, then reads the item as it is once it has the pass, though its
/// read began before the item left: of two grants, the later state is
/// published last. Both ways a grant is read: with its job's done mark, and
/// with none (the deposit notice's).
#[tokio::test]
#[ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set and --include-ignored"]
async fn a_grant_waiting_for_the_pass_reads_the_item_as_it_is_then() {
    use locker_core::config::Backend;
    use locker_core::store::pickups;
    use locker_core::{Clock, SystemClock};

    let s = site().await;
    assert!(
        s.app.state.db.backend().chains_writes(),
        "TEST_DATABASE_URL must name a PostgreSQL server for this test"
    );
    let locker = s.locker("pick-9").await;
    let agent = s.app.agent("pick-9", &[locker], None).await;
    let (item, _) = s.stored(&agent, locker).await;
    let id = item["id"].as_i64().unwrap();
    let pool = s.app.state.db.pool().clone();
    let now = SystemClock.now_millis();
    let set_status = async |status: &str| {
        sqlx::query("UPDATE items SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status.to_owned())
            .execute(&pool)
            .await
            .unwrap();
    };

    for done in [None, Some(-2)] {
        set_status("STORED").await;
        let mut holder = pool.begin().await.unwrap();
        sqlx::query("SELECT item_id FROM pickup_passes WHERE item_id = $1 FOR UPDATE")
            .bind(id)
            .fetch_one(&mut *holder)
            .await
            .unwrap();
        let grant = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                let state =
                    pickups::grant_state(&mut tx, Backend::Postgres, locker, now, done).await;
                tx.commit().await.unwrap();
                state
            }
        });
        s.app
            .wait_until("the grant waits for the pass", || async {
                s.app
                    .count(
                        "SELECT COUNT(*) FROM pg_stat_activity \
                         WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    )
                    .await
                    == 1
            })
            .await;
        // The item leaves its locker meanwhile, as a collect takes it.
        set_status("RELEASING").await;
        holder.commit().await.unwrap();
        let state = grant.await.unwrap().unwrap().expect("a pass");
        assert_eq!(state.item_id, id);
        assert_eq!(
            state.open_until, None,
            "{done:?}: read as it is now: revoked"
        );
    }
    agent.stop().await;
}
