//! API tokens: what one may do (its scopes, never beyond its owner's rights), and how its
//! secret is made and recognised (only a SHA-256 of it is kept).

use sha2::Digest;

/// What an API token may do. A token acts as its owner, with only these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read what the owner may see (every `GET`).
    Read,
    /// Ask for access, cancel their requests.
    Request,
    /// Decide the requests waiting for the owner.
    Decide,
    /// Use the owner's administrative roles (without it, the token has none).
    Admin,
    /// Read the operational metrics at `/metrics` (only an administrator's token; nothing
    /// else).
    Metrics,
    /// Provision people and groups through SCIM at `/scim/v2` (only an administrator's
    /// token; nothing else).
    Scim,
}

impl Scope {
    pub const ALL: [Scope; 6] = [Scope::Read, Scope::Request, Scope::Decide, Scope::Admin, Scope::Metrics, Scope::Scim];

    pub fn word(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Request => "request",
            Scope::Decide => "decide",
            Scope::Admin => "admin",
            Scope::Metrics => "metrics",
            Scope::Scim => "scim",
        }
    }

    pub fn parse(word: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.word() == word)
    }
}

/// A token's scopes, each once, in a fixed order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Scopes from words separated by spaces or commas (`read,request`). At least one; an
    /// unknown word is refused by name.
    pub fn parse(text: &str) -> Result<Scopes, String> {
        let mut scopes = Vec::new();
        for word in text.split([' ', ',']).map(str::trim).filter(|w| !w.is_empty()) {
            let scope = Scope::parse(&word.to_ascii_lowercase()).ok_or_else(|| {
                let shown: String = word.chars().take(20).collect();
                format!("\"{shown}\" is not a scope: use read, request, decide, admin, metrics or scim")
            })?;
            scopes.push(scope);
        }
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err("a token needs at least one scope: read, request, decide, admin, metrics or scim".to_owned());
        }
        Ok(Scopes(scopes))
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<&str> = self.0.iter().map(|s| s.word()).collect();
        f.write_str(&words.join(" "))
    }
}

/// Every secret starts with this, so that one found in a log or a repository is recognised.
pub const SECRET_PREFIX: &str = "qm_";

/// A new secret: the prefix and 32 random bytes (base64url, 43 characters).
pub fn new_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What is kept of a secret, and looked up: its SHA-256, in hex. `None` for something that
/// cannot be a secret (wrong prefix or length), which is then not looked up at all.
pub fn secret_hash(secret: &str) -> Option<String> {
    let well_formed = secret.len() == SECRET_PREFIX.len() + 43
        && secret.starts_with(SECRET_PREFIX)
        && secret[SECRET_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| hex::encode(sha2::Sha256::digest(secret.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_from_words_and_unknown_ones_refused() {
        assert_eq!(Scopes::parse("request, read read").map(|s| s.to_string()), Ok("read request".to_owned()));
        assert!(Scopes::parse("read,sudo").unwrap_err().contains("\"sudo\" is not a scope"));
        assert!(Scopes::parse(" , ").is_err());
        assert!(Scopes::parse("ADMIN").is_ok_and(|s| s.has(Scope::Admin)));
    }

    #[test]
    fn a_secret_is_recognised_only_in_its_own_shape() {
        let secret = new_secret();
        assert_eq!(secret.len(), 46);
        let hash = secret_hash(&secret).unwrap_or_default();
        assert_eq!(hash.len(), 64);
        assert_ne!(new_secret(), secret, "random");
        assert_eq!(secret_hash("qm_short"), None);
        assert_eq!(secret_hash(&secret.replace("qm_", "xx_")), None);
        assert_eq!(secret_hash(&format!("{}+", &secret[..45])), None, "not base64url");
    }
}
