//! `gms` parameters (spec `gms(key=value,...)`), with defaults chosen for a LAN or loopback
//! group of up to a few dozen members.

use thoth_stack::{Args, Duration};

/// The `gms` layer's timers and modes; `Default` gives the values in the `gms` module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long a new endpoint looks for its group before forming one alone.
    pub discover: Duration,
    /// Between two `Hello`s (and `Join`s) of a new endpoint.
    pub hello: Duration,
    /// Between two beacons of a coordinator (how partitions find each other after healing).
    pub beacon: Duration,
    /// How long the application has to answer `Block` (zero: not waited for).
    pub block: Duration,
    /// Between two pings verifying a suspicion, and how many go unanswered before the
    /// suspect counts as failed.
    pub verify: Duration,
    /// Pings left unanswered before a suspect counts as failed (see `verify`).
    pub verify_tries: u32,
    /// A participant that has not reported or flushed by then is excluded without more ado.
    pub flush: Duration,
    /// Between two sends of the coordinator's `Block` to a participant that has not reported,
    /// and of its `Cut` to one that has not flushed (a control message can be lost, or a
    /// forged one can take its sequence number); a participant answers a repeat with its
    /// report or `Flushed` again.
    pub resend: Duration,
    /// A member of a new view not heard from by then is excluded.
    pub ready: Duration,
    /// How long a side waits for the merge leader's view before going on alone, and how long
    /// the leader gathers sides before it flushes.
    pub merge: Duration,
    /// How long the merge leader gathers sides (see `merge`).
    pub merge_window: Duration,
    /// How long a leaving member waits for the view without it before leaving anyway.
    pub leave: Duration,
    /// Primary-partition mode: only a view holding a majority of the last primary view is
    /// primary. Off: every view is primary.
    pub primary: bool,
    /// Bytes of state per piece sent to a joiner (fragmented below if larger than a datagram).
    pub chunk: usize,
    /// Tests only (a planted bug the simulator checker must catch): a participant answers
    /// `Flushed` as soon as the cut arrives, without delivering up to it first.
    #[doc(hidden)]
    pub test_flushed_before_cut: bool,
    /// Tests only (a planted bug): the coordinator installs the next view as soon as it has
    /// sent the cut, without waiting for every `Flushed`, and members take an `Install` that
    /// names the flush they are in even before they have flushed.
    #[doc(hidden)]
    pub test_install_before_flushed: bool,
    /// Tests only (a planted bug): in primary-partition mode every view is primary anyway.
    #[doc(hidden)]
    pub test_always_primary: bool,
    /// Tests only (a planted bug: the flush as it was before it counted in the reliable
    /// layer): reports and the flushed check use this layer's own counts of what it passed up
    /// (a cast a layer below it dropped as unparseable is missing from them), a coordinator
    /// short of its own cut waits instead of stalling the attempt, and a participant never
    /// gives up on a flush that left it out.
    #[doc(hidden)]
    pub test_count_in_gms: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            discover: Duration::from_millis(300),
            hello: Duration::from_millis(50),
            beacon: Duration::from_millis(500),
            block: Duration::ZERO,
            verify: Duration::from_millis(50),
            verify_tries: 4,
            flush: Duration::from_secs(3),
            resend: Duration::from_millis(250),
            ready: Duration::from_secs(2),
            merge: Duration::from_secs(2),
            merge_window: Duration::from_millis(100),
            leave: Duration::from_secs(2),
            primary: false,
            chunk: 60 << 10,
            test_flushed_before_cut: false,
            test_install_before_flushed: false,
            test_always_primary: false,
            test_count_in_gms: false,
        }
    }
}

impl Config {
    /// Reads the spec's arguments (`discover_ms`, `hello_ms`, `beacon_ms`, `block_ms`,
    /// `verify_ms`, `verify_tries`, `flush_ms`, `resend_ms`, `ready_ms`, `merge_ms`,
    /// `merge_window_ms`, `leave_ms`, `primary` nonzero for on, `chunk` bytes), defaults for
    /// the rest. Errs on a malformed value, or a zero `hello_ms`, `beacon_ms`, `verify_ms`,
    /// `resend_ms` or `chunk`.
    pub fn from_args(a: &mut Args) -> Result<Config, String> {
        let d = Config::default();
        let ms = |a: &mut Args, k: &str, v: Duration| -> Result<Duration, String> {
            a.get(k, v.as_millis() as u64).map(Duration::from_millis)
        };
        let c = Config {
            discover: ms(a, "discover_ms", d.discover)?,
            hello: ms(a, "hello_ms", d.hello)?,
            beacon: ms(a, "beacon_ms", d.beacon)?,
            block: ms(a, "block_ms", d.block)?,
            verify: ms(a, "verify_ms", d.verify)?,
            verify_tries: a.get("verify_tries", d.verify_tries)?,
            flush: ms(a, "flush_ms", d.flush)?,
            resend: ms(a, "resend_ms", d.resend)?,
            ready: ms(a, "ready_ms", d.ready)?,
            merge: ms(a, "merge_ms", d.merge)?,
            merge_window: ms(a, "merge_window_ms", d.merge_window)?,
            leave: ms(a, "leave_ms", d.leave)?,
            primary: a.get::<u8>("primary", 0)? != 0,
            chunk: a.get("chunk", d.chunk)?,
            ..d
        };
        if c.hello.is_zero() || c.beacon.is_zero() || c.verify.is_zero() || c.resend.is_zero() || c.chunk == 0 {
            return Err("hello_ms, beacon_ms, verify_ms, resend_ms and chunk must be positive".into());
        }
        Ok(c)
    }
}
