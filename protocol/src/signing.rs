//! HMAC-SHA256 signatures and the derivation of each agent's key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// An agent's signing key: HMAC-SHA256 of `lockerx-agent:{agent_id}` under the
/// deployment's `AGENT_SIGNING_SECRET`, as lower-case hex. Workers derive it;
/// the agent is given it.
pub fn agent_key(secret: &[u8], agent_id: &str) -> String {
    sign(secret, format!("lockerx-agent:{agent_id}").as_bytes())
}

/// Lower-case hex HMAC-SHA256 of `bytes` under `key`.
pub fn sign(key: &[u8], bytes: &[u8]) -> String {
    hex(&mac(key, bytes).finalize().into_bytes())
}

/// True when `sig` (lower- or upper-case hex) is the signature of `bytes`
/// under `key`; compared in constant time.
pub fn verify(key: &[u8], bytes: &[u8], sig: &str) -> bool {
    unhex(sig).is_some_and(|sig| mac(key, bytes).verify_slice(&sig).is_ok())
}

fn mac(key: &[u8], bytes: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(bytes);
    mac
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_keys_are_per_agent_hex() {
        let key = agent_key(b"secret", "a");
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(key, agent_key(b"secret", "b"));
        assert_ne!(key, agent_key(b"other", "a"));
    }

    #[test]
    fn signatures_verify_only_their_bytes_and_key() {
        let sig = sign(b"k", b"hello");
        assert!(verify(b"k", b"hello", &sig));
        assert!(verify(b"k", b"hello", &sig.to_uppercase()));
        assert!(!verify(b"k", b"hellO", &sig));
        assert!(!verify(b"K", b"hello", &sig));
        assert!(!verify(b"k", b"hello", &sig[1..]));
        assert!(!verify(b"k", b"hello", "zz"));
    }
}
