//! `Msg`: a payload plus the headers the layers push on the way down and pop on the way up.
//!
//! Going down, headers are encoded into a small inline buffer in front of the body, so the
//! wire order is bottom layer first; the body (`Bytes`) is never copied. Going up, a message
//! from the network is one `Bytes` and each pop decodes from its front and advances it, again
//! without copying. A message looped back locally (a member delivering its own cast) pops
//! from the header buffer first; a header never spans the buffer and the body.
//!
//! A message from the network is a slice of its datagram and keeps the whole datagram alive.
//! `pinned` says how much that is and `datagram` which one it is (a number the endpoint gives
//! every datagram it receives), so a layer that holds messages for long (for others:
//! retransmission, reordering) can charge what it really holds — a datagram once, however
//! many of its messages it keeps — or `compact` one out of it.
//!
//! **Empty headers cost nothing.** A layer with nothing to say pushes its header's nothing
//! (see `Wire::nothing`), which writes no bytes. Which layers wrote a header travels as
//! presence bits, `marks`: a stack of bits under a sentinel 1, one bit per layer the message
//! left going down (`seal`, when the layer emits it: 1 if it pushed a header), taken back in
//! reverse going up (`unseal`, when the layer below hands it on: says whether the next
//! layer's header is there). A layer that does not touch a message still takes part: its
//! bit is 0 and it pops nothing. On the wire a message is `varint(marks)`, then the headers,
//! then the payload (`into_parts`, `from_frame`).

use crate::wire::{Reader, Wire, WireError, Writer, var_len};
use bytes::{Buf, Bytes};
use smallvec::SmallVec;

/// Headers up to this many bytes live inline in the message (more spill to the heap). A
/// cast through `reliable` carries 3 bytes of them; every byte here is moved with the
/// message from layer to layer, so the buffer is kept small (48 measured 4 % slower at
/// 100 B than 16).
pub const INLINE_HEAD: usize = 16;

/// A message going through the stack: the payload, the layers' headers and their presence
/// bits (see the module doc). Cloning shares the body; only the inline headers are copied.
#[derive(Clone)]
pub struct Msg {
    /// Presence bits under a sentinel (see the module doc).
    marks: u64,
    /// The layer handling it going down pushed a header.
    pushed: bool,
    /// Going up: the header of the layer handling it is there.
    avail: bool,
    /// Going down: a layer has delivered it at this member already (see `delivered_here`).
    here: bool,
    /// A cast that asks for its sender's FIFO order only (see `set_fifo`).
    fifo: bool,
    head: SmallVec<[u8; INLINE_HEAD]>,
    /// Bytes of `head` already popped (headers are a few dozen bytes).
    popped: u16,
    /// Bytes of the datagram `body` is a slice of (at most `MAX_UDP_PAYLOAD`), and its number
    /// at the receiving endpoint (0: not from a datagram).
    pinned: u16,
    datagram: u32,
    body: Bytes,
}

/// `compact` copies a message that keeps alive more than twice its size plus this.
pub const COMPACT_SLACK: usize = 256;

impl Msg {
    /// A message whose body is the application payload.
    pub fn new(body: Bytes) -> Msg {
        Msg {
            marks: 1,
            pushed: false,
            avail: false,
            here: false,
            fifo: false,
            head: SmallVec::new(),
            popped: 0,
            pinned: 0,
            datagram: 0,
            body,
        }
    }

    /// A message whose every layer wrote its header: headers and payload in one buffer (for
    /// tests, which build what arrives header by header).
    pub fn from_wire(data: Bytes) -> Msg {
        Msg { marks: u64::MAX, avail: true, ..Msg::new(data) }
    }

    /// A message in its wire form (`into_parts`): presence bits, headers, payload. Fails on
    /// bits that cannot be (no sentinel) or do not decode; the caller drops and counts it.
    pub fn from_frame(data: Bytes) -> Result<Msg, WireError> {
        let mut r = Reader::new(&data);
        let marks = r.var()?;
        if marks == 0 {
            return Err(WireError::BadValue);
        }
        let at = data.len() - r.remaining();
        Ok(Msg { marks, ..Msg::new(data.slice(at..)) })
    }

