//! The receiver, who has no account, asks for a code at the locker and
//! collects with it. Asking answers alike whoever asks; a code is tried at
//! most `otp_max_attempts` times, each try counted before it is checked, and
//! spent once: of two collects with one code, one wins.

use sqlx::{AssertSqlSafe, Row};

use super::release::Spent;
use super::{Error, Exchange, Result, once_more};
use crate::clock::Millis;
use crate::domain::{Contact, Item};
use crate::jobs::{Job, OtpJob};
use crate::store::items;
use crate::store::rate_limits::{self, Gate};
use crate::store::{codes, outbox};

/// A collect that worked.
#[derive(Debug)]
pub struct Collected {
    pub item: Item,
    /// The door is being unlocked (`RELEASING`): the item is `COLLECTED` once
    /// it has closed again. False at a locker without an agent: collected.
    pub door_opening: bool,
}

impl Exchange {
    /// Queues a new code for the receiver when `contact` is the receiver of
    /// the item stored in the locker; otherwise does nothing, and says
    /// nothing different.
    ///
    /// Nothing is issued (and nothing said) while the item cools down after
    /// too many wrong codes, nor beyond `OTP_RATE_PER_LOCKER` codes for a
    /// locker in a window: each code costs a message.
    pub async fn request_code(
        &self,
        locker_id: i64,
        contact: &Contact,
        trace_id: &str,
        gate: &Gate<'_>,
    ) -> Result<()> {
        let pool = self.db.pool();
        let now = self.now();
        if self.db.backend().chains_writes() {
            return self
                .request_code_at_once(locker_id, contact, trace_id, gate, now)
                .await;
        }
        if let Some(refused) = gate.count(pool).await? {
            return Err(Error::Limited(refused));
        }
        // A locker holds one stored or expired item: its cool-down is the
        // locker's, read with it.
        let Some((item_id, locked_until)) =
            items::waiting_for(pool, locker_id, contact.as_str()).await?
        else {
            return Ok(());
        };
        if locked_until.is_some_and(|until| until > now) {
            tracing::info!(item_id, "cooling down; no code issued");
            return Ok(());
        }
        let window = self.rules.limits.window.as_millis() as Millis;
        let key = locker_budget(locker_id);
        let issued = rate_limits::hit(pool, &key, rate_limits::window_start(now, window)).await?;
        if issued > self.rules.limits.per_locker {
            tracing::warn!(item_id, "code budget of the locker spent; no code issued");
            return Ok(());
        }
        let job = Job::Otp(OtpJob {
            item_id,
            contact: contact.as_str().to_owned(),
        });
        let written = outbox::enqueue(pool, &job, trace_id, now).await?;
        self.relay.committed(vec![written]);
        Ok(())
    }

    /// Collects the item in `locker_id` with `code`, once the request has
    /// passed `gate` (counted first, with the try where writes chain).
    pub async fn collect(
        &self,
        locker_id: i64,
        code: String,
        trace_id: &str,
        gate: &Gate<'_>,
    ) -> Result<Collected> {
        let rules = &self.rules;
        let pool = self.db.pool();
        let now = self.now();
        let attempt = if self.db.backend().chains_writes() {
            codes::take_attempt_gated(pool, locker_id, rules.otp_max_attempts, now, gate).await?
        } else {
            match gate.count(pool).await? {
                Some(refused) => Err(refused),
                None => {
                    Ok(codes::take_attempt(pool, locker_id, rules.otp_max_attempts, now).await?)
                }
            }
        };
        let Some(attempt) = attempt.map_err(Error::Limited)? else {
            // No usable code (none, spent, expired, the item cooling down):
            // the same work and the same answer as a wrong one, so nobody
            // learns whether a code was issued, nor to whom.
            self.hasher.verify(code.into(), None).await?;
            return Err(Error::InvalidCode);
        };
        let codes::Attempt {
            item_id,
            hash,
            agent_id,
        } = attempt;
        let matches = match self.hasher.verify(code.into(), Some(hash.clone())).await {
            // Nothing was checked: the try does not count against the code.
            Err(error) if crate::hashing::is_unavailable(&error) => {
                codes::give_back_attempt(pool, item_id, &hash).await?;
                return Err(error.into());
            }
            verified => verified?,
        };
        if !matches {
            let until = now + rules.otp_cooldown.as_millis() as Millis;
            if codes::record_wrong(pool, item_id, rules.otp_failure_cap, until).await? {
                tracing::warn!(item_id, "too many wrong codes; item cooling down");
            }
            return Err(Error::InvalidCode);
        }

        // The code is right: spending it is one transaction, tried once
        // more if its connection is lost before it commits.
        let door_opening = agent_id.is_some();
        once_more(|| {
            self.release(
                locker_id,
                item_id,
                Spent::Code(&hash),
                door_opening,
                trace_id,
            )
        })
        .await
    }
}

