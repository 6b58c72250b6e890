//! `thoth-perf`: multicast throughput and latency of a Thoth stack against raw UDP multicast.
//! Run with `--help` for the options; the logic lives in `thoth_bins::perf`.

fn main() {
    thoth_bins::log::init();
    std::process::exit(thoth_bins::perf::main(std::env::args().skip(1).collect()));
}
