//! The chat of `chat.rs` on the async front end (`thoth::aio`, feature `tokio`): casts are
//! awaited, and the room's events are a `Stream` read in a `select!` beside stdin.
//!
//! ```sh
//! cargo run -p thoth-examples --example async_chat -- alice
//! ```

use thoth::aio::{self, AsyncHandle, Events};
use thoth::{Bytes, Event};
use tokio::io::AsyncBufReadExt;
use tokio_stream::StreamExt;

/// What a member prints for an event, answering a view change on the way.
fn show(h: &AsyncHandle, ev: &Event) -> Option<String> {
    match ev {
        Event::View(v) => Some(format!("* {} in the room", v.members.len())),
        Event::Cast { from, data } if *from != h.me() => Some(String::from_utf8_lossy(data).into_owned()),
        Event::Block => {
            let _ = h.block_ok();
            None
        }
        _ => None,
    }
}

async fn join(addr: std::net::SocketAddr, group: &str) -> Result<(AsyncHandle, Events), String> {
    let group = group.to_string();
    // Opening sockets and starting the driver are blocking calls: off the runtime's threads.
    let h = tokio::task::spawn_blocking(move || thoth_examples::join_at(addr, &group, thoth::GROUP, |c| c))
        .await
        .map_err(|e| e.to_string())??;
    aio::split(h).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "anonymous".into());
    let (h, mut events) = match join(thoth_examples::ADDR, "chat").await {
        Ok(j) => j,
        Err(e) => {
            eprintln!("async_chat: {e}");
            std::process::exit(1)
        }
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut typing = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if typing => match line {
                Ok(Some(line)) => {
                    if let Err(e) = h.cast(Bytes::from(format!("{name}: {line}"))).await {
                        eprintln!("async_chat: not sent ({e:?})");
                    }
                }
                _ => {
                    typing = false;
                    h.leave();
                }
            },
            ev = events.next() => match ev {
                Some(Event::Exit) | None => break,
                Some(ev) => {
                    if let Some(s) = show(&h, &ev) {
                        println!("{s}");
                    }
                }
            },
        }
    }
    h.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The next line `events` shows, within 20 s.
    async fn next_shown(h: &AsyncHandle, events: &mut Events) -> String {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let ev = events.next().await.expect("the events go on");
                if let Some(s) = show(h, &ev) {
                    return s;
                }
            }
        })
        .await
        .expect("within 20 s")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_members_chat_under_tokio() {
        let addr = thoth_examples::test_addr();
        let group = format!("async-chat-{}", std::process::id());
        let (alice, mut alice_events) = join(addr, &group).await.unwrap();
        let (bob, mut bob_events) = join(addr, &group).await.unwrap();
        for (h, events) in [(&alice, &mut alice_events), (&bob, &mut bob_events)] {
            while next_shown(h, events).await != "* 2 in the room" {}
        }
        for k in 0..50 {
            alice.cast(Bytes::from(format!("alice: {k}"))).await.unwrap();
        }
        for k in 0..50 {
            assert_eq!(next_shown(&bob, &mut bob_events).await, format!("alice: {k}"));
        }
        bob.send(alice.me(), Bytes::from_static(b"psst")).await.unwrap();
        let psst = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = alice_events.next().await {
                if let Event::Send { from, data } = ev {
                    return Some((from, data));
                }
            }
            None
        });
        assert_eq!(psst.await.unwrap(), Some((bob.me(), Bytes::from_static(b"psst"))));
        let m = alice.metrics(Duration::from_secs(2)).await.expect("metrics");
        assert!(m.endpoint.delivered_casts >= 50);
        // Leaving ends the stream with Exit; shutdown returns within its bounds.
        alice.leave();
        let exit = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = alice_events.next().await {
                if ev == Event::Exit {
                    return true;
                }
            }
            false
        });
        assert!(exit.await.expect("within 20 s"), "an Exit before the stream ended");
        let t = std::time::Instant::now();
        alice.shutdown().await;
        bob.shutdown().await;
        assert!(t.elapsed() < Duration::from_secs(3), "shutdown took {:?}", t.elapsed());
        let ended = tokio::time::timeout(Duration::from_secs(1), async { while bob_events.next().await.is_some() {} });
        assert!(ended.await.is_ok(), "the events end once the driver has stopped");
    }
}
