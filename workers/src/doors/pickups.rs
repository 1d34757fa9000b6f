//! What agents send from the locker: a code entered there, for the server
//! to check (`pickups`), and a pickup the agent let through while offline
//! (`collections`). Each is answered on the agent's `replies` topic; a copy
//! delivered again gets the answer recorded for its id and changes nothing.

use locker_core::exchange::{Entered, OfflineOutcome};
use locker_core::store::doors;
use locker_core::store::pickups::{self, RequestKind};
use locker_protocol::{
    CLOCK_ALLOWANCE_MS, OfflineCollection, PickupEntry, Reply, ReplyReason, agent_key,
};

use super::Applier;

/// An entry older than this (by the agent's clock) is refused: whoever
/// typed it has likely gone, and the door must not open behind them.
pub const ENTRY_MAX_AGE_MS: i64 = 60_000;

/// Checks an entered code; on the right one the door's unlock is queued.
pub async fn entry(
    applier: &Applier,
    agent_id: &str,
    payload: &[u8],
) -> Result<Reply, anyhow::Error> {
    let Ok(entry) = serde_json::from_slice::<PickupEntry>(payload) else {
        return Ok(refusal(id_of(payload), ReplyReason::Malformed));
    };
    let exchange = &applier.exchange;
    let pool = exchange.db().pool();
    if let Some(reason) = pickups::reply_of(pool, agent_id, &entry.id).await? {
        return Ok(reply(
            entry.id,
            reason.as_deref().and_then(ReplyReason::parse),
        ));
    }
    let key = agent_key(applier.agent_secret(), agent_id);
    if !entry.verify(key.as_bytes()) {
        return Ok(refusal(entry.id, ReplyReason::BadSignature));
    }
    if doors::agent_of(pool, entry.locker_id)
        .await?
        .flatten()
        .as_deref()
        != Some(agent_id)
    {
        return Ok(refusal(entry.id, ReplyReason::UnknownLocker));
    }
    let now = exchange.now();
    let refused = if entry.at > now + CLOCK_ALLOWANCE_MS {
        Some(ReplyReason::ClockSkew)
    } else if entry.at < now - ENTRY_MAX_AGE_MS {
        Some(ReplyReason::Expired)
    } else {
        let trace_id = format!("pickup-{}", entry.id);
        match exchange
            .enter_pass(entry.locker_id, entry.method, &entry.code, &trace_id)
            .await?
        {
            Entered::Released(collected) => {
                tracing::info!(
                    item_id = collected.item.id,
                    method = entry.method.as_str(),
                    "pickup entry accepted"
                );
                None
            }
            Entered::WrongCode => Some(ReplyReason::WrongCode),
            Entered::CoolingDown => Some(ReplyReason::CoolingDown),
        }
    };
    let reason = refused.map(ReplyReason::as_str);
    let kind = RequestKind::Entry;
    pickups::record(
        pool,
        agent_id,
        &entry.id,
        kind,
        entry.locker_id,
        reason,
        now,
    )
    .await?;
    Ok(reply(entry.id, refused))
}

/// Applies an offline pickup, once; answered `ok` once recorded, so the
/// agent may forget it.
pub async fn collection(
    applier: &Applier,
    agent_id: &str,
    payload: &[u8],
) -> Result<Reply, anyhow::Error> {
    let Ok(report) = serde_json::from_slice::<OfflineCollection>(payload) else {
        return Ok(refusal(id_of(payload), ReplyReason::Malformed));
    };
    let key = agent_key(applier.agent_secret(), agent_id);
    if !report.verify(key.as_bytes()) {
        return Ok(refusal(report.id, ReplyReason::BadSignature));
    }
    let exchange = &applier.exchange;
    let owner = doors::agent_of(exchange.db().pool(), report.locker_id).await?;
    if owner.flatten().as_deref() != Some(agent_id) {
        return Ok(refusal(report.id, ReplyReason::UnknownLocker));
    }
    let trace_id = format!("offline-{}", report.id);
    match exchange
        .collected_offline(agent_id, &report, &trace_id)
        .await?
    {
        OfflineOutcome::Collected(item) => {
            tracing::info!(item_id = item.id, "offline pickup applied: collected");
        }
        OfflineOutcome::Refused => {}
        OfflineOutcome::Duplicate => {
            tracing::info!(report_id = %report.id, "offline pickup seen before; not applied again");
        }
    }
    Ok(reply(report.id, None))
}

fn reply(id: String, refused: Option<ReplyReason>) -> Reply {
    Reply {
        id,
        ok: refused.is_none(),
        reason: refused,
    }
}

fn refusal(id: String, reason: ReplyReason) -> Reply {
    reply(id, Some(reason))
}

fn id_of(payload: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_default()
}
