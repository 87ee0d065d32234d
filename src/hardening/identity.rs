//! Identities the server issues in hardened mode: `admin` + twelve digits, unique among the names
//! this instance issued, optionally signed with HMAC-SHA256 in a companion cookie.
//!
//! The name keeps the legacy's `admin` + digits form, so the unchanged pages (and the agent's
//! `onclick="replay('NAME')"`) need nothing new; twelve digits instead of three make a clash
//! between instances about one in 10^12 per pair instead of one in 900, and this instance never
//! issues a name twice.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The agent's name, hard-coded in the legacy pages.
pub const AGENT: &[u8] = b"admin";
/// The companion cookie carrying the signature of `username`.
pub const SIGNATURE_COOKIE: &str = "username_sig";
/// Digits in an issued customer name.
const DIGITS: u32 = 12;
/// Longest run of digits accepted in a name (anything longer is not one we or the legacy issued).
const MAX_DIGITS: usize = 20;
/// Signature length in hex characters (128 bits).
const SIGNATURE_HEX: usize = 32;

/// Whether `name` has the only shapes the pages and the server ever produce: `admin`, or `admin`
/// followed by digits. Everything else (`ADMIN124`, `admin124 `, markup, quotes) is refused in
/// hardened mode, which also closes the table collation's case- and space-insensitive matches.
pub fn is_well_formed(name: &[u8]) -> bool {
    match name.strip_prefix(AGENT) {
        Some(digits) => digits.len() <= MAX_DIGITS && digits.iter().all(u8::is_ascii_digit),
        None => false,
    }
}

/// Issues and checks identities.
#[derive(Debug)]
pub struct Identities {
    key: Option<Vec<u8>>,
    issued: Mutex<HashSet<u64>>,
}

impl Identities {
    /// Signs with `secret` when there is one.
    pub fn new(secret: Option<&str>) -> Identities {
        Identities {
            key: secret.map(|secret| secret.as_bytes().to_vec()),
            issued: Mutex::new(HashSet::new()),
        }
    }

    /// A customer name this instance has not issued before.
    pub fn new_customer(&self) -> Vec<u8> {
        let low = 10u64.pow(DIGITS - 1);
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let number = fastrand::u64(low..low * 10);
            if issued.insert(number) {
                return format!("admin{number}").into_bytes();
            }
        }
    }

    /// The hex signature of `name`; `None` without a secret.
    pub fn sign(&self, name: &[u8]) -> Option<String> {
        let tag = self.mac(name)?.finalize().into_bytes();
        Some(hex::encode(tag)[..SIGNATURE_HEX].to_owned())
    }

    /// Whether `signature` is `name`'s (compared in constant time). Always true without a secret.
    pub fn verify(&self, name: &[u8], signature: &[u8]) -> bool {
        let Some(mac) = self.mac(name) else {
            return true;
        };
        let Ok(tag) = hex::decode(signature) else {
            return false;
        };
        tag.len() * 2 == SIGNATURE_HEX && mac.verify_truncated_left(&tag).is_ok()
    }

    fn mac(&self, name: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_ref()?)
            .expect("HMAC takes a key of any length");
        // A domain prefix, so a signature can never be replayed as another kind of token.
        mac.update(b"chat-server username v1\0");
        mac.update(name);
        Some(mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_and_digits_are_well_formed() {
        for good in ["admin", "admin124", "admin123456789012"] {
            assert!(is_well_formed(good.as_bytes()), "{good}");
        }
        for bad in [
            "ADMIN124",
            "admin124 ",
            " admin",
            "admin<b>",
            "admin'",
            "",
            "x",
            "admin123456789012345678901",
        ] {
            assert!(!is_well_formed(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn issued_names_are_well_formed_twelve_digits_and_never_repeat() {
        let ids = Identities::new(None);
        let names: HashSet<Vec<u8>> = (0..10_000).map(|_| ids.new_customer()).collect();
        assert_eq!(names.len(), 10_000);
        assert!(names
            .iter()
            .all(|name| is_well_formed(name) && name.len() == 5 + 12));
    }

    #[test]
    fn a_signature_binds_the_exact_name_and_the_secret() {
        let ids = Identities::new(Some("s3cret"));
        let sig = ids.sign(b"admin123").expect("signs");
        assert_eq!(sig.len(), 32);
        assert!(ids.verify(b"admin123", sig.as_bytes()));
        assert!(!ids.verify(b"admin124", sig.as_bytes()));
        assert!(!ids.verify(b"ADMIN123", sig.as_bytes()));
        assert!(!ids.verify(b"admin123", b""));
        assert!(!ids.verify(b"admin123", &sig.as_bytes()[..30]));
        let other = Identities::new(Some("other"));
        assert!(!other.verify(b"admin123", sig.as_bytes()));
    }
}
