//! Frame protection, its primitives (the security issue's first part): keys per view and per
//! sender derived from a group secret, a datagram's body sealed and opened with AES-128-GCM,
//! and a replay window per sender. The cryptography is `ring`'s (AEAD and HKDF-SHA256),
//! picked by the measurement in `benches/aead.rs`; nothing here is a cipher, a MAC or a key
//! exchange of our own. AES-128-GCM rather than AES-256-GCM: 16 % less time per 64 KB
//! datagram here (`benches/aead.rs`), which at 64 KB messages is what kept a secured group
//! under 0.85 of an unprotected one; 128-bit keys are what TLS 1.3 and QUIC use by default,
//! and each is expanded from the 256-bit group secret by HKDF-SHA256.
//!
//! **Keys.** A view's key material is HKDF-SHA256 over the group secret, with the group and
//! the view as its context (`ViewKeys::derive`): a datagram of one view does not open in
//! another. Gossip (discovery, joins, merges: datagrams from outside a view) has key material
//! of its own, the group's (`ViewKeys::gossip`). Each sender seals with a key of its own,
//! expanded from the material with its id and its *incarnation* (`ViewKeys::sender`), a
//! random number the endpoint draws when it starts: so the nonce need only be unique per
//! incarnation, and it is the sender's packet number, which never repeats in one. (Ids are
//! addresses, and a fixed first view has the same id at every start: without the
//! incarnation a restarted member would reuse its nonces.)
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
//! **Member key pairs** (`Security::KeyPairs`, the second key mode): each member has an
//! `Identity` (a static X25519 key, `x25519-dalek`'s) and the group an `AllowList` of public
//! keys. Two members share a pairwise key (`ViewKeys::pair`: X25519, then HKDF-SHA256 with
//! both public keys and the group); nobody off the list has one with anybody. Gossip is
//! sealed for each listed receiver under the pairwise key, and each view's key is
//! drawn by its coordinator and sealed to each member of the view under the pairwise key
//! (`keyring`): a member left out of a view cannot read it, whatever it read before.
//!
//! The endpoint seals and opens its frames through a `keyring::Keyring`. Tested below (every
//! rejection reason, the window's edges, bolero over arbitrary bytes and mutations of a
//! sealed datagram), and in a whole endpoint by `thoth/tests/secure.rs`.

use crate::ids::{EndpointId, GroupId, ViewId};
use core::fmt;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use std::collections::BTreeMap;

/// Bytes of the tag `seal` appends.
pub const TAG_LEN: usize = 16;
/// Packet numbers a `Window` remembers below the highest (a multiple of 64).
pub const WINDOW: u64 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;

/// Labels of the key derivation, so keys for this use are never keys for another.
const SALT: &[u8] = b"thoth frame protection v1";
const VIEW_INFO: &[u8] = b"view";
const GOSSIP_INFO: &[u8] = b"gossip";
const SENDER_INFO: &[u8] = b"sender";
const PAIR_INFO: &[u8] = b"pair";

/// Public keys an `AllowList` holds at most: key-pair gossip carries 40 bytes for each.
pub const MAX_ALLOWED: usize = 512;

/// A group's pre-shared secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupSecret([u8; 32]);

impl GroupSecret {
    /// The secret of these 32 bytes (they should be uniformly random: see `generate`).
    pub fn new(bytes: [u8; 32]) -> GroupSecret {
        GroupSecret(bytes)
    }

    /// A fresh secret from the operating system's random source.
    pub fn generate() -> GroupSecret {
        GroupSecret(random())
    }

    /// The secret as a key file holds it: 64 hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// A secret from 64 hex digits (surrounding white space ignored), as `to_hex` writes it.
    pub fn from_hex(text: &str) -> Result<GroupSecret, KeyError> {
        from_hex(text).map(GroupSecret)
    }

    /// Reads a key file (`to_hex`'s text).
    pub fn read(path: &std::path::Path) -> Result<GroupSecret, KeyError> {
        GroupSecret::from_hex(&read(path)?)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn to_hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 bytes from 64 hex digits, surrounding white space ignored.
fn from_hex(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return Err(KeyError::Format);
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| KeyError::Format)?;
    }
    Ok(bytes)
}

fn read(path: &std::path::Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::Io(e.kind()))
}

