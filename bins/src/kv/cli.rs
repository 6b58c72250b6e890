//! `thoth-kv`'s command line: `serve` runs a replica (`serve`), the other commands are a
//! client's (`client`).

use super::Op;
use super::client::Client;
use super::serve::{self, Opts};
use super::wire::Kind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use thoth::Bytes;
use thoth_grpc::Strategy;

/// What `--help` prints before the commands.
const ABOUT: &str = "\
A replicated key-value store on loopback. `serve` runs one replica: it joins the store's
group and the trader's (forming them if it is the first), restores its last checkpoint from
DIR if there is one, offers the store at the trader, serves clients, and checkpoints to DIR.
The other commands are a client's: it finds the replicas through the trader and runs one
operation at one of them; `where` prints the replicas the trader knows.";

/// The command line as clap parses it.
#[derive(clap::Parser, Debug)]
#[command(name = "thoth-kv", version, about = ABOUT, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    cmd: Word,
    /// The store's name at the trader
    #[arg(long, global = true, value_name = "NAME", default_value = "kv")]
    name: String,
    /// Client: how long one replica may take to answer, in milliseconds
    #[arg(long, global = true, value_name = "MS", default_value_t = 2000)]
    timeout_ms: u64,
    /// The multicast group the replicas meet on
    #[arg(long, global = true, value_name = "ADDR", default_value = "239.84.72.5:47480")]
    group_addr: SocketAddr,
    /// The multicast address clients find the trader at
    #[arg(long, global = true, value_name = "ADDR", default_value = "239.84.72.5:47481")]
    rendezvous: SocketAddr,
}

#[derive(clap::Subcommand, Debug)]
enum Word {
    /// Run one replica (`--key FILE` or `--insecure`)
    Serve {
        /// Where the replica keeps its checkpoints (made if missing)
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The group key (`thoth-kv keygen` prints one; every replica needs the same): the
        /// replicas' datagrams are authenticated and encrypted under it (a client's are not:
        /// it is no member)
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// No key, no protection (said loudly on stderr)
        #[arg(long)]
        insecure: bool,
        /// How the store is replicated: active, cached, primary-backup or client-server; every
        /// replica of a store must use the same
        #[arg(long, value_name = "STRATEGY", default_value = "active", value_parser = strategy)]
        strategy: Strategy,
    },
    /// Print a new group key (64 hex digits); keep it private
    Keygen,
    /// Write VALUE under KEY
    Put { key: String, value: String },
    /// Print the value under KEY (nothing if there is none)
    Get { key: String },
    /// Delete KEY
    Delete { key: String },
    /// Print the replicas the trader offers
    Where,
}

const STRATEGIES: [(&str, Strategy); 4] = [
    ("active", Strategy::Active),
    ("cached", Strategy::Cached),
    ("primary-backup", Strategy::PrimaryBackup),
    ("client-server", Strategy::ClientServer),
];

fn strategy(v: &str) -> Result<Strategy, String> {
    let names: Vec<&str> = STRATEGIES.iter().map(|(n, _)| *n).collect();
    STRATEGIES.iter().find(|(n, _)| *n == v).map(|(_, s)| *s).ok_or(format!("one of {}", names.join(", ")))
}

pub fn main(args: Vec<String>) -> i32 {
    let cli = match crate::cli::parse::<Cli>("thoth-kv", &args) {
        Ok(cli) => cli,
        Err(stop) => return crate::cli::stop("thoth-kv", stop),
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("thoth-kv: {e}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let Cli { cmd, name, timeout_ms, group_addr, rendezvous } = cli;
    let interface = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let (kind, op) = match cmd {
        Word::Keygen => {
            println!("{}", thoth::GroupSecret::generate().to_hex());
            return Ok(());
        }
        Word::Serve { dir, key, insecure, strategy } => {
            let security = crate::key::choice(key.as_deref(), [None, None], insecure, "thoth-kv keygen")?.security()?;
            if !security.is_secure() {
                crate::key::warn_insecure("thoth-kv");
            }
            return serve::run(&Opts { dir, name, strategy, group_addr, rendezvous, interface, security });
        }
        Word::Put { key, value } => (Kind::Write, Op::Put(b(&key), b(&value))),
        Word::Delete { key } => (Kind::Write, Op::Delete(b(&key))),
        Word::Get { key } => (Kind::Read, Op::Get(b(&key))),
        Word::Where => {
            let mut c = Client::new(rendezvous, interface, Duration::from_millis(timeout_ms))?;
            for e in c.bind(&name)? {
                println!("{name} group {:#x} member {:#x} contact {}", e.group, e.owner.0, e.contact);
            }
            return Ok(());
        }
    };
    let mut c = Client::new(rendezvous, interface, Duration::from_millis(timeout_ms))?;
    let r = c.call(&name, kind, op.encode())?;
    match op {
        Op::Get(_) => println!("{}", String::from_utf8_lossy(&r)),
        // The store answers whether the key was there.
        _ => println!("ok{}", if r[..] == [1] { " (it was there)" } else { "" }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Stop;

    fn parse(line: &str) -> Result<Cli, Stop> {
        crate::cli::parse_line("thoth-kv", line)
    }

    #[test]
    fn commands_options_anywhere_and_help() {
        let c = parse("serve --dir /d --strategy client-server --name s --key /k").unwrap();
        assert!(matches!(c.cmd, Word::Serve { strategy: Strategy::ClientServer, insecure: false, .. }));
        assert_eq!(c.name, "s");
        let c = parse("--name s put k v --timeout-ms 5").unwrap();
        assert!(matches!(&c.cmd, Word::Put { key, value } if key == "k" && value == "v"));
        assert_eq!((c.name.as_str(), c.timeout_ms), ("s", 5));
        assert!(
            matches!(parse("serve --strategy nonesuch --dir /d"), Err(Stop::Wrong(w)) if w.contains("primary-backup"))
        );
        assert!(matches!(parse("serve"), Err(Stop::Wrong(w)) if w.contains("--dir")), "serve needs --dir");
        assert!(matches!(parse("put k"), Err(Stop::Wrong(_))));
        assert!(matches!(parse("get k --bogus 1"), Err(Stop::Wrong(w)) if w.contains("unknown option `--bogus`")));
        let help = <Cli as clap::CommandFactory>::command().render_long_help().to_string();
        for w in [
            "serve",
            "keygen",
            "put",
            "get",
            "delete",
            "where",
            "--name",
            "--timeout-ms",
            "--group-addr",
            "--rendezvous",
        ] {
            assert!(help.contains(w), "{w} is not in --help:\n{help}");
        }
        let serve =
            <Cli as clap::CommandFactory>::command().find_subcommand_mut("serve").unwrap().render_help().to_string();
        for o in ["--dir", "--key", "--insecure", "--strategy"] {
            assert!(serve.contains(o), "{o} is not in serve --help:\n{serve}");
        }
    }
}