    /// A message whose first bytes sit in the inline buffer, in front of `body`: the wire
    /// form of a piece of another message (its headers and the start of its payload) that a
    /// layer sends as the payload of its own, without copying `body`. The receiver reads
    /// them as one payload.
    pub fn with_head(head: &[u8], body: Bytes) -> Msg {
        Msg { head: SmallVec::from_slice(head), ..Msg::new(body) }
    }

    /// Marks a cast going down as delivered at this member already, by the layer that
    /// numbers it (a reliable layer delivers its own casts as it sends them): the bottom of
    /// the stack sends it without looping it back up. A layer that puts messages together
    /// marks the whole only if every part is marked.
    pub fn set_delivered_here(&mut self) {
        self.here = true;
    }

    /// Marks a cast as asking for no order beyond its sender's FIFO order (Isis's `fbcast`),
    /// whatever order the stack gives its other casts: an ordering layer sends it on with a
    /// header that says so and every member delivers it as it arrives, not held for the
    /// order (a cheap cast on an ordered stack). Going down the mark is the application's
    /// (`Endpoint::cast_fifo`) and a layer that cuts a cast into pieces puts it on each;
    /// going up the ordering layer puts it back on what it delivered so, for the layers
    /// above it (the checkers of an order leave such casts alone). Not on the wire itself.
    pub fn set_fifo(&mut self) {
        self.fifo = true;
    }

    /// Whether the cast asks for FIFO order only (`set_fifo`).
    pub fn is_fifo(&self) -> bool {
        self.fifo
    }

    /// Going up: whether the layer handling it has a header in it (its presence bit); without
    /// one, `pop` gives the header type's nothing and leaves the message as it is.
    pub fn has_header(&self) -> bool {
        self.avail
    }

    /// Whether a layer has delivered it at this member already (`set_delivered_here`).
    pub fn delivered_here(&self) -> bool {
        self.here
    }

    /// Going down, as the layer that handled it emits it: one presence bit for that layer.
    pub fn seal(&mut self) {
        debug_assert!(self.marks >> 63 == 0, "more than 63 layers");
        self.marks = self.marks << 1 | self.pushed as u64;
        self.pushed = false;
        self.avail = false;
    }

    /// Going up, as the layer below hands it on: whether the next layer's header is there.
    pub fn unseal(&mut self) {
        if self.marks > 1 {
            self.avail = self.marks & 1 == 1;
            self.marks >>= 1;
        } else {
            self.avail = false;
        }
    }

    /// The message to send again after it went up (a retransmission): its headers not popped
    /// yet in front of the payload, its presence bits as they are. Copies only a looped-back
    /// message that still has inline headers.
    pub fn rewired(self) -> Msg {
        let body = if self.popped as usize == self.head.len() {
            self.body
        } else {
            Bytes::from([self.head(), &self.body[..]].concat())
        };
        Msg { marks: self.marks, ..Msg::new(body) }
    }

    /// The same message, known to be a slice of datagram number `datagram` (not 0) of `len`
    /// bytes at this endpoint.
    pub fn within(mut self, datagram: u32, len: usize) -> Msg {
        self.pinned = u16::try_from(len).unwrap_or(u16::MAX);
        self.datagram = datagram;
        self
    }

    /// Bytes this message keeps alive: its own, or the datagram it is a slice of.
    pub fn pinned(&self) -> usize {
        (self.pinned as usize).max(self.len())
    }

    /// The number of the datagram it is a slice of (0: none).
    pub fn datagram(&self) -> u32 {
        self.datagram
    }

    /// The message in a buffer of its own if it keeps alive much more than itself (a small
    /// message from a large datagram), so that holding it holds only its own bytes. Headers
    /// not popped yet stay in front, as on the wire.
    pub fn compact(self) -> Msg {
        if self.pinned() <= 2 * self.len() + COMPACT_SLACK {
            return self;
        }
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(self.head());
        v.extend_from_slice(&self.body);
        Msg { marks: self.marks, pushed: self.pushed, avail: self.avail, fifo: self.fifo, ..Msg::new(Bytes::from(v)) }
    }

