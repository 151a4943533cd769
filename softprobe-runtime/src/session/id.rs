//! Session ids: `sess_` + base64url (no padding) of 16 bytes from the OS CSPRNG. A session
//! id is a capability (whoever knows it drives the session), so it must be unguessable.

use base64::Engine as _;

use crate::error::{Error, Result};

/// Prefix of every session id.
pub const SESSION_ID_PREFIX: &str = "sess_";

/// A fresh, unguessable session id (128 random bits).
pub fn new_session_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Io {
        context: "reading the OS random number generator for a session id".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut id = String::with_capacity(SESSION_ID_PREFIX.len() + 22);
    id.push_str(SESSION_ID_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut id);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_have_the_documented_shape_and_differ() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let id = new_session_id().unwrap();
            assert!(id.starts_with("sess_"), "{id}");
            let tail = &id[5..];
            assert_eq!(tail.len(), 22, "{id}");
            assert!(
                tail.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{id}"
            );
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(tail)
                .unwrap();
            assert_eq!(raw.len(), 16);
            assert!(seen.insert(id));
        }
    }
}
