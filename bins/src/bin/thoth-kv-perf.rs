//! `thoth-kv-perf`: the replicated key-value store's writes and reads per second and their
//! latency under each replication strategy. Run with `--help` for the options; the logic
//! lives in `thoth_bins::kv_perf`.

fn main() {
    thoth_bins::log::init();
    std::process::exit(thoth_bins::kv_perf::main(std::env::args().skip(1).collect()));
}
