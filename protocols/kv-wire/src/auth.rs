//! The challenge–response MAC of the KV handshake. The secret never
//! travels: the server sends a fresh random nonce, the client answers with
//! `HMAC-SHA256(secret, CONTEXT ‖ nonce ‖ access key)`, the server computes
//! the same and compares in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Domain separation: a MAC for this protocol is useless anywhere else.
pub const CONTEXT: &[u8] = b"nitrofs-kv-auth-v1\0";
/// Length of the server's challenge.
pub const NONCE_LEN: usize = 32;
/// Length of the MAC.
pub const MAC_LEN: usize = 32;

fn mac(secret: &[u8], nonce: &[u8; NONCE_LEN], access_key: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail; an empty key is
    // still a key.
    let mut m = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    m.update(CONTEXT);
    m.update(nonce);
    m.update(access_key.as_bytes());
    m
}

/// The client's answer to a challenge.
pub fn answer(secret: &[u8], nonce: &[u8; NONCE_LEN], access_key: &str) -> [u8; MAC_LEN] {
    let out = mac(secret, nonce, access_key).finalize().into_bytes();
    let mut a = [0u8; MAC_LEN];
    a.copy_from_slice(&out);
    a
}

/// Whether `given` answers the challenge for this secret (constant time).
pub fn verify(secret: &[u8], nonce: &[u8; NONCE_LEN], access_key: &str, given: &[u8]) -> bool {
    mac(secret, nonce, access_key).verify_slice(given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_secret_verifies_and_anything_else_does_not() {
        let nonce = [7u8; NONCE_LEN];
        let a = answer(b"secret", &nonce, "AKID");
        assert!(verify(b"secret", &nonce, "AKID", &a));
        assert!(!verify(b"Secret", &nonce, "AKID", &a));
        assert!(!verify(b"secret", &[8u8; NONCE_LEN], "AKID", &a));
        assert!(!verify(b"secret", &nonce, "AKIE", &a));
        assert!(!verify(b"secret", &nonce, "AKID", &a[..31]));
    }
}
