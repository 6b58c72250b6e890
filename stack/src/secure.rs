//! Frame protection, its primitives (the security issue's first part): keys per view and per
//! sender derived from a group secret, a datagram's body sealed and opened with AES-256-GCM,
//! and a replay window per sender. The cryptography is `ring`'s (AEAD and HKDF-SHA256),
//! picked by the measurement in `benches/aead.rs`; nothing here is a cipher, a MAC or a key
//! exchange of our own.
//!
//! **Keys.** A view's key material is HKDF-SHA256 over the group secret, with the group and
//! the view as its context (`ViewKeys::derive`): a member that is not in a view has no key
//! for it, and a datagram of one view does not open in another. Each sender seals with a
//! key of its own, expanded from the view's material with its id (`ViewKeys::sender`), so
//! the nonce need only be unique per sender: it is the sender's packet number, which never
//! repeats within a view.
//!
//! **Seal / open.** `seal` encrypts a body in place and appends the 16-byte tag; the
//! associated data is whatever the caller authenticates without hiding (the frame header
//! with the group, view, source and packet number). `open` checks the tag before anything
//! else reads the body. A flipped bit anywhere, another header, another view's or sender's
//! key, a cut datagram: each is refused, and says why (`Reject`).
//!
//! **Replays.** `Window` keeps, per sender, the highest packet number opened and a bitmap of
//! the `WINDOW` below it (as IPsec and WireGuard do): a number seen already is a replay, one
//! below the window is stale. The window is checked before the tag (cheap) and recorded only
//! after the tag verified, so a forged datagram cannot move it.
//!
//! Not yet wired into the endpoint's frames: that, the key modes and the tests with crafted
//! datagrams are the next steps. Tested below (every rejection reason, the window's
//! edges, bolero over arbitrary bytes and mutations of a sealed datagram).

use crate::ids::{EndpointId, GroupId, ViewId};
use core::fmt;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

/// Bytes of the tag `seal` appends.
pub const TAG_LEN: usize = 16;
/// Packet numbers a `Window` remembers below the highest (a multiple of 64).
pub const WINDOW: u64 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;

/// Labels of the key derivation, so keys for this use are never keys for another.
const SALT: &[u8] = b"thoth frame protection v1";
const VIEW_INFO: &[u8] = b"view";
const SENDER_INFO: &[u8] = b"sender";

/// A group's pre-shared secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupSecret([u8; 32]);

impl GroupSecret {
    pub fn new(bytes: [u8; 32]) -> GroupSecret {
        GroupSecret(bytes)
    }
}

impl fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupSecret(..)")
    }
}

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Shorter than a tag.
    Truncated,
    /// The tag does not verify: forged, altered, another key (group, view, sender).
    BadTag,
    /// Its packet number was opened already.
    Replay,
    /// Its packet number is below the sender's window.
    Stale,
}

/// One view's key material (see the module doc).
pub struct ViewKeys {
    prk: hkdf::Prk,
}

/// The key one sender seals with (and the others open its datagrams with).
pub struct SenderKey(LessSafeKey);

/// Fills a 32-byte output of an HKDF expansion.
struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl ViewKeys {
    pub fn derive(secret: &GroupSecret, group: GroupId, view: ViewId) -> ViewKeys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&secret.0);
        let mut context = [0u8; 24];
        context[..8].copy_from_slice(&group.0.to_le_bytes());
        context[8..16].copy_from_slice(&view.ltime.to_le_bytes());
        context[16..].copy_from_slice(&view.coord.0.to_le_bytes());
        let mut material = [0u8; 32];
        prk.expand(&[VIEW_INFO, &context], Len32)
            .and_then(|okm| okm.fill(&mut material))
            .expect("32 bytes are within HKDF-SHA256's output");
        ViewKeys { prk: hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &material) }
    }

    /// The key of the sender `src` in this view.
    pub fn sender(&self, src: EndpointId) -> SenderKey {
        let mut key = [0u8; 32];
        self.prk
            .expand(&[SENDER_INFO, &src.0.to_le_bytes()], Len32)
            .and_then(|okm| okm.fill(&mut key))
            .expect("32 bytes are within HKDF-SHA256's output");
        SenderKey(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("a 32-byte AES-256 key")))
    }
}

