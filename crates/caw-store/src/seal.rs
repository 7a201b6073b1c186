//! The store key: 32 random bytes every machine of the user holds (`caw
//! auth store-key FILE`, mode 0600), and the sealing of each value with it
//! (ChaCha20-Poly1305 from `ring`, a fresh random nonce per value, the etcd
//! key as associated data, so a value copied under another key does not
//! open). etcd only ever sees sealed bytes.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};

/// What a sealed value starts with: the format, so a later one can differ.
const MAGIC: &[u8] = b"caw-sealed-1:";
/// The first line of a key file.
const KEY_HEADER: &str = "# caw store key: keep it secret, give it to your own machines only";

/// Why a value did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Not something caw sealed (another format, or cut short).
    NotSealed,
    /// Sealed, but not with this key (or changed since).
    WrongKey,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotSealed => f.write_str("not a value caw sealed"),
            OpenError::WrongKey => f.write_str(
                "sealed with another store key (or altered): check that every machine has the same --store-key",
            ),
        }
    }
}

/// A loaded store key.
pub struct StoreKey {
    key: LessSafeKey,
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

impl StoreKey {
    /// Write a new key file at `path` (0600; never over an existing file).
    pub fn create(path: &Path) -> Result<(), String> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "no randomness from the system".to_string())?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!(
                    "`{}` already exists; caw never replaces a store key (every machine's copy would stop opening the store)",
                    path.display()
                ),
                _ => format!("cannot create `{}`: {e}", path.display()),
            })?;
        let text = format!("{KEY_HEADER}\n{}\n", B64.encode(bytes));
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    }

    /// Read the key at `path`: a regular file, readable by its owner only.
    pub fn load(path: &Path) -> Result<StoreKey, String> {
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| format!("cannot read the store key `{}`: {e}", path.display()))?;
        if !meta.file_type().is_file() {
            return Err(format!(
                "the store key `{}` is not a regular file",
                path.display()
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "the store key `{}` can be read by others (mode {:04o}); run `chmod 600 {}`",
                path.display(),
                meta.mode() & 0o7777,
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the store key `{}`: {e}", path.display()))?;
        let encoded = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        let bytes = B64
            .decode(encoded)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                format!(
                    "`{}` is not a caw store key; create one with `caw auth store-key FILE`",
                    path.display()
                )
            })?;
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| "the store key does not fit the cipher".to_string())?;
        Ok(StoreKey {
            key: LessSafeKey::new(key),
        })
    }

    /// `plain`, sealed for the etcd key `name`.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // The system's randomness does not fail once it has worked (the
        // key was made or read with it).
        let _ = SystemRandom::new().fill(&mut nonce);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut body,
            )
            .expect("a credential is far below the cipher's limit");
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out
    }

    /// The plain bytes of `sealed`, read under the etcd key `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let rest = sealed.strip_prefix(MAGIC).ok_or(OpenError::NotSealed)?;
        if rest.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(OpenError::NotSealed);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::NotSealed)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut body)
            .map_err(|_| OpenError::WrongKey)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_in(dir: &Path, name: &str) -> StoreKey {
        let path = dir.join(name);
        StoreKey::create(&path).unwrap();
        StoreKey::load(&path).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_name_only() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (key_in(dir.path(), "a"), key_in(dir.path(), "b"));
        let sealed = k1.seal("/caw/v1/claude/x", b"{\"token\":\"SECRET\"}");
        assert!(!String::from_utf8_lossy(&sealed).contains("SECRET"));
        assert_eq!(
            k1.open("/caw/v1/claude/x", &sealed).unwrap(),
            b"{\"token\":\"SECRET\"}"
        );
        assert_eq!(
            k2.open("/caw/v1/claude/x", &sealed),
            Err(OpenError::WrongKey)
        );
        assert_eq!(
            k1.open("/caw/v1/claude/y", &sealed),
            Err(OpenError::WrongKey)
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            k1.open("/caw/v1/claude/x", &flipped),
            Err(OpenError::WrongKey)
        );
        assert_eq!(
            k1.open("/caw/v1/claude/x", b"{\"plain\":1}"),
            Err(OpenError::NotSealed)
        );
        // A fresh nonce each time.
        assert_ne!(
            sealed,
            k1.seal("/caw/v1/claude/x", b"{\"token\":\"SECRET\"}")
        );
        assert_eq!(format!("{k1:?}"), "StoreKey(..)");
    }

    #[test]
    fn a_key_file_is_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        StoreKey::create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let before = std::fs::read(&path).unwrap();
        let err = StoreKey::create(&path).unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let err = StoreKey::load(&path).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::write(dir.path().join("junk"), "hello").unwrap();
        std::fs::set_permissions(
            dir.path().join("junk"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let err = StoreKey::load(&dir.path().join("junk")).unwrap_err();
        assert!(err.contains("caw auth store-key"), "{err}");
    }
}