/// A member's own key pair (member key pairs): a static X25519 secret. Its `Debug` shows
/// only the public key.
#[derive(Clone)]
pub struct Identity(x25519_dalek::StaticSecret);

/// A member's public key, as an allow-list names it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl Identity {
    /// The identity whose X25519 secret key is these 32 bytes.
    pub fn new(secret: [u8; 32]) -> Identity {
        Identity(x25519_dalek::StaticSecret::from(secret))
    }
    /// A fresh identity from the operating system's random source.
    pub fn generate() -> Identity {
        Identity::new(random())
    }
    /// Its public key, for the allow-lists of the groups it joins.
    pub fn public(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }
    /// The secret as an identity file holds it: 64 hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(self.0.as_bytes())
    }
    /// An identity from 64 hex digits (surrounding white space ignored), as `to_hex` writes it.
    pub fn from_hex(text: &str) -> Result<Identity, KeyError> {
        from_hex(text).map(Identity::new)
    }
    /// Reads an identity file (`to_hex`'s text).
    pub fn read(path: &std::path::Path) -> Result<Identity, KeyError> {
        Identity::from_hex(&read(path)?)
    }
}

/// Two identities are one if their public keys are.
impl PartialEq for Identity {
    fn eq(&self, other: &Identity) -> bool {
        self.public() == other.public()
    }
}

impl Eq for Identity {}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.public())
    }
}

impl PublicKey {
    /// The first 8 bytes, which name the key in datagrams (an allow-list refuses two keys
    /// with one id).
    pub fn id(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
    /// A public key from 64 hex digits (surrounding white space ignored), as `Display` writes it.
    pub fn from_hex(text: &str) -> Result<PublicKey, KeyError> {
        from_hex(text).map(PublicKey)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// The public keys of the members a group admits (member key pairs), by key id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList(BTreeMap<u64, PublicKey>);

impl AllowList {
    /// A list of `keys`; at most `MAX_ALLOWED`, and no two with one id.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Result<AllowList, KeyError> {
        let mut list = BTreeMap::new();
        for k in keys {
            if list.insert(k.id(), k).is_some_and(|old| old != k) || list.len() > MAX_ALLOWED {
                return Err(KeyError::AllowList);
            }
        }
        Ok(AllowList(list))
    }
    /// An allow-list file's text: a public key (64 hex digits) per line; blank lines and
    /// what follows a `#` are ignored.
    pub fn parse(text: &str) -> Result<AllowList, KeyError> {
        let keys = text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty());
        AllowList::new(keys.map(PublicKey::from_hex).collect::<Result<Vec<_>, _>>()?)
    }
    /// Reads an allow-list file (see `parse`).
    pub fn read(path: &std::path::Path) -> Result<AllowList, KeyError> {
        AllowList::parse(&read(path)?)
    }
    /// The keys, in key id order.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.0.values()
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the list admits nobody.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a key could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The file could not be read.
    Io(std::io::ErrorKind),
    /// Not 64 hex digits.
    Format,
    /// An allow-list with two keys of one id, or more than `MAX_ALLOWED`.
    AllowList,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Io(kind) => write!(f, "cannot read the key file: {kind}"),
            KeyError::Format => f.write_str("a key file holds 64 hex digits (make one with --keygen)"),
            KeyError::AllowList => {
                write!(f, "an allow-list holds at most {MAX_ALLOWED} keys, no two alike in their first 8 bytes")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// A number from the operating system's random source: for what must differ across
/// processes and restarts (an incarnation's nonce), never for the core's own choices, which
/// take their randomness as an argument.
pub fn random_u64() -> u64 {
    u64::from_le_bytes(random())
}

/// Bytes from the operating system's random source (ring's).
fn random<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut out).expect("the operating system's random source");
    out
}

/// How an endpoint protects its datagrams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// None: frames carry a CRC, and anyone who reaches the group can speak for any member.
    /// An explicit choice.
    Insecure,
    /// Every datagram sealed under keys derived from a pre-shared group secret, with this
    /// endpoint's incarnation (see the module doc: never the same twice for one id).
    Shared {
        /// The group's secret: every member has the same.
        secret: GroupSecret,
        /// This endpoint's incarnation: never the same twice for one id (`Security::shared`
        /// draws it at random).
        incarnation: u64,
    },
    /// Every datagram sealed or authenticated under keys this member shares with each member
    /// on `allow` (see the module doc), with this endpoint's incarnation; each view's key is
    /// drawn from `seed` by the view's coordinator. Needs a membership layer (it hands out
    /// the keys).
    KeyPairs {
        /// This member's key pair.
        identity: Identity,
        /// The public keys of the members the group admits.
        allow: AllowList,
        /// This endpoint's incarnation: never the same twice for one id
        /// (`Security::key_pairs` draws it at random).
        incarnation: u64,
        /// Seeds the keys this member draws itself (a view's key when it coordinates, the
        /// one-time keys of its gossip); `Security::key_pairs` draws it at random.
        seed: GroupSecret,
    },
}

