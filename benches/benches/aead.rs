//! The AEAD candidates for frame protection, side by side: seal then open of one datagram
//! (1 KB and 64 KB payloads, 48 bytes of associated data as a frame header would give),
//! ns per datagram and GB/s, the median of several rounds. `cargo bench -p thoth-benches
//! --bench aead`. What it measured picked the crate (see the security issue's note).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 7;

fn bench(name: &str, size: usize, mut f: impl FnMut(&mut Vec<u8>, u64)) {
    let iters = (64 * 1024 * 1024 / size.max(1)) as u64;
    let mut buf = vec![0x5au8; size];
    let mut per_op: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for n in 0..iters {
                f(&mut buf, n);
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    let ns = per_op[ROUNDS / 2];
    println!("{name:<34} {size:>6} B {ns:>10.0} ns  {:>6.2} GB/s (seal + open)", size as f64 / ns);
}

fn nonce12(n: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_le_bytes());
    b
}

/// Seal then open with one of RustCrypto's AEADs (96-bit nonces).
fn rust_crypto<A: AeadInPlace<NonceSize = aes_gcm::aead::consts::U12>>(name: &str, size: usize, a: &A, ad: &[u8]) {
    bench(name, size, |buf, n| {
        let nonce = nonce12(n);
        let tag = a.encrypt_in_place_detached((&nonce).into(), ad, buf).expect("seals");
        a.decrypt_in_place_detached((&nonce).into(), ad, buf, &tag).expect("opens");
        black_box(&buf);
    });
}

fn main() {
    let key = [7u8; 32];
    let ad = [1u8; 48];
    for size in [1024, 65_000] {
        for (name, alg) in [
            ("ring AES-256-GCM", &ring::aead::AES_256_GCM),
            ("ring AES-128-GCM", &ring::aead::AES_128_GCM),
            ("ring ChaCha20-Poly1305", &ring::aead::CHACHA20_POLY1305),
        ] {
            let k =
                ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(alg, &key[..alg.key_len()]).expect("a key"));
            bench(name, size, |buf, n| {
                let nonce = ring::aead::Nonce::assume_unique_for_key(nonce12(n));
                let tag = k.seal_in_place_separate_tag(nonce, ring::aead::Aad::from(&ad), buf).expect("seals");
                let nonce = ring::aead::Nonce::assume_unique_for_key(nonce12(n));
                buf.extend_from_slice(tag.as_ref());
                let plain = k.open_in_place(nonce, ring::aead::Aad::from(&ad), buf).expect("opens").len();
                buf.truncate(plain);
                black_box(&buf);
            });
        }
        rust_crypto(
            "RustCrypto aes-gcm (AES-256-GCM)",
            size,
            &aes_gcm::Aes256Gcm::new_from_slice(&key).expect("a key"),
            &ad,
        );
        let cha = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&key).expect("a key");
        rust_crypto("RustCrypto chacha20poly1305", size, &cha, &ad);
    }
}
