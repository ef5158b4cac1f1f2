//! Web sessions: after a participant signs in with a read token signed by
//! their own key, the service opens a session it holds itself (in its
//! database) and sets a cookie with the session's random id. Only the id's
//! SHA-256 is stored, so a copy of the database opens no session; signing
//! out ends the session there, so a copied cookie stops working at once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The cookie's name.
pub const COOKIE: &str = "glucochain_session";
/// The path the cookie is sent for: the pages, not the API.
pub const COOKIE_PATH: &str = "/ui";

/// A new session id: the cookie value (32 random bytes, base64url) and the
/// hash the service stores.
pub fn new_session() -> (String, [u8; 32]) {
    let mut id = [0u8; 32];
    glucochain_crypto::random_bytes(&mut id);
    let cookie = URL_SAFE_NO_PAD.encode(id);
    let hash = glucochain_crypto::sha256(cookie.as_bytes()).0;
    (cookie, hash)
}

/// The stored hash of a cookie value, if it has the shape of a session id.
pub fn id_hash(cookie: &str) -> Option<[u8; 32]> {
    let ok = cookie.len() == 43 && URL_SAFE_NO_PAD.decode(cookie).is_ok_and(|b| b.len() == 32);
    ok.then(|| glucochain_crypto::sha256(cookie.as_bytes()).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_and_only_well_formed_cookies_have_a_hash() {
        let (a, ha) = new_session();
        let (b, hb) = new_session();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(id_hash(&a), Some(ha));
        for bad in ["", "x", &a[..42], &format!("{a}A"), &a.replace(&a[..1], "!")] {
            assert_eq!(id_hash(bad), None, "{bad}");
        }
    }
}
