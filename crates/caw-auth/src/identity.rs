//! Whose login a credential is, as far as its file tells: what keeps a
//! login of another account or kind from replacing the other side's.

use std::fmt;

/// Whose login a credential is: `(key, value)` pairs such as the account and
/// the kind of login.
///
/// Two identities conflict when a key is present in both with different
/// values; a key only one side has, or an empty identity, says nothing.
/// `Debug` shows the keys only: values can be e-mail addresses.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Identity(Vec<(String, String)>);

impl Identity {
    /// An identity from pairs; pairs with an empty value are dropped.
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Identity(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        )
    }

    /// Whether the two are known to belong to different logins.
    pub fn conflicts_with(&self, other: &Identity) -> bool {
        self.0
            .iter()
            .any(|(k, v)| other.0.iter().any(|(ok, ov)| ok == k && ov != v))
    }

    /// The value for `key`, if known.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_conflict_only_on_a_shared_key() {
        let a = Identity::new([("account", "a"), ("kind", "chatgpt")]);
        let b = Identity::new([("account", "b"), ("kind", "chatgpt")]);
        let key = Identity::new([("kind", "apikey")]);
        let unknown = Identity::default();
        assert!(a.conflicts_with(&b));
        assert!(a.conflicts_with(&key) && key.conflicts_with(&a));
        assert!(!a.conflicts_with(&a));
        assert!(!a.conflicts_with(&unknown) && !unknown.conflicts_with(&a));
        assert!(!Identity::new([("provider:x", "oauth")])
            .conflicts_with(&Identity::new([("provider:y", "api")])));
        assert_eq!(Identity::new([("account", "")]), unknown);
    }

    #[test]
    fn debug_shows_no_identity_values() {
        let id = Identity::new([("email", "dev@example.com")]);
        assert_eq!(format!("{id:?}"), r#"{"email"}"#);
    }
}