fn nonce(pn: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&pn.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Encrypts `body` in place under the sender's packet number `pn` (never twice with one key)
/// and appends the tag; `aad` is authenticated, not hidden.
pub fn seal(key: &SenderKey, pn: u64, aad: &[u8], body: &mut Vec<u8>) {
    let tag = key.0.seal_in_place_separate_tag(nonce(pn), Aad::from(aad), body).expect("a body within AES-GCM's limit");
    body.extend_from_slice(tag.as_ref());
}

/// Checks the tag of `sealed` (a body and its tag) and decrypts it in place: the plaintext,
/// or why not.
pub fn open<'a>(key: &SenderKey, pn: u64, aad: &[u8], sealed: &'a mut [u8]) -> Result<&'a mut [u8], Reject> {
    if sealed.len() < TAG_LEN {
        return Err(Reject::Truncated);
    }
    key.0.open_in_place(nonce(pn), Aad::from(aad), sealed).map_err(|_| Reject::BadTag)
}

/// One sender's replay window (see the module doc).
#[derive(Clone, Debug)]
pub struct Window {
    /// The highest packet number opened, if any.
    top: Option<u64>,
    /// Bit `pn % WINDOW`: `pn` opened, for the `WINDOW` numbers up to `top`.
    seen: Box<[u64; WORDS]>,
}

impl Default for Window {
    fn default() -> Window {
        Window { top: None, seen: Box::new([0; WORDS]) }
    }
}

impl Window {
    /// Whether `pn` may be opened: new, and not below the window.
    pub fn check(&self, pn: u64) -> Result<(), Reject> {
        match self.top {
            Some(top) if pn <= top && top - pn >= WINDOW => Err(Reject::Stale),
            Some(top) if pn <= top && self.bit(pn) => Err(Reject::Replay),
            _ => Ok(()),
        }
    }

    /// Records `pn` as opened (after its tag verified and `check` passed).
    pub fn record(&mut self, pn: u64) {
        match self.top {
            Some(top) if pn <= top => {}
            // A jump past the whole window: nothing in it was opened.
            Some(top) if pn - top >= WINDOW => {
                self.seen.fill(0);
                self.top = Some(pn);
            }
            Some(top) => {
                // The numbers skipped over were not opened: clear their bits, left from the
                // lap before.
                for k in (top + 1)..pn {
                    self.clear(k);
                }
                self.top = Some(pn);
            }
            None => self.top = Some(pn),
        }
        self.set(pn);
    }

