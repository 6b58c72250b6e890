//! A chat over a dynamic group: each line typed is cast to the group, and every member
//! prints what the others say and who is in the room. Start it in two or three terminals:
//!
//! ```sh
//! cargo run -p thoth-examples --example chat -- alice
//! cargo run -p thoth-examples --example chat -- bob
//! ```
//!
//! End of input (Ctrl-D) leaves the room. The stack is `group` (membership, heartbeat
//! failure detection, reliable FIFO multicast): each member's lines arrive in the order it
//! typed them, everyone sees the same views, and a member killed with Ctrl-C is dropped from
//! the view within a few seconds.

use std::io::BufRead;
use thoth::udp::Handle;
use thoth::{Bytes, EndpointId, Event};

/// What a member prints for an event, if anything.
fn show(ev: &Event, me: EndpointId) -> Option<String> {
    match ev {
        Event::View(v) => Some(format!("* {} in the room", v.members.len())),
        Event::Cast { from, data } if *from != me => Some(String::from_utf8_lossy(data).into_owned()),
        _ => None,
    }
}

/// Prints the room's events until this member has left (answering view changes).
fn listen(h: &Handle, mut print: impl FnMut(String)) {
    while let Some(ev) = h.recv() {
        match ev {
            Event::Block => {
                let _ = h.block_ok();
            }
            Event::Exit => return,
            ev => {
                if let Some(line) = show(&ev, h.me()) {
                    print(line)
                }
            }
        }
    }
}

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "anonymous".into());
    let h = thoth_examples::join_at(thoth_examples::ADDR, "chat", thoth::GROUP, |c| c).unwrap_or_else(|e| {
        eprintln!("chat: {e}");
        std::process::exit(1)
    });
    // Lines go out from a thread of their own; the room's events are printed here.
    let typist = h.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if let Err(e) = typist.cast(Bytes::from(format!("{name}: {line}"))) {
                eprintln!("chat: not sent ({e:?})");
            }
        }
        typist.leave();
    });
    listen(&h, |line| println!("{line}"));
    h.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn two_members_chat_and_one_leaves() {
        let addr = thoth_examples::test_addr();
        let group = format!("chat-{}", std::process::id());
        let alice = thoth_examples::join_at(addr, &group, thoth::GROUP, |c| c).unwrap();
        let bob = thoth_examples::join_at(addr, &group, thoth::GROUP, |c| c).unwrap();
        thoth_examples::settle(&[&alice, &bob], 2);
        for line in ["alice: hello", "alice: anyone?"] {
            alice.cast(Bytes::from(line)).unwrap();
        }
        alice.leave();
        // Bob hears both lines in order, then the room shrinks; alice's own lines are not
        // printed back to her.
        let mut heard = Vec::new();
        let start = Instant::now();
        while !heard.contains(&"* 1 in the room".to_string()) {
            assert!(start.elapsed() < Duration::from_secs(20), "{heard:?}");
            if let Some(ev) = bob.recv_timeout(Duration::from_millis(100)) {
                if let Event::Block = ev {
                    bob.block_ok().unwrap();
                }
                heard.extend(show(&ev, bob.me()));
            }
        }
        assert_eq!(heard, ["alice: hello", "alice: anyone?", "* 1 in the room"]);
        let mut mine = Vec::new();
        listen(&alice, |l| mine.push(l));
        assert!(mine.iter().all(|l| !l.starts_with("alice:")), "{mine:?}");
        alice.shutdown();
        bob.shutdown();
    }
}
