use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::clock::{Millis, rfc3339};
use crate::domain::{Email, Role, User};
use crate::store::decode_error;

pub(crate) fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        role: Role::parse(&role).ok_or_else(|| decode_error("role", &role))?,
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

pub struct NewUser<'a> {
    pub name: &'a str,
    pub email: &'a Email,
    pub password_hash: &'a str,
    pub role: Role,
}

/// Inserts an account; a taken email is a unique violation on `users_email_key`.
pub async fn insert<'e>(
    executor: impl Executor<'e, Database = Any>,
    user: NewUser<'_>,
    now: Millis,
) -> Result<User, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO users (name, email, password_hash, role, created_at) \
         VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, name, email, role, created_at",
    )
    .bind(user.name.to_owned())
    .bind(user.email.as_ref().to_owned())
    .bind(user.password_hash.to_owned())
    .bind(user.role.as_str())
    .bind(now)
    .fetch_one(executor)
    .await?;
    from_row(&row)
}

/// The account and its password hash, for logging in.
pub async fn find_with_hash<'e>(
    executor: impl Executor<'e, Database = Any>,
    email: &Email,
) -> Result<Option<(User, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, name, email, role, created_at, password_hash FROM users WHERE email = $1",
    )
    .bind(email.as_ref().to_owned())
    .fetch_optional(executor)
    .await?;
    row.map(|row| Ok((from_row(&row)?, row.try_get("password_hash")?)))
        .transpose()
}

pub async fn list<'e>(
    executor: impl Executor<'e, Database = Any>,
    limit: i64,
    offset: i64,
) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query(
        "SELECT id, name, email, role, created_at FROM users ORDER BY id LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(executor)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Makes an existing account an admin; false when there is no such account.
pub async fn promote<'e>(
    executor: impl Executor<'e, Database = Any>,
    email: &Email,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET role = 'admin' WHERE email = $1")
        .bind(email.as_ref().to_owned())
        .execute(executor)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Creates an admin, or promotes the account if one appeared meanwhile.
pub async fn insert_admin<'e>(
    executor: impl Executor<'e, Database = Any>,
    name: &str,
    email: &Email,
    password_hash: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (name, email, password_hash, role, created_at) \
         VALUES ($1, $2, $3, 'admin', $4) \
         ON CONFLICT (email) DO UPDATE SET role = 'admin'",
    )
    .bind(name.to_owned())
    .bind(email.as_ref().to_owned())
    .bind(password_hash.to_owned())
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}