impl Security {
    /// Sealed under `secret`, with an incarnation drawn from the operating system's random
    /// source.
    pub fn shared(secret: GroupSecret) -> Security {
        Security::Shared { secret, incarnation: u64::from_le_bytes(random()) }
    }
    /// Member key pairs, the incarnation and the seed drawn from the operating system's
    /// random source.
    pub fn key_pairs(identity: Identity, allow: AllowList) -> Security {
        Security::KeyPairs { identity, allow, incarnation: u64::from_le_bytes(random()), seed: GroupSecret::generate() }
    }
    /// Whether datagrams are sealed (anything but `Insecure`).
    pub fn is_secure(&self) -> bool {
        !matches!(self, Security::Insecure)
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
    /// Member key pairs: its sender's key is not on this member's allow-list, or it carries
    /// nothing for this member's key.
    NotAllowed,
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
    /// The key material of `view` in `group` (under the group secret, or, with member key
    /// pairs, the key its coordinator drew).
    pub fn derive(secret: &GroupSecret, group: GroupId, view: ViewId) -> ViewKeys {
        let mut context = [0u8; 24];
        context[..8].copy_from_slice(&group.0.to_le_bytes());
        context[8..16].copy_from_slice(&view.ltime.to_le_bytes());
        context[16..].copy_from_slice(&view.coord.0.to_le_bytes());
        ViewKeys::expand(secret, VIEW_INFO, &context)
    }

    /// The key material of `group`'s gossip, whatever the view.
    pub fn gossip(secret: &GroupSecret, group: GroupId) -> ViewKeys {
        ViewKeys::expand(secret, GOSSIP_INFO, &group.0.to_le_bytes())
    }

    /// The key material `me` shares with `peer` in `group` (each computes the same), or
    /// `None` for a peer key that would give a weak shared secret (a low-order point).
    pub fn pair(me: &Identity, peer: &PublicKey, group: GroupId) -> Option<ViewKeys> {
        let shared = me.0.diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return None;
        }
        let (a, b) = (me.public().min(*peer), me.public().max(*peer));
        let context = [&group.0.to_le_bytes()[..], &a.0, &b.0].concat();
        Some(ViewKeys::expand(&GroupSecret(*shared.as_bytes()), PAIR_INFO, &context))
    }

    fn expand(secret: &GroupSecret, info: &[u8], context: &[u8]) -> ViewKeys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&secret.0);
        let mut material = [0u8; 32];
        prk.expand(&[info, context], Len32)
            .and_then(|okm| okm.fill(&mut material))
            .expect("32 bytes are within HKDF-SHA256's output");
        ViewKeys { prk: hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &material) }
    }

    /// The key of the sender `src` in its incarnation `incarnation`.
    pub fn sender(&self, src: EndpointId, incarnation: u64) -> SenderKey {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&src.0.to_le_bytes());
        id[8..].copy_from_slice(&incarnation.to_le_bytes());
        let info = [SENDER_INFO, &id];
        let key = self.prk.expand(&info, &AES_128_GCM).expect("a key's length is within HKDF-SHA256's output");
        SenderKey(LessSafeKey::new(UnboundKey::from(key)))
    }
}

/// Keys drawn one after another from a seed (HKDF-SHA256 as a PRF over a counter): the same
/// seed, the same keys, so that a simulated run replays.
pub(crate) struct Drbg {
    prk: hkdf::Prk,
    drawn: u64,
}

