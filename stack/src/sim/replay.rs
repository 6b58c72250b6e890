//! Seeded property checks that say how to replay a failure.
//!
//! `check_seeds(test, seeds, prop)` runs `prop(seed)` for every seed of a range and stops at
//! the first that fails (returns `Err` or panics). It then panics with the seed, the failure
//! and a one-line command that replays exactly that seed, e.g.
//!
//! ```text
//! THOTH_SIM_SEED=1234 cargo test -p thoth-stack --test sim -- determinism --exact
//! ```
//!
//! The environment picks the seeds: `THOTH_SIM_SEED=S` runs only seed `S`;
//! `THOTH_SIM_SEEDS=N` runs `N` seeds from the range's start (more than CI runs, say).
//! The package and test target of the command come from the running test binary (cargo
//! sets `CARGO_PKG_NAME`; the binary is `<target>-<hash>`); `test` is the test's path as
//! the harness names it, so `--exact` selects it alone.
//!
//! Tested by the unit tests below (environment parsing, command shape, first failure
//! reported, panics caught) and by `tests/sim.rs`, which checks a property that must fail
//! and inspects the message.

use core::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs only this seed.
pub const SEED_VAR: &str = "THOTH_SIM_SEED";
/// Runs this many seeds.
pub const SEEDS_VAR: &str = "THOTH_SIM_SEEDS";

/// The seeds to run instead of `default`, as the environment asks.
///
/// Panics if a variable is set to something other than a number.
pub fn seeds(default: Range<u64>) -> Range<u64> {
    let var = |k| std::env::var(k).ok();
    seeds_from(default, var(SEED_VAR).as_deref(), var(SEEDS_VAR).as_deref()).unwrap_or_else(|e| panic!("{e}"))
}

fn seeds_from(default: Range<u64>, one: Option<&str>, count: Option<&str>) -> Result<Range<u64>, String> {
    let parse = |k: &str, v: &str| v.trim().parse::<u64>().map_err(|_| format!("{k}={v:?} is not a number"));
    if let Some(v) = one {
        let s = parse(SEED_VAR, v)?;
        return Ok(s..s.saturating_add(1));
    }
    if let Some(v) = count {
        let n = parse(SEEDS_VAR, v)?;
        return Ok(default.start..default.start.saturating_add(n));
    }
    Ok(default)
}

/// The command that replays `seed` of the test `test` in the running test binary.
pub fn replay_command(test: &str, seed: u64) -> String {
    let pkg = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "thoth-stack".to_string());
    let exe = std::env::current_exe().ok();
    let stem = exe.as_deref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned());
    format!("{SEED_VAR}={seed} cargo test -p {pkg} {} -- {test} --exact", target_flag(&pkg, stem.as_deref()))
}

/// `--lib` for the library's unit tests, `--test NAME` for an integration test binary.
fn target_flag(pkg: &str, exe_stem: Option<&str>) -> String {
    let Some(stem) = exe_stem else {
        return "--tests".to_string();
    };
    let name = match stem.rsplit_once('-') {
        Some((name, hash)) if !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name,
        _ => stem,
    };
    if name == pkg.replace('-', "_") { "--lib".to_string() } else { format!("--test {name}") }
}

/// The seed a `check_seeds` failure message names (for tests that plant a bug and check the
/// report).
pub fn failed_seed(msg: &str) -> Option<u64> {
    msg.split("failed for seed ").nth(1)?.split(' ').next()?.parse().ok()
}

/// Checks `prop` for every seed the environment selects from `seeds`; panics at the first
/// failure with the seed, the failure, and the command that replays it.
pub fn check_seeds(test: &str, seeds: Range<u64>, prop: impl FnMut(u64) -> Result<(), String>) {
    if let Err(msg) = first_failure(test, self::seeds(seeds), prop) {
        panic!("{msg}");
    }
}

fn first_failure(test: &str, seeds: Range<u64>, mut prop: impl FnMut(u64) -> Result<(), String>) -> Result<(), String> {
    let total = seeds.end.saturating_sub(seeds.start);
    for (passed, seed) in seeds.enumerate() {
        let failure = match catch_unwind(AssertUnwindSafe(|| prop(seed))) {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        return Err(format!(
            "sim property `{test}` failed for seed {seed} (after {passed} passing seeds of {total}): {failure}\nreplay: {}",
            replay_command(test, seed)
        ));
    }
    Ok(())
}

fn panic_message(p: &(dyn core::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_selects_seeds() {
        assert_eq!(seeds_from(0..200, None, None), Ok(0..200));
        assert_eq!(seeds_from(10..20, Some("1234"), Some("5")), Ok(1234..1235), "one seed wins");
        assert_eq!(seeds_from(10..20, None, Some(" 5000 ")), Ok(10..5010));
        assert!(seeds_from(0..1, Some("x"), None).unwrap_err().contains(SEED_VAR));
        assert!(seeds_from(0..1, None, Some("-3")).unwrap_err().contains(SEEDS_VAR));
    }

    #[test]
    fn target_follows_the_binary() {
        assert_eq!(target_flag("thoth-stack", Some("thoth_stack-0123abcd0123abcd")), "--lib");
        assert_eq!(target_flag("thoth-stack", Some("sim-0123abcd0123abcd")), "--test sim");
        assert_eq!(target_flag("thoth-layers", Some("sim_nak-00ff")), "--test sim_nak");
        assert_eq!(target_flag("thoth-stack", Some("sim")), "--test sim");
        assert_eq!(target_flag("thoth-stack", None), "--tests");
    }

    #[test]
    fn this_binary_replays_with_lib() {
        let cmd = replay_command("sim::replay::tests::x", 77);
        assert!(
            cmd.starts_with("THOTH_SIM_SEED=77 cargo test -p thoth-stack --lib -- sim::replay::tests::x --exact"),
            "{cmd}"
        );
    }

    #[test]
    fn reports_the_first_failing_seed_and_catches_panics() {
        let mut tried = Vec::new();
        let err = first_failure("t", 5..50, |s| {
            tried.push(s);
            if s % 7 == 0 { Err(format!("bad {s}")) } else { Ok(()) }
        })
        .unwrap_err();
        assert_eq!(tried, vec![5, 6, 7], "stops at the first failure");
        assert!(err.contains("seed 7 (after 2 passing seeds of 45): bad 7"), "{err}");
        assert!(err.contains("THOTH_SIM_SEED=7 cargo test"), "{err}");
        let err = first_failure("t", 0..3, |s| if s == 1 { panic!("boom {s}") } else { Ok(()) }).unwrap_err();
        assert!(err.contains("seed 1") && err.contains("panicked: boom 1"), "{err}");
        assert_eq!(first_failure("t", 0..100, |_| Ok(())), Ok(()));
    }
}
