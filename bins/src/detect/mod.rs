//! `thoth-detect`: crash detection by Thoth's failure detectors (`heartbeat`, `phi`, `swim`)
//! over real sockets, between member processes on multicast (loopback by default,
//! `--interface`), under CPU load.
//!
//! - `args`: the command line and `--help`
//! - `parent`: orchestration (member processes through `perf::procs`, the kill, the stop)
//! - `member`: a member process: the endpoint over the UDP driver, casting, its suspicions
//! - `load`: the CPU-burning threads; `report`: false suspicions, detection times, output
//!
//! Shared with `thoth-perf`: the process guard (`perf::procs`), the clock (`perf::clock`),
//! the control lines and dead-man switch (`perf::proto`, `perf::member::Control`), the random
//! group (`perf::parent::Groups`) and the multicast self-test (`perf::raw`).

pub mod args;
pub mod load;
pub mod member;
pub mod parent;
pub mod report;

/// Runs `thoth-detect` with these arguments (program name excluded); returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    match args::parse(&args) {
        Ok(args::Cmd::Run(o)) => parent::main(o),
        Ok(args::Cmd::Member(m)) => member::main(m),
        Err(stop) => crate::cli::stop("thoth-detect", stop),
    }
}
