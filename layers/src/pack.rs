//! `pack`: many small messages in one datagram under backlog, none delayed without it
//! (Horus's packing, JGroups's bundler).
//!
//! Protocol. The first message going down in a turn goes out at once, alone. Messages that
//! follow in the same turn — the ones the driver hands the endpoint in one batch, which is
//! what a backlog is — wait in a queue per destination (the group, or one rank). At the end
//! of the turn (`Layer::end_turn`, after the batch's input) each queue leaves as few
//! datagrams as fit: a `Many { count }` header followed by `count` entries, each a
//! varint length and the message's bytes (its headers from the layers above, then its
//! payload). So a quiet sender pays no delay and no copy, and a busy one pays one copy per
//! message and saves a system call, a frame and a CRC per message. Going up, `One` passes
//! the message up, `Many` splits the datagram into its messages without copying (each is a
//! slice of the datagram) and passes each up as if it had arrived alone, in order.
//!
//! Reliable and unreliable messages to the same destination share a queue: the endpoint
//! sends both alike, and whether a message is reliable is for the layers above to say in
//! their own headers. A message alone leaves as the event it came in; a packed datagram
//! leaves as `CastUnrel` / `SendUnrel`, so `pack` belongs below the reliable layers (at the
//! bottom of the stack, or above only debug layers that inject faults). Control events
//! pass through (a `Leave` after flushing what waits, so nothing is lost ahead of it).
//!
//! Parameters (spec `pack(size=N)`): `size`, the most bytes of messages one datagram
//! carries (64..=65000). By default, and never more than, the room the datagram has for them
//! (`Cx::room`: the endpoint's `max_datagram` less the frame and what the layers below may
//! add), so a packed datagram always fits; on a path whose MTU matters, set `max_datagram`
//! to the path's size (or give `size`). A message larger than `size` goes out alone.
//!
//! Properties: requires nothing; provides `PACK`.
//!
//! Events generated: `Dn::Cast` / `Dn::Send` and their unreliable twins (one message
//! alone, as given), `Dn::CastUnrel` / `Dn::SendUnrel` (packed), `Up::Cast` / `Up::Send`.
//!
//! Hostile input: a header that does not decode, a count of zero, or an entry whose length
//! runs past the datagram drops the datagram's remaining entries and is counted
//! (`bad_hdr`, `bad_entry`); the entries before it were well formed and are delivered.
//!
//! Memory: the queues hold only what arrived in the current turn: at most one turn's input.
//! Packed datagrams are built in one buffer, reused once they are sent and dropped.
//!
//! Tests: unit tests below (header codec, exact packing); `layers/tests/pack.rs`: bolero
//! models (any sequence of messages and flushes comes out in order and intact; arbitrary
//! bytes never panic), and a simulated group where a burst goes out in few datagrams and
//! every message arrives once, in order.

use std::collections::VecDeque;
use thoth_stack::wire::var_len;
use thoth_stack::{
    Args, BytesMut, Cx, Dn, Dump, Layer, Msg, Props, Rank, Reader, Registry, Up, Wire, WireError, Writer,
};

/// The layer's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// A message alone.
    One,
    /// `count` length-prefixed messages follow.
    Many {
        /// Entries in the datagram, at least 1 (0 does not decode).
        count: u64,
    },
}

const TAG_ONE: u8 = 0;
const TAG_MANY: u8 = 1;

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::One);
    fn encoded_len(&self) -> usize {
        match self {
            Hdr::One => 1,
            Hdr::Many { count } => 1 + var_len(*count),
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Hdr::One => w.put_u8(TAG_ONE),
            Hdr::Many { count } => {
                w.put_u8(TAG_MANY);
                w.put_var(*count);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            TAG_ONE => Ok(Hdr::One),
            TAG_MANY => match r.var()? {
                0 => Err(WireError::BadValue),
                count => Ok(Hdr::Many { count }),
            },
            _ => Err(WireError::BadTag),
        }
    }
}

/// Parameters; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most bytes of messages in one packed datagram; never more than the datagram's room
    /// (`Cx::room`, less the header), so the default, `usize::MAX`, fills datagrams.
    pub size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { size: usize::MAX }
    }
}

