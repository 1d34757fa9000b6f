//! The API over HTTP, on SQLite by default and on PostgreSQL when
//! `TEST_DATABASE_URL` is set.

mod admin;
mod agents;
mod audit;
mod auth;
mod closing_notices;
mod console;
mod console_browser;
mod deadlines;
mod doc_agent;
mod docs_pages;
mod door_events;
mod doors;
mod exchange;
mod hashing;
mod helpers;
mod hostile;
mod lockers;
mod outage;
mod peers;
mod pickup;
mod pipeline;
mod protocol;
mod scale_out;
mod sizes;
mod surface;
mod tokens;
