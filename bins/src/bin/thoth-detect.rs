//! `thoth-detect`: crash detection time and false suspicions of Thoth's failure detectors
//! over real sockets. Run with `--help` for the options; the logic lives in
//! `thoth_bins::detect`.

fn main() {
    thoth_bins::log::init();
    std::process::exit(thoth_bins::detect::main(std::env::args().skip(1).collect()));
}
