//! Where PostgreSQL and SQLite differ, in one place. Every query is written
//! once in the SQL both share (through sqlx's `Any` driver); what cannot be
//! shared is asked of the [`Backend`] here, by what it is for, never by name.

use sqlx::migrate::Migrator;

use crate::config::Backend;

/// Now on PostgreSQL's clock, in milliseconds, as SQL: times compared by
/// several processes (leases, workers' last words) are read on one clock.
macro_rules! postgres_now_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    };
}
pub(crate) use postgres_now_ms;

/// A `FROM` item for PostgreSQL that lets its statement's commit return
/// before the commit is on disk: `synchronous_commit` off for that
/// transaction alone. The commit is seen by everyone at once as any other;
/// a crash of the database may lose it, unless a later commit that waits
/// for the disk (any, from any connection) came first: WAL is written in
/// order, so waiting for one commit waits for all before it. Only for a
/// job's own writes ahead of the one that marks it done (see
/// `store::job_runs`).
macro_rules! lazy_commit {
    () => {
        "(SELECT set_config('synchronous_commit', 'off', true)) AS lazy_commit"
    };
}
pub(crate) use lazy_commit;

/// A statement chosen by how `$backend` commits: where it commits lazily,
/// `$head`, `$join` (`" FROM "` or `", "`), [`lazy_commit`], `$tail`; else
/// `$head` and `$tail` alone. Head and tail are what `concat!` takes.
macro_rules! lazily {
    ($backend:expr, [$($head:tt)*], $join:literal, [$($tail:tt)*]) => {
        if $backend.commits_lazily() {
            concat!($($head)*, $join, $crate::db::lazy_commit!(), $($tail)*)
        } else {
            concat!($($head)*, $($tail)*)
        }
    };
}
pub(crate) use lazily;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

impl Backend {
    /// Each backend's own migrations: the same tables and columns in each
    /// one's types (the `migrations` test holds them to that).
    pub fn migrator(self) -> &'static Migrator {
        match self {
            Self::Postgres => &POSTGRES_MIGRATIONS,
            Self::Sqlite => &SQLITE_MIGRATIONS,
        }
    }

    pub(crate) fn pool_size(self, configured: u32) -> u32 {
        match self {
            Self::Postgres => configured,
            // One writer; a few readers beside it are all SQLite can use.
            Self::Sqlite => 4,
        }
    }

    /// Run once on a new pool: SQLite's WAL lets readers run beside the
    /// writer (a property of the file, so once is enough).
    pub(crate) fn prepare_statement(self) -> Option<&'static str> {
        match self {
            Self::Postgres => None,
            Self::Sqlite => Some("PRAGMA journal_mode = WAL"),
        }
    }

    /// How a write transaction starts. SQLite takes its write lock up front
    /// (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy timeout
    /// instead of failing when a read lock cannot be upgraded.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Self::Postgres => "BEGIN",
            Self::Sqlite => "BEGIN IMMEDIATE",
        }
    }

    /// Whether single rows can be held locked by a transaction
    /// (`FOR UPDATE`), so processes sharing the database can divide work
    /// row by row. SQLite locks the whole file and serves one process: work
    /// in flight is divided in that process's memory instead.
    pub fn locks_rows(self) -> bool {
        match self {
            Self::Postgres => true,
            Self::Sqlite => false,
        }
    }

    /// Whether several writes can run as one statement (`WITH … INSERT …,
    /// … UPDATE …`), all or none. The hottest transitions then cost one round
    /// trip to a database across the network instead of one per write;
    /// SQLite runs in this process, where round trips cost nothing.
    pub fn chains_writes(self) -> bool {
        match self {
            Self::Postgres => true,
            Self::Sqlite => false,
        }
    }

    /// Ends a `SELECT` that takes the rows it reads for this transaction,
    /// passing over rows another one holds: `FOR UPDATE SKIP LOCKED` where
    /// rows can be locked, nothing where they cannot.
    pub(crate) fn skip_locked(self) -> &'static str {
        if self.locks_rows() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    }

    /// Whether a statement can commit without waiting for the disk
    /// ([`lazy_commit`]). SQLite, in this process, has no such wait worth
    /// sparing.
    pub fn commits_lazily(self) -> bool {
        match self {
            Self::Postgres => true,
            Self::Sqlite => false,
        }
    }

    /// Now on the database's clock, in milliseconds: one clock for every
    /// process that compares times written by another.
    pub(crate) fn clock_ms(self) -> &'static str {
        match self {
            Self::Postgres => postgres_now_ms!(),
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        }
    }
}