    fn bit(&self, pn: u64) -> bool {
        let i = pn % WINDOW;
        self.seen[(i / 64) as usize] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, pn: u64) {
        let i = pn % WINDOW;
        self.seen[(i / 64) as usize] |= 1 << (i % 64);
    }
    fn clear(&mut self, pn: u64) {
        let i = pn % WINDOW;
        self.seen[(i / 64) as usize] &= !(1 << (i % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: GroupId = GroupId(7);
    const V: ViewId = ViewId { ltime: 3, coord: EndpointId(1) };

    fn keys(secret: u8, group: GroupId, view: ViewId) -> ViewKeys {
        ViewKeys::derive(&GroupSecret::new([secret; 32]), group, view)
    }

    fn sealed(key: &SenderKey, pn: u64, aad: &[u8]) -> Vec<u8> {
        let mut b = b"a cast's layer headers and payload".to_vec();
        seal(key, pn, aad, &mut b);
        b
    }

    #[test]
    fn a_sealed_body_opens_with_its_key_and_header_only() {
        let k = keys(1, G, V);
        let me = k.sender(EndpointId(2));
        let b = sealed(&me, 9, b"header");
        assert_eq!(b.len(), 34 + TAG_LEN);
        assert_ne!(&b[..34], b"a cast's layer headers and payload", "the body is hidden");
        assert_eq!(
            open(&me, 9, b"header", &mut b.clone()).map(|p| p.to_vec()),
            Ok(b"a cast's layer headers and payload".to_vec())
        );
        // Every bit of the body and tag matters.
        for i in 0..b.len() * 8 {
            let mut c = b.clone();
            c[i / 8] ^= 1 << (i % 8);
            assert_eq!(open(&me, 9, b"header", &mut c).err(), Some(Reject::BadTag), "bit {i}");
        }
        // Another header, packet number, sender, view, group or secret: refused.
        let refused = |key: &SenderKey, pn: u64, aad: &[u8]| open(key, pn, aad, &mut b.clone()).err();
        assert_eq!(refused(&me, 9, b"headex"), Some(Reject::BadTag));
        assert_eq!(refused(&me, 10, b"header"), Some(Reject::BadTag));
        assert_eq!(refused(&k.sender(EndpointId(3)), 9, b"header"), Some(Reject::BadTag));
        let other_view = ViewId { ltime: 4, ..V };
        assert_eq!(refused(&keys(1, G, other_view).sender(EndpointId(2)), 9, b"header"), Some(Reject::BadTag));
        assert_eq!(refused(&keys(1, GroupId(8), V).sender(EndpointId(2)), 9, b"header"), Some(Reject::BadTag));
        assert_eq!(refused(&keys(2, G, V).sender(EndpointId(2)), 9, b"header"), Some(Reject::BadTag));
        // Cut short.
        for cut in 0..b.len() {
            let want = if cut < TAG_LEN { Reject::Truncated } else { Reject::BadTag };
            assert_eq!(open(&me, 9, b"header", &mut b[..cut].to_vec()).err(), Some(want), "cut at {cut}");
        }
        assert_eq!(format!("{:?}", GroupSecret::new([1; 32])), "GroupSecret(..)", "no key in logs");
    }

    /// bolero: arbitrary bytes under any packet number and header never open (and never
    /// panic); nor do arbitrary mutations of a sealed datagram.
    #[test]
    fn arbitrary_bytes_and_mutations_never_open() {
        let k = keys(1, G, V).sender(EndpointId(2));
        bolero::check!().with_type::<(u64, Vec<u8>, Vec<u8>)>().for_each(|(pn, aad, body)| {
            assert!(open(&k, *pn, aad, &mut body.clone()).is_err());
        });
        let good = sealed(&k, 1, b"header");
        bolero::check!().with_type::<(u16, u8, u8)>().for_each(|&(at, xor, cut)| {
            let mut b = good.clone();
            let at = usize::from(at) % b.len();
            b[at] ^= xor.max(1);
            b.truncate(b.len() - usize::from(cut) % 2 * at.min(TAG_LEN));
            assert!(open(&k, 1, b"header", &mut b).is_err());
        });
    }

    #[test]
    fn the_window_refuses_replays_and_stale_numbers() {
        let mut w = Window::default();
        assert_eq!(w.check(5), Ok(()));
        w.record(5);
        assert_eq!(w.check(5), Err(Reject::Replay));
        // Out of order within the window: once each.
        for pn in [3, 4, 1] {
            assert_eq!(w.check(pn), Ok(()));
            w.record(pn);
            assert_eq!(w.check(pn), Err(Reject::Replay));
        }
        assert_eq!(w.check(2), Ok(()), "never opened");
        // A jump within the window keeps what was below it.
        w.record(100);
        assert_eq!((w.check(5), w.check(6), w.check(99)), (Err(Reject::Replay), Ok(()), Ok(())));
        // The window's lower edge.
        w.record(100 + WINDOW - 1);
        assert_eq!(w.check(100), Err(Reject::Replay), "the last number the window holds");
        assert_eq!(w.check(99), Err(Reject::Stale));
        assert_eq!(w.check(101), Ok(()));
        // A jump past the whole window forgets it all, and nothing below is new.
        let top = 100 + WINDOW - 1;
        w.record(top + 3 * WINDOW);
        assert_eq!(w.check(top + 3 * WINDOW - 1), Ok(()));
        assert_eq!(w.check(top + 3 * WINDOW), Err(Reject::Replay));
        assert_eq!(w.check(top + 2 * WINDOW), Err(Reject::Stale));
        // Bits of numbers skipped over were cleared, not left from a lap before.
        let mut v = Window::default();
        v.record(1);
        v.record(1 + WINDOW + 10);
        assert_eq!(v.check(1 + WINDOW), Ok(()), "{:?}", v.top);
    }
}
