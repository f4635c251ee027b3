//! S3 object keys ↔ paths inside a volume.
//!
//! Key `a/b/c` is the file `a/b/c` under the bucket's root directory. The
//! rules, checked before anything touches the namespace:
//!
//! - the key is split on `/`; every component becomes one directory entry
//!   name, so a component can never contain `/` and the path can never
//!   leave the bucket;
//! - empty components (`/a`, `a//b`, `a//`), `.` and `..` components and
//!   NUL bytes are refused with `InvalidArgument`: they have no path of
//!   their own (POSIX would collapse or resolve them, and two keys must
//!   never name one file);
//! - a component longer than 255 bytes ([`NAME_MAX`]) or a key longer than
//!   1024 bytes (the S3 limit) is refused with `KeyTooLongError`;
//! - one trailing `/` makes the key a *directory marker*: `PUT a/b/`
//!   creates the directory `a/b` (and its parents), `GET a/b/` of a
//!   directory returns an empty object, and an empty directory is listed
//!   as the key `a/b/`.

use nitrofs_core_fs::NAME_MAX;

/// Longest key S3 accepts, in bytes.
pub const KEY_MAX: usize = 1024;

/// What a valid key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    /// Path components below the bucket root (never empty, never `.`/`..`).
    pub components: Vec<Vec<u8>>,
    /// True for a key ending in `/`: a directory marker.
    pub dir: bool,
}

impl KeyPath {
    /// The components leading to the last one (the parent directories).
    pub fn parents(&self) -> &[Vec<u8>] {
        match self.components.split_last() {
            Some((_, parents)) => parents,
            None => &[],
        }
    }

    /// The last component.
    pub fn name(&self) -> &[u8] {
        self.components
            .last()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key (or one of its components) is too long.
    #[error("{0}")]
    TooLong(&'static str),
    /// The key has no valid path.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Checks `key` and splits it into path components.
pub fn parse_key(key: &str) -> Result<KeyPath, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Invalid("the object key is empty"));
    }
    if key.len() > KEY_MAX {
        return Err(KeyError::TooLong("object keys are at most 1024 bytes"));
    }
    if key.as_bytes().contains(&0) {
        return Err(KeyError::Invalid("object keys cannot contain NUL"));
    }
    let (body, dir) = match key.strip_suffix('/') {
        Some(body) => (body, true),
        None => (key, false),
    };
    let mut components = Vec::new();
    for c in body.split('/') {
        match c {
            "" => {
                return Err(KeyError::Invalid(
                    "object keys cannot have empty path components ('//', or a leading '/')",
                ))
            }
            "." | ".." => {
                return Err(KeyError::Invalid(
                    "object keys cannot have '.' or '..' path components",
                ))
            }
            _ if c.len() > NAME_MAX => {
                return Err(KeyError::TooLong(
                    "each '/'-separated part of an object key is at most 255 bytes",
                ))
            }
            _ => components.push(c.as_bytes().to_vec()),
        }
    }
    Ok(KeyPath { components, dir })
}

/// Joins a key prefix and an entry name (a name never contains `/`).
pub fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + name.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(name);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(k: &KeyPath) -> Vec<&str> {
        k.components
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap_or("?"))
            .collect()
    }

    #[test]
    fn a_key_splits_on_slashes_into_path_components() {
        let k = parse_key("a/b/c.txt").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(comps(&k), ["a", "b", "c.txt"]);
        assert!(!k.dir);
        assert_eq!(k.name(), b"c.txt");
        assert_eq!(k.parents().len(), 2);
    }

    #[test]
    fn a_trailing_slash_makes_a_directory_marker() {
        let k = parse_key("a/b/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(comps(&k), ["a", "b"]);
        assert!(k.dir);
    }

    #[test]
    fn empty_components_are_refused() {
        for key in ["", "/", "/a", "a//b", "a//", "//", "a/b//c"] {
            assert!(
                matches!(parse_key(key), Err(KeyError::Invalid(_))),
                "{key:?} must be refused"
            );
        }
    }

    #[test]
    fn dot_and_dot_dot_components_are_refused_so_no_key_escapes_the_bucket() {
        for key in [
            ".",
            "..",
            "../x",
            "a/../../etc/passwd",
            "a/./b",
            "a/..",
            "a/../",
            "./",
        ] {
            assert!(
                matches!(parse_key(key), Err(KeyError::Invalid(_))),
                "{key:?} must be refused"
            );
        }
        // Dots inside a name are ordinary characters.
        assert!(parse_key("a/..b/c.").is_ok());
        assert!(parse_key("...").is_ok());
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert!(matches!(parse_key("a\0b"), Err(KeyError::Invalid(_))));
    }

    #[test]
    fn long_components_and_long_keys_are_too_long() {
        let c255 = "x".repeat(255);
        assert!(parse_key(&c255).is_ok());
        assert!(matches!(
            parse_key(&"x".repeat(256)),
            Err(KeyError::TooLong(_))
        ));
        let ok = format!("{c255}/{c255}/{c255}/{c255}/");
        assert_eq!(ok.len(), 1024);
        assert!(parse_key(&ok).is_ok());
        let long = format!("{ok}z");
        assert!(matches!(parse_key(&long), Err(KeyError::TooLong(_))));
    }

    #[test]
    fn unicode_and_special_characters_pass_through_as_bytes() {
        let k = parse_key("dir with space/ü+%20&?.txt").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(comps(&k), ["dir with space", "ü+%20&?.txt"]);
    }
}
