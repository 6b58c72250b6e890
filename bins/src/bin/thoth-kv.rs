//! `thoth-kv`: the replicated key-value store demo, replicas and clients. Run with `--help`
//! for the commands; the logic lives in `thoth_bins::kv`.

fn main() {
    thoth_bins::log::init();
    std::process::exit(thoth_bins::kv::cli::main(std::env::args().skip(1).collect()));
}
