//! A secret string (keys, passwords, salts) that never prints. Pure: imports std and zeroize.

use std::fmt;
use zeroize::Zeroizing;

/// What every masked secret reads as in properties.
pub const MASK: &str = "********";

/// A secret value. `Debug` prints only whether it is set; memory is wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret string.
    #[must_use]
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The secret itself, for the few places that must use it (signing, key derivation,
    /// sealing at rest).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How the secret reads in properties: `"********"`, or `""` when empty.
    #[must_use]
    pub fn masked(&self) -> &'static str {
        if self.is_empty() { "" } else { MASK }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() { "Secret(empty)" } else { "Secret(********)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let s = Secret::new("hunter2-very-secret".into());
        let out = format!("{s:?} {:?}", Some(&s));
        assert!(!out.contains("hunter2"), "{out}");
        assert_eq!(s.masked(), MASK);
        assert_eq!(Secret::default().masked(), "");
    }
}