impl Exchange {
    /// [`Exchange::request_code`] where writes chain: the item looked for,
    /// the locker's code budget counted (when the item is not cooling
    /// down) and the code job queued (when the budget allows) in one
    /// statement, which commits on its own.
    async fn request_code_at_once(
        &self,
        locker_id: i64,
        contact: &Contact,
        trace_id: &str,
        gate: &Gate<'_>,
        now: Millis,
    ) -> Result<()> {
        let window = self.rules.limits.window.as_millis() as Millis;
        let job = |item_id| {
            Job::Otp(OtpJob {
                item_id,
                contact: contact.as_str().to_owned(),
            })
        };
        let job = outbox::Beside::new(job, trace_id, now);
        let query = items::bind_waiting_for(
            sqlx::query(AssertSqlSafe(format!(
                "WITH {gate}, waiting AS ({waiting}), \
                 hit AS (INSERT INTO rate_limits (key, window_start, hits) \
                   SELECT $6, $7, 1 FROM waiting \
                   WHERE (otp_locked_until IS NULL OR otp_locked_until <= $5) \
                     AND NOT EXISTS (SELECT 1 FROM refused WHERE n IS NOT NULL) \
                   {added} RETURNING hits), \
                 {queued} \
                 SELECT (SELECT n FROM refused) AS refused, waiting.id, \
                   waiting.otp_locked_until, hit.hits, \
                   queued.id AS job_id, queued.payload AS job_payload \
                 FROM (SELECT 1) AS one LEFT JOIN waiting ON TRUE \
                   LEFT JOIN hit ON TRUE LEFT JOIN queued ON TRUE",
                gate = Gate::ctes(gate.0.len(), 14),
                waiting = items::WAITING_FOR,
                added = rate_limits::ADDED,
                queued = outbox::Beside::queued(
                    "waiting CROSS JOIN hit WHERE hit.hits <= $8",
                    "waiting.id",
                    9
                ),
            ))),
            locker_id,
            contact.as_str(),
        )
        .bind(now)
        .bind(locker_budget(locker_id))
        .bind(rate_limits::window_start(now, window))
        .bind(self.rules.limits.per_locker);
        let row = gate
            .bind(job.bind(query))
            .fetch_one(self.db.pool())
            .await
            .map_err(Error::unknown_if_lost)?;
        if let Some(refused) = Gate::refused_in(&row)? {
            return Err(Error::Limited(refused));
        }
        let Some(item_id) = row.try_get::<Option<i64>, _>("id")? else {
            return Ok(());
        };
        if row.try_get::<Option<i64>, _>("hits")?.is_none() {
            tracing::info!(item_id, "cooling down; no code issued");
        } else if row.try_get::<Option<i64>, _>("job_id")?.is_none() {
            tracing::warn!(item_id, "code budget of the locker spent; no code issued");
        } else {
            self.relay.committed(vec![job.written(&row)?]);
        }
        Ok(())
    }
}

/// The counter of the codes issued at a locker.
fn locker_budget(locker_id: i64) -> String {
    format!("otp:issued:locker:{locker_id}")
}
