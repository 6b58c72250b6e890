//! A stack with a layer of your own. `Stamp` puts each cast's number (per sender) in a
//! header on the way down and, on the way up, checks that every sender's casts arrive
//! numbered one after another — a FIFO check on live traffic. It requires FIFO multicast
//! from the layers below it, so the stack refuses to build without them; registered under a
//! name, it composes with the stock layers in a spec (`stamp:reliable`) like any other, and
//! its counters show in the live metrics with theirs.
//!
//! ```sh
//! cargo run -p thoth-examples --example custom_layer     # prints the stamp layer's counts
//! ```

use std::time::{Duration, Instant};
use thoth::udp::Handle;
use thoth::{Args, Bytes, Cx, Dn, Dump, Event, Layer, Props, Registry, Up};

#[derive(Default)]
struct Stamp {
    /// This member's next cast number.
    next_out: u64,
    /// Each sender's next expected number, by rank.
    next_in: Vec<u64>,
    stamped: u64,
    checked: u64,
    out_of_order: u64,
    malformed: u64,
}

impl Layer for Stamp {
    fn name(&self) -> &'static str {
        "stamp"
    }
    fn requires(&self) -> Props {
        Props::FIFO_CAST
    }
    fn max_header(&self, _view: &thoth::View) -> usize {
        10 // a varint
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        self.next_in = vec![0; cx.view.len()];
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::Cast(mut m) => {
                m.push(&self.next_out);
                self.next_out += 1;
                self.stamped += 1;
                cx.dn(Dn::Cast(m))
            }
            other => cx.dn(other),
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, mut msg } => {
                // Network input: a header that does not decode is counted and dropped.
                let (Ok(n), Some(next)) = (msg.pop::<u64>(), self.next_in.get_mut(from.index())) else {
                    self.malformed += 1;
                    return;
                };
                if n != *next {
                    self.out_of_order += 1;
                }
                *next = n + 1;
                self.checked += 1;
                cx.up(Up::Cast { from, msg })
            }
            other => cx.up(other),
        }
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump {
            layer: "stamp",
            counters: vec![
                ("stamped", self.stamped),
                ("checked", self.checked),
                ("out_of_order", self.out_of_order),
                ("malformed", self.malformed),
            ],
            state: format!("next_out={} next_in={:?}", self.next_out, self.next_in),
            ..Dump::default()
        });
    }
}

/// The stock layers, and `stamp`.
fn registry() -> Registry {
    let mut r = thoth::registry();
    r.register("stamp", "numbers casts and checks they arrive in order", |_: &mut Args| Ok(Box::new(Stamp::default())));
    r
}

/// Two members of a group over `stamp:reliable` at `addr` (a fixed view: no membership).
fn pair(addr: std::net::SocketAddr, group: &str) -> Result<[Handle; 2], String> {
    use thoth::udp::{self, Sockets, UdpConfig};
    let cfg = UdpConfig { group: addr, interface: std::net::Ipv4Addr::LOCALHOST.into(), ..UdpConfig::default() };
    let socks = [Sockets::open(&cfg).map_err(|e| e.to_string())?, Sockets::open(&cfg).map_err(|e| e.to_string())?];
    let ids = vec![socks[0].id(), socks[1].id()];
    let peers: Vec<_> = socks.iter().map(|s| s.local_addr()).collect();
    let [a, b] = socks.map(|s| {
        let config = thoth::Config::new(thoth::GroupId::named(group), s.id(), ids.clone());
        let ep = thoth::Endpoint::from_spec(config, &registry(), "stamp:reliable").map_err(|e| e.to_string())?;
        udp::spawn(s, ep, &peers).map_err(|e| e.to_string())
    });
    Ok([a?, b?])
}

/// Both members cast `n` each and wait (at most 20 s) until both delivered all `2n`.
fn exchange(hs: &[Handle; 2], n: u64) -> Result<(), String> {
    for k in 0..n {
        for h in hs {
            h.cast(Bytes::from(format!("cast {k}"))).map_err(|e| format!("{e:?}"))?;
        }
    }
    let start = Instant::now();
    let mut got = [0u64; 2];
    while got.iter().any(|&g| g < 2 * n) {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("delivered only {got:?}"));
        }
        for (h, g) in hs.iter().zip(&mut got) {
            while let Some(ev) = h.try_recv() {
                *g += matches!(ev, Event::Cast { .. }) as u64;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn main() {
    let run = || -> Result<(), String> {
        let hs = pair(thoth_examples::ADDR, "custom-layer")?;
        exchange(&hs, 100)?;
        let m = hs[0].metrics(Duration::from_secs(2)).ok_or("no metrics")?;
        let stamp = m.layer("stamp", 0).ok_or("no stamp layer")?;
        println!("stamp: {:?}", stamp.counters);
        println!("state: {}", stamp.state);
        for h in hs {
            h.shutdown();
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("custom_layer: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_custom_layer_numbers_and_checks_every_cast() {
        let hs = pair(thoth_examples::test_addr(), &format!("custom-{}", std::process::id())).unwrap();
        exchange(&hs, 200).unwrap();
        for h in &hs {
            let m = h.metrics(Duration::from_secs(2)).unwrap();
            let s = m.layer("stamp", 0).expect("the stamp layer's metrics");
            assert_eq!(s.counter("stamped"), Some(200));
            assert_eq!(s.counter("checked"), Some(400), "both members' casts, its own included");
            assert_eq!((s.counter("out_of_order"), s.counter("malformed")), (Some(0), Some(0)));
        }
        // Without FIFO below it, the stack does not build.
        let cfg = thoth::Config::new(thoth::GroupId(1), thoth::EndpointId(1), vec![thoth::EndpointId(1)]);
        let err = thoth::Endpoint::from_spec(cfg, &registry(), "stamp:bare").map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("stamp"), "{err}");
        for h in hs {
            h.shutdown();
        }
    }
}
