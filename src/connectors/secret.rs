//! Connector secrets at rest: XChaCha20-Poly1305 with a random nonce per value, under a key
//! the operator gives in `QM_SECRET_KEY` (64 hex digits) or a file named by
//! `QM_SECRET_KEY_FILE`. Stored as `v1:` and the hex of nonce and ciphertext; a value that was
//! changed, or a different key, does not decrypt. Each secret is sealed for what it belongs to
//! (its context, e.g. a SCIM system's kind and base URL, as associated data): pointed
//! elsewhere by a changed row, it does not open, so it is never sent to another host.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The key that seals connector secrets. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// From 64 hex digits (surrounding whitespace ignored, as a file has a trailing newline).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "the secret key must be 64 hex digits".to_owned())?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|_| "the secret key must be 64 hex digits (32 bytes)".to_owned())?;
        Ok(SecretKey(key))
    }

    /// The operator's key: `QM_SECRET_KEY`, else the file `QM_SECRET_KEY_FILE` names; `None`
    /// when neither is set (connectors that need a secret cannot be added then).
    pub fn from_env() -> Result<Option<Self>, String> {
        if let Ok(hex) = std::env::var("QM_SECRET_KEY") {
            return Self::from_hex(&hex).map(Some);
        }
        if let Ok(path) = std::env::var("QM_SECRET_KEY_FILE") {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("QM_SECRET_KEY_FILE {path}: {e}"))?;
            return Self::from_hex(&text).map(Some);
        }
        Ok(None)
    }

    pub fn seal(&self, plain: &str, context: &str) -> Result<String, String> {
        let nonce: [u8; 24] = rand::random();
        let sealed = XChaCha20Poly1305::new(&self.0.into())
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| "a secret could not be encrypted".to_owned())?;
        Ok(format!("v1:{}{}", hex::encode(nonce), hex::encode(sealed)))
    }

    pub fn open(&self, stored: &str, context: &str) -> Result<String, String> {
        let bytes = stored
            .strip_prefix("v1:")
            .and_then(|h| hex::decode(h).ok())
            .filter(|b| b.len() > 24)
            .ok_or_else(|| "a stored secret is not readable".to_owned())?;
        let (nonce, sealed) = bytes.split_at(24);
        let plain = XChaCha20Poly1305::new(&self.0.into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: context.as_bytes() })
            .map_err(|_| {
                "a stored secret does not open with this key for this system (was QM_SECRET_KEY, or the system's address, changed?)"
                    .to_owned()
            })?;
        String::from_utf8(plain).map_err(|_| "a stored secret is not text".to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_secret_opens_with_its_key_only_and_is_never_stored_plain() {
        let key = SecretKey::from_hex(&"ab".repeat(32)).unwrap();
        let here = "scim https://idp.example/scim/v2";
        let sealed = key.seal("token-123", here).unwrap();
        assert!(!sealed.contains("token-123"));
        assert_ne!(sealed, key.seal("token-123", here).unwrap(), "a fresh nonce each time");
        assert_eq!(key.open(&sealed, here).unwrap(), "token-123");
        assert!(key.open(&sealed, "scim https://attacker.example/v2").is_err(), "sealed for its system only");
        let other = SecretKey::from_hex(&"cd".repeat(32)).unwrap();
        assert!(other.open(&sealed, here).is_err());
        let mut tampered = sealed.clone();
        tampered.replace_range(sealed.len() - 2.., if sealed.ends_with("00") { "01" } else { "00" });
        assert!(key.open(&tampered, here).is_err());
        assert!(SecretKey::from_hex("short").is_err());
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }
}
