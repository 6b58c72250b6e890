//! `thoth-member`: one member of a dynamic group, events as JSON lines, stdin lines cast.
//! Run with `--help` for the options; the logic lives in `thoth_bins::member`.

fn main() {
    thoth_bins::log::init();
    std::process::exit(thoth_bins::member::main(std::env::args().skip(1).collect()));
}
