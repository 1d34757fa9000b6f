//! The API over HTTP, on SQLite by default and on PostgreSQL when
//! `TEST_DATABASE_URL` is set.

mod admin;
mod auth;
mod helpers;
mod lockers;
mod surface;
mod tokens;
