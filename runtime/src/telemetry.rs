//! Logging setup: human-readable lines by default, JSON with `LOG_FORMAT=json`;
//! levels from `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(default_filter: &str) {
    init_with(
        default_filter,
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("LOG_FORMAT").ok().as_deref(),
    );
}

/// As `init`, with `RUST_LOG` and `LOG_FORMAT` as a command line gave them.
pub fn init_with(default_filter: &str, rust_log: Option<&str>, log_format: Option<&str>) {
    let filter = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    let json = log_format.is_some_and(|v| v.eq_ignore_ascii_case("json"));
    // Colour only for a person at a terminal, never into files or collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    // A second init (tests start several apps in one process) is harmless.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// For tests: log lines go through the test harness, shown only on failure.
pub fn init_for_tests(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// The last word of a process that cannot go on, through the same logger as
/// everything else (so as JSON under `LOG_FORMAT=json`); `init` first.
pub fn fatal(what: &str, error: &dyn std::fmt::Display) {
    tracing::error!(error = %error, "{what}");
}
