//! `thoth-rpc-perf`: Group RPC round trips and calls per second against raw UDP request /
//! reply. Run with `--help` for the options; the logic lives in `thoth_bins::rpc_perf`.

fn main() {
    thoth_bins::log::init();
    std::process::exit(thoth_bins::rpc_perf::main(std::env::args().skip(1).collect()));
}
