//! The administrator an operator names: from `ADMIN_EMAIL`/`ADMIN_PASSWORD`
//! at start, or from `locker-api create-admin`.
//!
//! - No account with that email: one is created, with that password.
//! - An admin already: left as it is (its password may have been changed
//!   since), so a restart is harmless.
//! - A user account (signed up by anyone): it becomes admin only with a
//!   password the operator gives, which replaces the old one, and every
//!   session of the account is ended; without one, nothing changes and the
//!   start is refused. An account nobody controls never becomes admin with
//!   a password someone else chose.

use anyhow::{Context, bail};
use locker_core::Db;
use locker_core::config::AdminSeed;
use locker_core::domain::{Email, Role};
use locker_core::hashing::Hasher;
use locker_core::store::{audit, sessions, users};
use secrecy::{ExposeSecret, SecretString};

pub async fn ensure_admin(
    db: &Db,
    hasher: &Hasher,
    seed: &AdminSeed,
    now: i64,
) -> anyhow::Result<()> {
    let email =
        Email::parse(&seed.email).map_err(|problem| anyhow::anyhow!("ADMIN_EMAIL: {problem}"))?;
    // Twice at most: an account may appear between the look and the insert.
    for _ in 0..2 {
        match users::role_of(db.pool(), &email).await? {
            Some((_, Role::Admin)) => {
                tracing::info!(%email, "admin account present");
                return Ok(());
            }
            Some((id, Role::User)) => return take_over(db, hasher, seed, &email, id, now).await,
            None => {
                let hash = hasher.hash(password(seed, &email)?.clone()).await?;
                let mut tx = db.begin().await?;
                if !users::insert_admin(&mut *tx, "Administrator", &email, &hash, now)
                    .await
                    .context("cannot create the admin account")?
                {
                    continue;
                }
                audit::record(&mut *tx, entry(now, "admin.created", &email, String::new())).await?;
                tx.commit().await?;
                tracing::info!(%email, "admin account created");
                return Ok(());
            }
        }
    }
    bail!("ADMIN_EMAIL: the account {email} keeps changing; try again")
}

/// A user account becomes admin with the operator's password; its sessions end.
async fn take_over(
    db: &Db,
    hasher: &Hasher,
    seed: &AdminSeed,
    email: &Email,
    id: i64,
    now: i64,
) -> anyhow::Result<()> {
    if seed.password.is_none() {
        bail!(
            "ADMIN_EMAIL: {email} is an existing user account, and is not made admin with a \
             password you did not set. Give ADMIN_PASSWORD to take it over (its password is \
             replaced and its sessions ended), or name another email"
        );
    }
    let hash = hasher.hash(password(seed, email)?.clone()).await?;
    let mut tx = db.begin().await?;
    if !users::make_admin(&mut *tx, id, &hash).await? {
        bail!("ADMIN_EMAIL: the account {email} changed meanwhile; try again");
    }
    let ended = sessions::revoke_all_of(&mut *tx, id, now, "made admin by the operator").await?;
    let detail =
        format!("user account {id} made admin; password replaced; {ended} session(s) ended");
    audit::record(&mut *tx, entry(now, "admin.taken_over", email, detail)).await?;
    tx.commit().await?;
    tracing::warn!(
        %email,
        sessions_ended = ended,
        "the user account with this email is now admin, with the password you set; its sessions were ended"
    );
    Ok(())
}

/// The operator's password for a new admin, at least 8 characters.
fn password<'a>(seed: &'a AdminSeed, email: &Email) -> anyhow::Result<&'a SecretString> {
    let Some(password) = &seed.password else {
        bail!("ADMIN_PASSWORD: is required to create the admin account {email}");
    };
    if password.expose_secret().chars().count() < 8 {
        bail!("ADMIN_PASSWORD: must be at least 8 characters long");
    }
    Ok(password)
}

fn entry<'a>(at: i64, action: &'a str, email: &Email, detail: String) -> audit::Entry<'a> {
    audit::Entry {
        at,
        actor_id: None,
        action,
        subject: format!("email:{email}"),
        detail,
        reason: None,
    }
}