    /// Pushes a header in front of the message (going down); a nothing writes no bytes.
    pub fn push<H: Wire>(&mut self, h: &H) {
        if h.is_nothing() {
            return;
        }
        self.pushed = true;
        debug_assert_eq!(self.popped, 0, "push on a message that is being popped");
        let n = h.encoded_len();
        assert!(self.head.len() + n <= u16::MAX as usize, "layer headers beyond 64 KiB");
        self.head.insert_many(0, core::iter::repeat_n(0u8, n));
        let mut w = Writer::new(&mut self.head[..n]);
        h.encode(&mut w);
        debug_assert_eq!(w.written(), n, "encoded_len disagrees with encode");
    }

    /// Pops the header in front of the message (going up): the header type's nothing if
    /// the sender's layer pushed none. On error the message is unchanged; the caller drops
    /// and counts it.
    pub fn pop<H: Wire>(&mut self) -> Result<H, WireError> {
        if !self.avail {
            return H::nothing().ok_or(WireError::Absent);
        }
        if (self.popped as usize) < self.head.len() {
            let mut r = Reader::new(&self.head[self.popped as usize..]);
            let h = H::decode(&mut r)?;
            self.popped = (self.head.len() - r.remaining()) as u16;
            Ok(h)
        } else {
            let mut r = Reader::new(&self.body);
            let h = H::decode(&mut r)?;
            let used = self.body.len() - r.remaining();
            // Advancing moves the slice's start: no reference taken and dropped, as a split
            // would (an atomic increment and decrement for every header popped).
            self.body.advance(used);
            Ok(h)
        }
    }

    /// The encoded headers not popped yet, bottom layer first.
    pub fn head(&self) -> &[u8] {
        &self.head[self.popped as usize..]
    }

    /// What follows the inline headers: the payload, and in a message from the network the
    /// headers not popped yet in front of it.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Bytes of headers and body (without the presence bits and the frame).
    pub fn len(&self) -> usize {
        self.head().len() + self.body.len()
    }

    /// Bytes this message takes on the wire: presence bits, headers and body.
    pub fn wire_len(&self) -> usize {
        var_len(self.marks) + self.len()
    }

    /// Whether there are neither headers nor body left (`len() == 0`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload left after every header has been popped. Copies only if headers remain
    /// unpopped in the inline buffer (a stack whose layers disagree), which does not happen
    /// on a well-formed stack.
    pub fn into_payload(self) -> Bytes {
        if self.popped as usize == self.head.len() {
            self.body
        } else {
            let mut v = Vec::with_capacity(self.len());
            v.extend_from_slice(self.head());
            v.extend_from_slice(&self.body);
            Bytes::from(v)
        }
    }

    /// Splits into its wire form, for transmission: presence bits and encoded headers, then
    /// the body (what `from_frame` reads back).
    pub fn into_parts(self) -> (SmallVec<[u8; INLINE_HEAD]>, Bytes) {
        let mut head = SmallVec::<[u8; INLINE_HEAD]>::new();
        let mut bits = [0u8; 10];
        let mut w = Writer::new(&mut bits);
        w.put_var(self.marks);
        let n = w.written();
        head.extend_from_slice(&bits[..n]);
        head.extend_from_slice(&self.head[self.popped as usize..]);
        (head, self.body)
    }
}

impl Default for Msg {
    fn default() -> Msg {
        Msg::new(Bytes::new())
    }
}

/// Two messages are equal when their headers and bodies are: what they keep alive, and
/// where they are in their trip through the layers (presence bits), is not part of what
/// they say.
impl PartialEq for Msg {
    fn eq(&self, o: &Msg) -> bool {
        self.head == o.head && self.popped == o.popped && self.body == o.body
    }
}

impl Eq for Msg {}

