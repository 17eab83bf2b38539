//! Random bytes from the host (`wasi:random`, which every probe may use), for the nonces
//! and ids protocols ask for: a SCRAM client nonce, an MQTT client id, a DNS query id.
//!
//! ```
//! use healthprobe_sdk::random;
//!
//! let id = random::bytes(2);
//! assert_eq!(id.len(), 2);
//! // 18 random bytes as 24 printable characters (no `,`: SCRAM's nonces may not have one).
//! let nonce = random::nonce(18);
//! assert_eq!(nonce.len(), 24);
//! assert!(nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
//! ```

/// `n` random bytes from the host's cryptographically secure source.
#[cfg(all(target_os = "wasi", target_env = "p2"))]
pub fn bytes(n: usize) -> Vec<u8> {
    let len = u64::try_from(n).unwrap_or(u64::MAX);
    wasi::random::random::get_random_bytes(len)
}

/// `n` random bytes from the host's cryptographically secure source.
///
/// Natively (a probe's `cargo test`) they come from the operating system
/// (`/dev/urandom`).
#[cfg(not(all(target_os = "wasi", target_env = "p2")))]
pub fn bytes(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut out = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .expect("reading /dev/urandom for random bytes");
    out
}

/// `n` random bytes as base64 text (`A–Z a–z 0–9 + /`, no padding): a nonce or an id
/// that protocols carry as text.
pub fn nonce(n: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_have_the_length_base64_gives_and_differ() {
        assert_eq!(nonce(0), "");
        assert_eq!(nonce(1).len(), 2);
        assert_eq!(nonce(2).len(), 3);
        assert_eq!(nonce(3).len(), 4);
        assert_ne!(nonce(18), nonce(18));
        assert_ne!(bytes(16), vec![0; 16]);
    }
}
