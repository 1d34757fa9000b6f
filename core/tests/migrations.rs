//! The two migration folders describe one schema: the same tables, the same
//! columns with the same nullability, and the same named indexes, each in its
//! own database's types. A column added to one folder and not the other fails
//! here, not in production.

use std::collections::BTreeSet;

use locker_core::Db;
use locker_core::config::DatabaseConfig;
use sqlx::Row;

/// `(table, column, nullable)` and `(table, index)`.
#[derive(Debug, PartialEq, Eq)]
struct Schema {
    columns: BTreeSet<(String, String, bool)>,
    indexes: BTreeSet<(String, String)>,
}

async fn sqlite_schema() -> Schema {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/schema.db?mode=rwc", dir.path().display());
    let db = Db::connect(&DatabaseConfig::parse(&url).unwrap())
        .await
        .unwrap();
    let columns = sqlx::query(
        "SELECT m.name AS tbl, p.name AS col, p.\"notnull\" AS not_null, p.pk AS pk \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        // A primary key is never null, whatever SQLite's pragma says.
        let not_null = r.get::<i64, _>("not_null") != 0 || r.get::<i64, _>("pk") != 0;
        (r.get("tbl"), r.get("col"), !not_null)
    })
    .collect();
    // Indexes written out in the migrations (the implicit ones have no SQL).
    let indexes = sqlx::query(
        "SELECT tbl_name AS tbl, name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("tbl"), r.get("name")))
    .collect();
    db.close().await;
    Schema { columns, indexes }
}

async fn postgres_schema(server: &str) -> Schema {
    use sqlx::Connection;
    let name = format!(
        "lx_schema_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("TEST_DATABASE_URL reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = server
        .rsplit_once('/')
        .expect("TEST_DATABASE_URL names a database");
    let db = Db::connect(&DatabaseConfig::parse(&format!("{base}/{name}")).unwrap())
        .await
        .unwrap();
    let columns = sqlx::query(
        "SELECT table_name::text AS tbl, column_name::text AS col, is_nullable::text AS nullable \
         FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get("tbl"),
            r.get("col"),
            r.get::<String, _>("nullable") == "YES",
        )
    })
    .collect();
    // Indexes written out in the migrations: not those PostgreSQL makes for
    // a primary key or a UNIQUE constraint.
    let indexes = sqlx::query(
        "SELECT i.tablename::text AS tbl, i.indexname::text AS name FROM pg_indexes i \
         WHERE i.schemaname = 'public' AND i.tablename <> '_sqlx_migrations' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("tbl"), r.get("name")))
    .collect();
    db.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    Schema { columns, indexes }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set and --include-ignored"]
async fn both_backends_define_the_same_tables_columns_and_indexes() {
    let server = std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL must name a PostgreSQL server for this test");
    let sqlite = sqlite_schema().await;
    let postgres = postgres_schema(&server).await;
    assert!(sqlite.columns.len() > 40, "{sqlite:?}");
    assert_eq!(
        (
            only(&sqlite.columns, &postgres.columns),
            only(&postgres.columns, &sqlite.columns)
        ),
        (vec![], vec![]),
        "columns only on SQLite, only on PostgreSQL"
    );
    assert_eq!(
        (
            only(&sqlite.indexes, &postgres.indexes),
            only(&postgres.indexes, &sqlite.indexes)
        ),
        (vec![], vec![]),
        "indexes only on SQLite, only on PostgreSQL"
    );
}

/// What `a` has that `b` lacks.
fn only<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> Vec<T> {
    a.difference(b).cloned().collect()
}
