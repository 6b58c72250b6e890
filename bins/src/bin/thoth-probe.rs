//! `thoth-probe`: asks a running group's members for their view and their layers' counters.
//! Run with `--help` for the options; the logic lives in `thoth_bins::probe`.

fn main() {
    thoth_bins::log::init();
    std::process::exit(thoth_bins::probe::main(std::env::args().skip(1).collect()));
}
