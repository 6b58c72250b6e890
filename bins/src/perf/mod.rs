//! `thoth-perf`: a group of member processes on loopback multicast, all (or some) sending,
//! measured through a Thoth stack and over raw UDP multicast in the same invocation.
//!
//! - `args`: the command line and `--help`
//! - `parent`: orchestration of the runs; `procs`: the member processes it owns
//! - `member`: a member process; `net`: the seam to the measured path, `stack` (Thoth over
//!   the UDP driver) or `raw` (plain sockets, also the multicast self-test)
//! - `proto`: the payload header and the control lines; `tally`: a receiver's accounting
//! - `report`: figures, medians, table and JSON; `plot`: the SVG chart of `--plot`;
//!   `jgroups`: the JGroups 2.12 run of `--jgroups`; `clock`: the shared host clock and `/proc`

pub mod args;
pub mod clock;
pub mod driven;
pub mod groups;
pub mod jgroups;
pub mod member;
pub mod net;
pub mod parent;
pub mod plot;
pub mod procs;
pub mod proto;
pub mod raw;
pub mod report;
pub mod stack;
pub mod tally;

/// Runs `thoth-perf` with these arguments (program name excluded); returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    match args::parse(&args) {
        Ok(args::Cmd::Run(o)) => parent::main(o),
        Ok(args::Cmd::Member(m)) => member::main(m),
        Err(stop) => crate::cli::stop("thoth-perf", stop),
    }
}
