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

pub const USAGE: &str = "\
usage: thoth-kv serve --dir DIR (--key FILE | --insecure) [--strategy STRATEGY] [OPTIONS]
       thoth-kv put KEY VALUE | get KEY | delete KEY | where   [OPTIONS]
       thoth-kv keygen > FILE

A replicated key-value store on loopback. `serve` runs one replica: it joins the store's
group and the trader's (forming them if it is the first), restores its last checkpoint from
DIR if there is one, offers the store at the trader, serves clients, and checkpoints to DIR.
The other commands are a client's: it finds the replicas through the trader and runs one
operation at one of them; `where` prints the replicas the trader knows.

  --dir DIR          serve: where the replica keeps its checkpoints (made if missing)
  --key FILE         serve: the group key (`thoth-kv keygen` prints one; every replica
                     needs the same): the replicas' datagrams are authenticated and
                     encrypted under it (a client's are not: it is no member)
  --insecure         serve: no key, no protection (said loudly on stderr)
  --strategy S       serve: active (default), cached, primary-backup or client-server;
                     every replica of a store must use the same
  --name NAME        the store's name at the trader (default `kv`)
  --timeout-ms MS    client: how long one replica may take to answer (default 2000)
  --group-addr ADDR  the multicast group the replicas meet on (default 239.84.72.5:47480)
  --rendezvous ADDR  the multicast address clients find the trader at
                     (default 239.84.72.5:47481)";

const STRATEGIES: [(&str, Strategy); 4] = [
    ("active", Strategy::Active),
    ("cached", Strategy::Cached),
    ("primary-backup", Strategy::PrimaryBackup),
    ("client-server", Strategy::ClientServer),
];

pub fn main(args: Vec<String>) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(e) if e.is_empty() => 0,
        Err(e) => {
            eprintln!("thoth-kv: {e}");
            1
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let (mut words, mut dir, mut name, mut strategy, mut timeout) =
        (Vec::new(), None, "kv".to_string(), Strategy::Active, 2000);
    let (mut key, mut insecure) = (None, false);
    let mut group_addr: SocketAddr = "239.84.72.5:47480".parse().expect("an address");
    let mut rendezvous: SocketAddr = "239.84.72.5:47481".parse().expect("an address");
    let mut a = args.into_iter();
    while let Some(k) = a.next() {
        let mut val = || a.next().ok_or(format!("{k} needs a value"));
        let addr = |v: String| v.parse::<SocketAddr>().map_err(|e| format!("{v}: {e}"));
        match k.as_str() {
            "--dir" => dir = Some(PathBuf::from(val()?)),
            "--strategy" => {
                let v = val()?;
                strategy = STRATEGIES.iter().find(|(n, _)| *n == v).ok_or(format!("unknown strategy {v}"))?.1;
            }
            "--name" => name = val()?,
            "--key" => key = Some(PathBuf::from(val()?)),
            "--insecure" => insecure = true,
            "--timeout-ms" => timeout = val()?.parse::<u64>().map_err(|e| e.to_string())?,
            "--group-addr" => group_addr = addr(val()?)?,
            "--rendezvous" => rendezvous = addr(val()?)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Err(String::new());
            }
            o if o.starts_with("--") => return Err(format!("unknown option {o}\n\n{USAGE}")),
            _ => words.push(k),
        }
    }
    let interface = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if words == ["keygen"] {
        println!("{}", thoth::GroupSecret::generate().to_hex());
        return Ok(());
    }
    if words == ["serve"] {
        let dir = dir.ok_or(format!("serve needs --dir\n\n{USAGE}"))?;
        let security = crate::key::choice(key.as_deref(), [None, None], insecure, "thoth-kv keygen")?.security()?;
        if !security.is_secure() {
            crate::key::warn_insecure("thoth-kv");
        }
        return serve::run(&Opts { dir, name, strategy, group_addr, rendezvous, interface, security });
    }
    let mut c = Client::new(rendezvous, interface, Duration::from_millis(timeout))?;
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let (kind, op) = match words[..] {
        ["put", k, v] => (Kind::Write, Op::Put(b(k), b(v))),
        ["delete", k] => (Kind::Write, Op::Delete(b(k))),
        ["get", k] => (Kind::Read, Op::Get(b(k))),
        ["where"] => {
            for e in c.bind(&name)? {
                println!("{name} group {:#x} member {:#x} contact {}", e.group, e.owner.0, e.contact);
            }
            return Ok(());
        }
        _ => return Err(format!("what to do?\n\n{USAGE}")),
    };
    let r = c.call(&name, kind, op.encode())?;
    match op {
        Op::Get(_) => println!("{}", String::from_utf8_lossy(&r)),
        // The store answers whether the key was there.
        _ => println!("ok{}", if r[..] == [1] { " (it was there)" } else { "" }),
    }
    Ok(())
}