/// Where a queued message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    All,
    One(Rank),
}

/// The packing layer; see the module documentation.
pub struct Pack {
    cfg: Config,
    /// A message went out alone in this turn: the ones after it wait for the end of the turn.
    busy: bool,
    /// Waiting messages, in arrival order, with their destination and whether they came
    /// as reliable events. One queue serves every destination: a flush takes each
    /// destination's messages in order.
    queue: VecDeque<(To, bool, Msg)>,
    /// Where packed datagrams are built: its allocation is reused once the datagrams built
    /// in it are sent and dropped (no allocation, no fresh pages per datagram).
    buf: BytesMut,
    sent_alone: u64,
    sent_packed: u64,
    datagrams_packed: u64,
    received_packed: u64,
    bad_hdr: u64,
    bad_entry: u64,
}

impl Default for Pack {
    fn default() -> Self {
        Pack::new(Config::default())
    }
}

impl Pack {
    /// A pack layer; a `size` below 64 is raised to 64.
    pub fn new(cfg: Config) -> Pack {
        Pack {
            cfg: Config { size: cfg.size.max(64) },
            busy: false,
            queue: VecDeque::new(),
            buf: BytesMut::new(),
            sent_alone: 0,
            sent_packed: 0,
            datagrams_packed: 0,
            received_packed: 0,
            bad_hdr: 0,
            bad_entry: 0,
        }
    }

    /// Sends a message alone, as the event it came in.
    fn alone(&mut self, mut ev: Dn, cx: &mut Cx<'_>) {
        self.sent_alone += 1;
        if let Some(m) = ev.msg_mut() {
            m.push(&Hdr::One);
        }
        cx.dn(ev);
    }

    /// Sends everything that waits: per destination, in order, as few datagrams as fit.
    fn flush(&mut self, cx: &mut Cx<'_>) {
        let size = self.cfg.size.min(cx.room.saturating_sub(Hdr::Many { count: u64::MAX }.encoded_len()));
        while let Some((to, reliable, first)) = self.queue.pop_front() {
            let mut batch = vec![first];
            let mut bytes = entry_len(&batch[0]);
            // Later messages for the same destination join while they fit; the others keep
            // their place in the queue.
            let mut i = 0;
            while i < self.queue.len() {
                if self.queue[i].0 == to {
                    let n = entry_len(&self.queue[i].2);
                    if bytes + n > size {
                        break;
                    }
                    bytes += n;
                    batch.extend(self.queue.remove(i).map(|(_, _, m)| m));
                } else {
                    i += 1;
                }
            }
            if batch.len() == 1 {
                let m = batch.pop().unwrap_or_default();
                self.alone(event(to, reliable, m), cx);
            } else {
                self.emit(to, batch, bytes, cx);
            }
        }
    }

    /// Sends `batch` (two messages or more) as one datagram.
    fn emit(&mut self, to: To, batch: Vec<Msg>, bytes: usize, cx: &mut Cx<'_>) {
        self.sent_packed += batch.len() as u64;
        self.datagrams_packed += 1;
        // Reclaims the allocation if nothing built in it is alive any more.
        self.buf.reserve(bytes);
        let buf = &mut self.buf;
        let count = batch.len() as u64;
        let here = batch.iter().all(Msg::delivered_here);
        for m in batch {
            let mut len = [0u8; 10];
            let mut w = Writer::new(&mut len);
            w.put_var(m.wire_len() as u64);
            let n = w.written();
            buf.extend_from_slice(&len[..n]);
            let (head, body) = m.into_parts();
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&body);
        }
        let mut msg = Msg::new(buf.split().freeze());
        if here {
            msg.set_delivered_here();
        }
        msg.push(&Hdr::Many { count });
        cx.dn(match to {
            To::All => Dn::CastUnrel(msg),
            To::One(r) => Dn::SendUnrel(r, msg),
        });
    }

    /// Splits a received message; `up` wraps each part as the event it arrived in.
    fn unpack(&mut self, mut msg: Msg, up: impl Fn(Msg) -> Up, cx: &mut Cx<'_>) {
        let count = match msg.pop::<Hdr>() {
            Ok(Hdr::One) => return cx.up(up(msg)),
            Ok(Hdr::Many { count }) => count,
            Err(_) => {
                self.bad_hdr += 1;
                return;
            }
        };
        self.received_packed += 1;
        let (datagram, pinned) = (msg.datagram(), msg.pinned());
        let data = msg.into_payload();
        let mut at = 0;
        for _ in 0..count {
            let mut r = Reader::new(&data[at..]);
            let part = r.var().ok().and_then(|len| {
                let start = data.len() - r.remaining();
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                (end <= data.len()).then_some((start, end))
            });
            let Some((start, end)) = part else {
                self.bad_entry += 1;
                return;
            };
            let Ok(part) = Msg::from_frame(data.slice(start..end)) else {
                self.bad_entry += 1;
                return;
            };
            cx.up(up(part.within(datagram, pinned)));
            at = end;
        }
        if at != data.len() {
            // Bytes past the last entry: the header lied about the count.
            self.bad_entry += 1;
        }
    }
}