impl core::fmt::Debug for Msg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Msg(marks {:#b}, head {}B, body {}B)", self.marks, self.head().len(), self.body.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_then_pop_in_reverse_order() {
        let mut m = Msg::new(Bytes::from_static(b"payload"));
        m.push(&7u8); // top layer pushes first
        m.seal();
        m.seal(); // a middle layer with nothing to say
        m.push(&0x0102u16); // bottom layer last: first on the wire
        m.seal();
        assert_eq!(m.head(), &[0x02, 0x01, 7]);
        assert_eq!((m.len(), m.wire_len()), (10, 11));
        // Looped back: pops come from the inline buffer.
        let mut local = m.clone();
        local.unseal();
        assert_eq!(local.pop::<u16>(), Ok(0x0102));
        local.unseal();
        assert_eq!(local.pop::<u8>(), Err(WireError::Absent), "the middle layer pushed nothing");
        assert_eq!(local.pop::<()>(), Ok(()), "which a header type with a nothing reads as it");
        local.unseal();
        assert_eq!(local.pop::<u8>(), Ok(7));
        assert_eq!(local.into_payload(), Bytes::from_static(b"payload"));
        // Over the wire: presence bits 0b1101 (sentinel, top, middle, bottom), then the headers.
        let (head, body) = m.into_parts();
        assert_eq!(&head[..], &[0b1101, 0x02, 0x01, 7]);
        let mut wire = head.to_vec();
        wire.extend_from_slice(&body);
        let mut rx = Msg::from_frame(Bytes::from(wire)).unwrap();
        rx.unseal();
        assert_eq!(rx.pop::<u16>(), Ok(0x0102));
        rx.unseal();
        rx.unseal();
        assert_eq!(rx.pop::<u8>(), Ok(7));
        assert_eq!(rx.into_payload(), Bytes::from_static(b"payload"));
    }

    #[test]
    fn presence_bits_that_cannot_be_are_refused() {
        assert_eq!(Msg::from_frame(Bytes::from_static(&[0, 1])), Err(WireError::BadValue), "no sentinel");
        assert_eq!(Msg::from_frame(Bytes::from_static(&[0x80])), Err(WireError::Truncated));
        assert_eq!(Msg::from_frame(Bytes::new()), Err(WireError::Truncated));
        // More unseals than bits (a hostile sender's short marks): nothing is there.
        let mut m = Msg::from_frame(Bytes::from_static(&[1, 5])).unwrap();
        m.unseal();
        assert_eq!(m.pop::<u8>(), Err(WireError::Absent));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn body_is_not_copied_going_up() {
        let data = Bytes::from(vec![1u8, 2, 3, 4, 5]);
        let base = data.as_ptr();
        let mut rx = Msg::from_wire(data);
        assert_eq!(rx.pop::<u8>(), Ok(1));
        let payload = rx.into_payload();
        assert_eq!(payload.as_ptr(), base.wrapping_add(1));
    }

    #[test]
    fn a_small_slice_of_a_large_datagram_is_compacted_a_large_one_is_not() {
        let datagram = Bytes::from(vec![9u8; 4000]);
        let small = Msg::from_wire(datagram.slice(10..20)).within(7, datagram.len());
        assert_eq!((small.len(), small.pinned(), small.datagram()), (10, 4000, 7));
        let c = small.clone().compact();
        assert_eq!((c.len(), c.pinned(), c.datagram()), (10, 10, 0));
        assert_ne!(c.body().as_ptr(), small.body().as_ptr());
        assert_eq!(c.body(), small.body());
        let large = Msg::from_wire(datagram.slice(0..3000)).within(7, datagram.len());
        let same = large.clone().compact();
        assert_eq!(same.body().as_ptr(), large.body().as_ptr(), "no copy when the message is most of the datagram");
        // Headers pushed locally and not popped stay in front.
        let mut local = Msg::from_wire(datagram.slice(0..4)).within(7, 4000);
        local.push(&7u8);
        assert_eq!(local.compact().into_payload(), Bytes::from_static(&[7, 9, 9, 9, 9]));
    }

    #[test]
    fn failed_pop_leaves_message_unchanged() {
        let mut rx = Msg::from_wire(Bytes::from_static(&[1, 2]));
        assert_eq!(rx.pop::<u32>(), Err(WireError::Truncated));
        assert_eq!(rx.pop::<u16>(), Ok(0x0201));
        let mut local = Msg::new(Bytes::new());
        local.push(&1u8);
        local.seal();
        local.unseal();
        assert_eq!(local.pop::<u16>(), Err(WireError::Truncated));
        assert_eq!(local.pop::<u8>(), Ok(1));
        assert!(local.is_empty());
    }
}