impl Drbg {
    pub(crate) fn new(seed: &GroupSecret) -> Drbg {
        Drbg { prk: hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&seed.0), drawn: 0 }
    }

    pub(crate) fn draw(&mut self) -> GroupSecret {
        self.drawn += 1;
        let mut out = [0u8; 32];
        self.prk
            .expand(&[b"draw", &self.drawn.to_le_bytes()], Len32)
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes are within HKDF-SHA256's output");
        GroupSecret(out)
    }
}

impl SenderKey {
    /// A key of its own for one datagram (key-pair gossip: drawn for it, and sent wrapped
    /// for each receiver).
    pub(crate) fn once(key: &[u8; 16]) -> SenderKey {
        SenderKey(LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).expect("16 bytes make an AES-128 key")))
    }
}

fn nonce(pn: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&pn.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Encrypts `body` in place under the sender's packet number `pn` (never twice with one key)
/// and returns the tag, which goes right after it; `aad` is authenticated, not hidden.
pub fn seal(key: &SenderKey, pn: u64, aad: &[u8], body: &mut [u8]) -> [u8; TAG_LEN] {
    let tag = key.0.seal_in_place_separate_tag(nonce(pn), Aad::from(aad), body).expect("a body within AES-GCM's limit");
    tag.as_ref().try_into().expect("AES-GCM's tag is 16 bytes")
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
        let tag = seal(key, pn, aad, &mut b);
        b.extend_from_slice(&tag);
        b
    }

    #[test]
    fn a_sealed_body_opens_with_its_key_and_header_only() {
        let k = keys(1, G, V);
        let me = k.sender(EndpointId(2), 0);
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
        assert_eq!(refused(&k.sender(EndpointId(3), 0), 9, b"header"), Some(Reject::BadTag));
        let other_view = ViewId { ltime: 4, ..V };
        assert_eq!(refused(&keys(1, G, other_view).sender(EndpointId(2), 0), 9, b"header"), Some(Reject::BadTag));
        assert_eq!(refused(&keys(1, GroupId(8), V).sender(EndpointId(2), 0), 9, b"header"), Some(Reject::BadTag));
        assert_eq!(refused(&keys(2, G, V).sender(EndpointId(2), 0), 9, b"header"), Some(Reject::BadTag));
        assert_eq!(refused(&k.sender(EndpointId(2), 1), 9, b"header"), Some(Reject::BadTag), "another incarnation");
        let gossip = ViewKeys::gossip(&GroupSecret::new([1; 32]), G);
        assert_eq!(refused(&gossip.sender(EndpointId(2), 0), 9, b"header"), Some(Reject::BadTag), "gossip's key");
        // Cut short.
        for cut in 0..b.len() {
            let want = if cut < TAG_LEN { Reject::Truncated } else { Reject::BadTag };
            assert_eq!(open(&me, 9, b"header", &mut b[..cut].to_vec()).err(), Some(want), "cut at {cut}");
        }
        assert_eq!(format!("{:?}", GroupSecret::new([1; 32])), "GroupSecret(..)", "no key in logs");
        let shared = Security::Shared { secret: GroupSecret::new([1; 32]), incarnation: 3 };
        assert!(!format!("{shared:?}").contains("1, 1"), "{shared:?}");
    }

    /// bolero: arbitrary bytes under any packet number and header never open (and never
    /// panic); nor do arbitrary mutations of a sealed datagram.
    #[test]
    fn arbitrary_bytes_and_mutations_never_open() {
        let k = keys(1, G, V).sender(EndpointId(2), 0);
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
    fn secrets_go_to_key_files_and_back() {
        let s = GroupSecret::generate();
        assert_ne!(s, GroupSecret::generate(), "fresh each time");
        assert_eq!(GroupSecret::from_hex(&format!("{}\n", s.to_hex())), Ok(s.clone()));
        assert_eq!(s.to_hex().len(), 64);
        for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64), &"é".repeat(32)] {
            assert_eq!(GroupSecret::from_hex(bad), Err(KeyError::Format), "{bad:?}");
        }
        let Security::Shared { incarnation: a, .. } = Security::shared(s.clone()) else { unreachable!() };
        let Security::Shared { incarnation: b, .. } = Security::shared(s) else { unreachable!() };
        assert_ne!(a, b, "an incarnation is drawn at each start");
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