/// The event a message alone leaves as: the one it came in.
fn event(to: To, reliable: bool, m: Msg) -> Dn {
    match (to, reliable) {
        (To::All, true) => Dn::Cast(m),
        (To::All, false) => Dn::CastUnrel(m),
        (To::One(r), true) => Dn::Send(r, m),
        (To::One(r), false) => Dn::SendUnrel(r, m),
    }
}

/// Bytes a message takes as a packed entry.
fn entry_len(m: &Msg) -> usize {
    var_len(m.wire_len() as u64) + m.wire_len()
}

impl Layer for Pack {
    fn name(&self) -> &'static str {
        "pack"
    }
    fn provides(&self) -> Props {
        Props::PACK
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        // A packed entry: the datagram's header and the entry's length.
        Hdr::Many { count: u64::MAX }.encoded_len() + var_len(u64::MAX)
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        let (to, reliable, msg) = match ev {
            Dn::Cast(m) => (To::All, true, m),
            Dn::CastUnrel(m) => (To::All, false, m),
            Dn::Send(r, m) => (To::One(r), true, m),
            Dn::SendUnrel(r, m) => (To::One(r), false, m),
            Dn::Leave => {
                self.flush(cx);
                return cx.dn(Dn::Leave);
            }
            other => return cx.dn(other),
        };
        if !self.busy {
            debug_assert!(self.queue.is_empty());
            self.busy = true;
            return self.alone(event(to, reliable, msg), cx);
        }
        self.queue.push_back((to, reliable, msg));
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, msg } => self.unpack(msg, |msg| Up::Cast { from, msg }, cx),
            Up::Send { from, msg } => self.unpack(msg, |msg| Up::Send { from, msg }, cx),
            other => cx.up(other),
        }
    }
    fn end_turn(&mut self, cx: &mut Cx<'_>) {
        self.flush(cx);
        self.busy = false;
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump {
            layer: "pack",
            counters: vec![
                ("sent_alone", self.sent_alone),
                ("sent_packed", self.sent_packed),
                ("datagrams_packed", self.datagrams_packed),
                ("received_packed", self.received_packed),
                ("bad_hdr", self.bad_hdr),
                ("bad_entry", self.bad_entry),
            ],
            gauges: vec![("waiting", self.queue.len() as u64)],
            state: match self.cfg.size {
                usize::MAX => format!("size room, busy {}", self.busy),
                size => format!("size {size}, busy {}", self.busy),
            },
            ..Dump::default()
        });
    }
}

