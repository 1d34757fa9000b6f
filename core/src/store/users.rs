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

/// The id and role of the account with this email.
pub async fn role_of<'e>(
    executor: impl Executor<'e, Database = Any>,
    email: &Email,
) -> Result<Option<(i64, Role)>, sqlx::Error> {
    let row = sqlx::query("SELECT id, role FROM users WHERE email = $1")
        .bind(email.as_ref().to_owned())
        .fetch_optional(executor)
        .await?;
    row.map(|r| {
        let role: String = r.try_get("role")?;
        Ok((
            r.try_get("id")?,
            Role::parse(&role).ok_or_else(|| decode_error("role", &role))?,
        ))
    })
    .transpose()
}

/// Makes a user account an admin with a new password; false when it is no
/// longer a user account.
pub async fn make_admin<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: i64,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE users SET role = $3, password_hash = $2 WHERE id = $1 AND role = $4")
            .bind(id)
            .bind(password_hash.to_owned())
            .bind(Role::Admin.as_str())
            .bind(Role::User.as_str())
            .execute(executor)
            .await?;
    Ok(done.rows_affected() > 0)
}

/// Creates an admin; false when the email was taken meanwhile.
pub async fn insert_admin<'e>(
    executor: impl Executor<'e, Database = Any>,
    name: &str,
    email: &Email,
    password_hash: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO users (name, email, password_hash, role, created_at) \
         VALUES ($1, $2, $3, $5, $4) ON CONFLICT (email) DO NOTHING",
    )
    .bind(name.to_owned())
    .bind(email.as_ref().to_owned())
    .bind(password_hash.to_owned())
    .bind(now)
    .bind(Role::Admin.as_str())
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}
