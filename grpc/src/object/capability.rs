//! Capabilities, as Amoeba has them: a call on a replicated object carries one — the
//! object, the rights it grants, and a check field, a keyed hash of the object and the
//! rights under the object's secret — and the replica that runs the call checks it first. A
//! forged capability, or one whose rights were widened, has a check field that does not
//! match: the call is refused (`Fault::Failed`) and counted (`ObjStats::refused`). Whoever
//! holds the secret mints capabilities (`Capability::mint`); one with fewer rights is minted
//! anew with them.
//!
//! The keyed hash is BLAKE3 in its keyed mode (a MAC by design), from its authors' `blake3`
//! crate; the whole 32-byte hash is the check field, compared in constant time by
//! `blake3::Hash`. Tested below (mint, verify, forged, widened, other object, wire form).

use thoth_stack::Bytes;

/// The right to run read-only operations.
pub const READ: u8 = 1;
/// The right to run mutating operations.
pub const WRITE: u8 = 2;

/// An object's secret: whoever holds it mints capabilities and checks them. Its `Debug`
/// does not show it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret(pub [u8; 32]);

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A capability for one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// The object (its group's id).
    pub object: u64,
    /// `READ`, `WRITE`, or both.
    pub rights: u8,
    /// The keyed BLAKE3 hash of the object and the rights under the object's secret.
    pub check: [u8; 32],
}

/// Bytes of a capability on the wire: the object, the rights, the check field.
pub const LEN: usize = 8 + 1 + 32;

fn check_field(secret: &Secret, object: u64, rights: u8) -> blake3::Hash {
    let mut msg = [0u8; 9];
    msg[..8].copy_from_slice(&object.to_le_bytes());
    msg[8] = rights;
    blake3::keyed_hash(&secret.0, &msg)
}

impl Capability {
    /// The capability for `object` with `rights`, under `secret`.
    pub fn mint(secret: &Secret, object: u64, rights: u8) -> Capability {
        Capability { object, rights, check: *check_field(secret, object, rights).as_bytes() }
    }

    /// Whether it is genuine for `object` under `secret` and grants every right in `need`.
    pub fn grants(&self, secret: &Secret, object: u64, need: u8) -> bool {
        self.object == object
            && self.rights & need == need
            && check_field(secret, self.object, self.rights) == blake3::Hash::from_bytes(self.check)
    }

    /// Appends its `LEN` bytes to `out`: the object, the rights, the check field.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.object.to_le_bytes());
        out.push(self.rights);
        out.extend_from_slice(&self.check);
    }

    /// Reads one from the front of `r`, leaving the rest.
    pub fn decode(r: &mut &[u8]) -> Result<Capability, String> {
        let (c, rest) = r.split_first_chunk::<LEN>().ok_or("a capability is truncated")?;
        *r = rest;
        let object = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
        Ok(Capability { object, rights: c[8], check: c[9..].try_into().expect("32 bytes") })
    }
}

/// The arguments of a call with the capability it carries in front (a 0 byte: none).
pub fn wrap(cap: Option<&Capability>, op: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(1 + LEN + op.len());
    match cap {
        Some(c) => {
            v.push(1);
            c.encode(&mut v);
        }
        None => v.push(0),
    }
    v.extend_from_slice(op);
    Bytes::from(v)
}

/// The capability a call carries, and its operation.
pub fn unwrap(args: &[u8]) -> Result<(Option<Capability>, &[u8]), String> {
    let (&tag, mut r) = args.split_first().ok_or("no capability tag")?;
    let cap = match tag {
        0 => None,
        1 => Some(Capability::decode(&mut r)?),
        t => return Err(format!("a capability tag is 0 or 1, not {t}")),
    };
    Ok((cap, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Secret = Secret([7; 32]);

    #[test]
    fn genuine_capabilities_grant_their_rights_and_no_more() {
        let rw = Capability::mint(&S, 42, READ | WRITE);
        let r = Capability::mint(&S, 42, READ);
        assert!(rw.grants(&S, 42, WRITE) && rw.grants(&S, 42, READ) && r.grants(&S, 42, READ));
        assert!(!r.grants(&S, 42, WRITE), "a read-only capability does not write");
        assert!(!rw.grants(&S, 43, READ), "another object");
        assert!(!rw.grants(&Secret([8; 32]), 42, READ), "another secret");
        let widened = Capability { rights: READ | WRITE, ..r };
        assert!(!widened.grants(&S, 42, WRITE), "rights widened without the secret");
        let mut forged = rw;
        forged.check[0] ^= 1;
        assert!(!forged.grants(&S, 42, READ), "a flipped bit");
        assert_eq!(format!("{S:?}"), "Secret(..)", "the secret is not shown");
    }

    #[test]
    fn the_wire_form_round_trips_and_truncation_is_an_error() {
        let c = Capability::mint(&S, 9, WRITE);
        let args = wrap(Some(&c), b"op");
        assert_eq!(unwrap(&args), Ok((Some(c), &b"op"[..])));
        assert_eq!(unwrap(&wrap(None, b"op")), Ok((None, &b"op"[..])));
        for cut in 0..1 + LEN {
            assert!(unwrap(&args[..cut]).is_err(), "cut at {cut}");
        }
        assert!(unwrap(&[2, 0]).is_err());
    }
}