/// Registers `pack` and its parameter `size` (64..=65000 when given).
pub fn register(r: &mut Registry) {
    r.register("pack", "packs small messages into one datagram under backlog", |a: &mut Args| {
        let size: usize = a.get("size", Config::default().size)?;
        if size != Config::default().size && !(64..=65_000).contains(&size) {
            return Err(format!("size {size} is outside 64..=65000"));
        }
        Ok(Box::new(Pack::new(Config { size })))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth_stack::wire::{from_slice, to_vec};
    use thoth_stack::{Bytes, EndpointId, Rng, Time, View};

    #[test]
    fn header_codec() {
        assert_eq!(to_vec(&Hdr::One), [0]);
        assert_eq!(to_vec(&Hdr::Many { count: 300 }), [1, 0xac, 0x02]);
        assert_eq!(from_slice::<Hdr>(&[1, 0]), Err(WireError::BadValue));
        assert_eq!(from_slice::<Hdr>(&[2]), Err(WireError::BadTag));
        assert_eq!(from_slice::<Hdr>(&[1, 0xac, 0x02]), Ok(Hdr::Many { count: 300 }));
    }

    #[test]
    fn first_message_alone_then_packed_at_the_end_of_the_turn() {
        let view = View::initial(vec![EndpointId(1), EndpointId(2)]);
        let (mut rng, mut up, mut dn) = (Rng::new(1), VecDeque::new(), VecDeque::new());
        let mut p = Pack::new(Config { size: 64 });
        let now = Time::from_nanos(5);
        let mut cx = Cx::new(now, &view, Rank(0), &mut rng, &mut up, &mut dn);
        for body in [&b"a"[..], b"bb", b"ccc"] {
            p.handle_dn(Dn::Cast(Msg::new(Bytes::copy_from_slice(body))), &mut cx);
        }
        p.handle_dn(Dn::Send(Rank(1), Msg::new(Bytes::from_static(b"s"))), &mut cx);
        assert_eq!(dn.len(), 1, "the rest waits for the end of the turn");
        let mut cx = Cx::new(now, &view, Rank(0), &mut rng, &mut up, &mut dn);
        p.end_turn(&mut cx);
        // A new turn: its first message goes alone again.
        p.handle_dn(Dn::Cast(Msg::new(Bytes::from_static(b"d"))), &mut cx);
        let wire: Vec<(String, Vec<u8>)> = dn
            .drain(..)
            .map(|e| match e {
                Dn::Cast(m) => ("cast".into(), [m.head(), &m.body()[..]].concat()),
                Dn::CastUnrel(m) => ("cast-unrel".into(), [m.head(), &m.body()[..]].concat()),
                Dn::Send(r, m) => (format!("send {r}"), [m.head(), &m.body()[..]].concat()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            wire,
            [
                // Alone: `One`, pack's nothing, takes no bytes. Packed: `Many { count: 2 }`,
                // then each entry's length and wire form (presence bits 1, then the bytes).
                ("cast".to_string(), b"a".to_vec()),
                ("cast-unrel".to_string(), b"\x01\x02\x03\x01bb\x04\x01ccc".to_vec()),
                ("send r1".to_string(), b"s".to_vec()),
                ("cast".to_string(), b"d".to_vec()),
            ]
        );
    }

    #[test]
    fn a_packed_datagram_is_delivered_here_only_if_every_part_is() {
        let view = View::initial(vec![EndpointId(1), EndpointId(2)]);
        let (mut rng, mut up, mut dn) = (Rng::new(1), VecDeque::new(), VecDeque::new());
        let mut p = Pack::new(Config { size: 64 });
        let mut cx = Cx::new(Time::ZERO, &view, Rank(0), &mut rng, &mut up, &mut dn);
        let here = |b: &'static [u8]| {
            let mut m = Msg::new(Bytes::from_static(b));
            m.set_delivered_here();
            m
        };
        // Turn 1: alone (keeps its mark), then two marked casts packed; turn 2: alone, then
        // a marked cast packed with an unmarked one.
        for turn in [[here(b"a"), here(b"b"), here(b"c")], [here(b"d"), here(b"e"), Msg::new(Bytes::from_static(b"f"))]]
        {
            for m in turn {
                p.handle_dn(Dn::Cast(m), &mut cx);
            }
            p.end_turn(&mut cx);
        }
        let marks: Vec<bool> =
            dn.iter().map(|e| matches!(e, Dn::Cast(m) | Dn::CastUnrel(m) if m.delivered_here())).collect();
        assert_eq!(marks, [true, true, true, false]);
    }
}
