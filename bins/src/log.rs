//! The binaries' log: `tracing`'s events on stderr, filtered by `RUST_LOG` (nothing but
//! errors without it). `RUST_LOG=info` shows each view change and flush step of every
//! member the process runs; `RUST_LOG=thoth_stack=trace` every event handed to a layer (in
//! debug builds, or release builds with the `trace` feature: `cargo build --release
//! --features trace -p thoth-bins`).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Starts the subscriber (once per process; a second call changes nothing). Colours only
/// on a terminal: a log redirected to a file stays plain text.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
