//! The authentication plugins the probe speaks: `mysql_native_password`,
//! `caching_sha2_password` and `sha256_password`.

use rsa::pkcs8::DecodePublicKey;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// `mysql_native_password`.
pub const NATIVE: &str = "mysql_native_password";
/// `caching_sha2_password`, MySQL 8's default.
pub const CACHING_SHA2: &str = "caching_sha2_password";
/// `sha256_password`, MySQL 5.6–8.0's RSA-only plugin.
pub const SHA256: &str = "sha256_password";

/// Whether the probe can answer `plugin`.
pub fn supported(plugin: &str) -> bool {
    matches!(plugin, NATIVE | CACHING_SHA2 | SHA256)
}

/// `caching_sha2_password`'s AuthMoreData: the server found the password in its cache.
pub const FAST_AUTH_OK: u8 = 0x03;
/// `caching_sha2_password`'s AuthMoreData: the server needs the clear password.
pub const FULL_AUTH_NEEDED: u8 = 0x04;
/// `caching_sha2_password`: the client asks for the server's RSA public key.
pub const REQUEST_PUBLIC_KEY_SHA2: u8 = 0x02;
/// `sha256_password`: the client asks for the server's RSA public key.
pub const REQUEST_PUBLIC_KEY_SHA256: u8 = 0x01;

/// `mysql_native_password`: SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))).
/// An empty password answers with nothing.
pub fn scramble_native(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stage2);
    let mask = h.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password`'s fast path:
/// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce).
/// An empty password answers with nothing.
pub fn scramble_sha2(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(nonce);
    let mask = h.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// The first answer of `plugin` to `nonce` (after the handshake or an AuthSwitchRequest).
///
/// `sha256_password` needs the server's public key first, so it asks for it (or sends a
/// single NUL for an empty password, which needs no encryption).
pub fn first_response(plugin: &str, password: &[u8], nonce: &[u8]) -> Vec<u8> {
    match plugin {
        CACHING_SHA2 => scramble_sha2(password, nonce),
        SHA256 if password.is_empty() => vec![0],
        SHA256 => vec![REQUEST_PUBLIC_KEY_SHA256],
        _ => scramble_native(password, nonce),
    }
}

/// The full-authentication answer of `caching_sha2_password` and `sha256_password` over a
/// plain connection: (password + NUL) XOR the nonce (repeated), encrypted with RSA-OAEP
/// (SHA-1, as the server decrypts it) to the server's PEM public key.
pub fn encrypt_password(password: &[u8], nonce: &[u8], pem: &[u8]) -> Result<Vec<u8>, String> {
    let pem = std::str::from_utf8(pem)
        .map_err(|_| "the server's public key is not PEM text".to_string())?;
    let key = rsa::PublicKey::from_public_key_pem(pem.trim_end_matches('\0').trim())
        .map_err(|e| format!("cannot read the server's public key: {e}"))?;
    let mut plain = password.to_vec();
    plain.push(0);
    if !nonce.is_empty() {
        for (i, byte) in plain.iter_mut().enumerate() {
            *byte ^= nonce[i % nonce.len()];
        }
    }
    key.oaep_encrypt::<Sha1>(&plain)
        .map_err(|e| format!("cannot encrypt the password with the server's public key: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn native_vectors() {
        // Connector/J's scramble as logged in kingshard's tests.
        assert_eq!(
            hex(&scramble_native(b"kingshard", b"@jx=d_3z42;sS$YrS)p|")),
            "fbc71db5ac3d7b51048d1a1d88c1677f34bcca11"
        );
        // The xp-framework rdbms test vector.
        assert_eq!(
            hex(&scramble_native(b"hello", b"12345678901234567890")),
            "7d50516e0e730b0b1b12fbaa1ba0876f3db2c4dd"
        );
        assert!(scramble_native(b"", b"12345678901234567890").is_empty());
    }

    #[test]
    fn native_stage2_matches_the_server_password_hash() {
        // MariaDB: SELECT PASSWORD('secret') = *14E65567ABDB5135D0CFD9A70B3032C179A49EE7,
        // which is SHA1(SHA1(password)): the server's side of the scramble.
        assert_eq!(
            hex(&Sha1::digest(Sha1::digest(b"secret"))),
            "14e65567abdb5135d0cfd9a70b3032c179a49ee7"
        );
    }

    #[test]
    fn sha2_vectors() {
        // go-sql-driver/mysql's TestSHA256Pass.
        let nonce = [
            10, 47, 74, 111, 75, 73, 34, 48, 88, 76, 114, 74, 37, 13, 3, 80, 82, 2, 23, 21,
        ];
        assert_eq!(
            hex(&scramble_sha2(b"secret", &nonce)),
            "f490e76f66d9d86665ce54d98c78d0acfe2fb0b08b423da807144873d30b312c"
        );
        assert_eq!(
            hex(&scramble_sha2(b"secret2", &nonce)),
            "abc3934a012cf342e876071c8ee202de51785b430258a7a0138bc79c4d800bc6"
        );
        assert!(scramble_sha2(b"", &nonce).is_empty());
    }

    #[test]
    fn first_responses() {
        let nonce = b"12345678901234567890";
        assert_eq!(first_response(NATIVE, b"hello", nonce).len(), 20);
        assert_eq!(first_response(CACHING_SHA2, b"hello", nonce).len(), 32);
        assert_eq!(first_response(SHA256, b"hello", nonce), vec![1]);
        assert_eq!(first_response(SHA256, b"", nonce), vec![0]);
        assert!(supported(CACHING_SHA2) && !supported("client_ed25519"));
    }

    /// A 1024-bit test key made with `openssl genpkey -algorithm RSA -pkeyopt
    /// rsa_keygen_bits:1024` for these tests only.
    pub const TEST_PRIVATE_KEY: &str = include_str!("../testdata/test-key.pem");
    pub const TEST_PUBLIC_KEY: &str = include_str!("../testdata/test-key.pub.pem");

    #[test]
    fn rsa_round_trip() {
        use rsa::pkcs8::DecodePrivateKey;
        let nonce = b"abcdefghijklmnopqrst";
        let sealed = encrypt_password(b"secret", nonce, TEST_PUBLIC_KEY.as_bytes()).unwrap();
        let key = rsa::PrivateKey::from_pkcs8_pem(TEST_PRIVATE_KEY).unwrap();
        let plain = key.oaep_decrypt::<Sha1>(&sealed).unwrap();
        let unmasked: Vec<u8> = plain
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ nonce[i % nonce.len()])
            .collect();
        assert_eq!(unmasked, b"secret\0");

        let err = encrypt_password(b"x", nonce, b"not a key").unwrap_err();
        assert!(err.contains("public key"), "{err}");
    }
}
