//! What the binaries' command lines (clap, derived) share: help and `--version` as answers
//! rather than exits, and an unknown option named as such. Tested through each binary's
//! parser (`member::args`, `detect::args`, `kv::cli`).

use clap::error::{ContextKind, ErrorKind};

/// Why a command line does not make a run.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// `--help`: this text, to print on standard output (exit 0).
    Help(String),
    /// `--version`: this line (exit 0).
    Version(String),
    /// What is wrong, to print on standard error (exit 2).
    Wrong(String),
}

impl Stop {
    /// What it says, whichever it is (tests compare texts).
    pub fn text(self) -> String {
        match self {
            Stop::Help(t) | Stop::Version(t) | Stop::Wrong(t) => t,
        }
    }
}

/// Parses `args` (the program name excluded) as `program`'s command line `P`.
pub fn parse<P: clap::Parser>(program: &str, args: &[String]) -> Result<P, Stop> {
    P::try_parse_from(std::iter::once(program.to_string()).chain(args.iter().cloned())).map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Stop::Help(e.to_string()),
        ErrorKind::DisplayVersion => Stop::Version(e.to_string().trim_end().to_string()),
        ErrorKind::UnknownArgument => {
            let arg = e.get(ContextKind::InvalidArg).map(|a| a.to_string()).unwrap_or_default();
            Stop::Wrong(format!("unknown option `{arg}` (see {program} --help)"))
        }
        _ => Stop::Wrong(e.render().to_string().trim_start_matches("error: ").trim_end().to_string()),
    })
}

/// Prints what `stop` says where it belongs; the exit status.
pub fn stop(program: &str, stop: Stop) -> i32 {
    match stop {
        Stop::Help(text) => {
            print!("{text}");
            0
        }
        Stop::Version(line) => {
            println!("{line}");
            0
        }
        Stop::Wrong(why) => {
            eprintln!("{program}: {why}");
            2
        }
    }
}

/// A value in seconds: more than 0, at most a day.
pub fn secs(v: &str) -> Result<std::time::Duration, String> {
    let s: f64 = v.parse().map_err(|_| format!("`{v}` is not a number of seconds"))?;
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0) {
        return Err("give seconds, more than 0 and at most a day".into());
    }
    Ok(std::time::Duration::from_secs_f64(s))
}

/// Tests: a command line written as one string, split at white space.
#[cfg(test)]
pub fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// Tests: `parse` of a command line written as one string.
#[cfg(test)]
pub fn parse_line<P: clap::Parser>(program: &str, line: &str) -> Result<P, Stop> {
    parse(program, &words(line))
}
