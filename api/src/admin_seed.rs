//! The first administrator: from `ADMIN_EMAIL`/`ADMIN_PASSWORD` at start, or
//! from `locker-api create-admin`. Idempotent: an existing account is promoted
//! and keeps its password.

use anyhow::{Context, bail};
use locker_core::config::AdminSeed;
use locker_core::domain::Email;
use locker_core::store::{audit, users};
use secrecy::ExposeSecret;

use locker_core::Db;
use locker_core::hashing::Hasher;

pub async fn ensure_admin(
    db: &Db,
    hasher: &Hasher,
    seed: &AdminSeed,
    now: i64,
) -> anyhow::Result<()> {
    let email =
        Email::parse(&seed.email).map_err(|problem| anyhow::anyhow!("ADMIN_EMAIL: {problem}"))?;
    if users::promote(db.pool(), &email).await? {
        tracing::info!(%email, "admin account present");
        return Ok(());
    }
    let Some(password) = &seed.password else {
        bail!("ADMIN_PASSWORD: is required to create the admin account {email}");
    };
    if password.expose_secret().chars().count() < 8 {
        bail!("ADMIN_PASSWORD: must be at least 8 characters long");
    }
    let hash = hasher.hash(password.clone()).await?;
    let mut tx = db.begin().await?;
    users::insert_admin(&mut *tx, "Administrator", &email, &hash, now)
        .await
        .context("cannot create the admin account")?;
    audit::record(
        &mut *tx,
        audit::Entry {
            at: now,
            actor_id: None,
            action: "admin.created",
            subject: format!("email:{email}"),
            detail: String::new(),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%email, "admin account created");
    Ok(())
}
