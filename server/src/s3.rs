//! The S3 endpoint's wiring: where the root key pair comes from and where
//! the identity table lives. The protocol itself is `nitrofs-s3`.
//!
//! Root keys, first match wins: the environment (`NITROFS_ROOT_ACCESS_KEY`
//! and `NITROFS_ROOT_SECRET_KEY`), the config file (`[s3] root_access_key`,
//! `root_secret_key`), the file `<data-dir>/s3-root-credentials`, or a new
//! random pair written to that file (mode 0600, atomically) and printed
//! once. Identities added with `nitrofs admin user add` are kept in
//! `<data-dir>/s3-identities.json`.

use crate::config::{ConfigError, KeyPair};
use nitrofs_common::crashsafe;
use rand::distributions::{Alphanumeric, DistString, Distribution, Uniform};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Environment variable holding the root access key.
pub const ENV_ROOT_ACCESS_KEY: &str = "NITROFS_ROOT_ACCESS_KEY";
/// Environment variable holding the root secret key.
pub const ENV_ROOT_SECRET_KEY: &str = "NITROFS_ROOT_SECRET_KEY";
/// File in the data directory holding generated root keys.
pub const ROOT_CREDENTIALS_FILE: &str = "s3-root-credentials";
/// File in the data directory holding the identity table.
pub const IDENTITIES_FILE: &str = "s3-identities.json";

/// Length of a generated access key (as AWS's).
const ACCESS_KEY_LEN: usize = 20;
/// Length of a generated secret key (as AWS's).
const SECRET_KEY_LEN: usize = 40;

/// Why the root keys could not be found or made.
#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    /// An environment variable or config field is unusable.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The credentials file could not be read or written.
    #[error("cannot {action} S3 root credentials file {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The credentials file exists but is not what this server wrote.
    #[error(
        "S3 root credentials file {path} is damaged ({message}); fix it or remove it \
         to generate a new pair"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Where the root keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKeySource {
    /// `NITROFS_ROOT_ACCESS_KEY` / `NITROFS_ROOT_SECRET_KEY`.
    Environment,
    /// `[s3] root_access_key` / `root_secret_key`.
    Config,
    /// `<data-dir>/s3-root-credentials`, written by an earlier start.
    File,
    /// Generated now and written to `<data-dir>/s3-root-credentials`:
    /// the caller prints them, once.
    Generated,
}

/// The credentials file: TOML, two keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key: String,
    secret_key: String,
}

/// Finds the root keys (see the module note). `env` reads one environment
/// variable (`None` when unset or empty); `data_dir` must exist.
pub fn root_keys(
    env: impl Fn(&str) -> Option<String>,
    configured: Option<KeyPair>,
    data_dir: &Path,
) -> Result<(KeyPair, RootKeySource), RootKeyError> {
    match (env(ENV_ROOT_ACCESS_KEY), env(ENV_ROOT_SECRET_KEY)) {
        (Some(access), Some(secret)) => {
            let keys = KeyPair::new(access, secret, ENV_ROOT_ACCESS_KEY, ENV_ROOT_SECRET_KEY)?;
            return Ok((keys, RootKeySource::Environment));
        }
        (None, None) => {}
        (Some(_), None) => return Err(missing_pair(ENV_ROOT_SECRET_KEY).into()),
        (None, Some(_)) => return Err(missing_pair(ENV_ROOT_ACCESS_KEY).into()),
    }
    if let Some(keys) = configured {
        return Ok((keys, RootKeySource::Config));
    }
    let path = data_dir.join(ROOT_CREDENTIALS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok((parse_file(&path, &text)?, RootKeySource::File)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(RootKeyError::Io {
                action: "read",
                path,
                source,
            })
        }
    }
    let keys = generate();
    crashsafe::write_file_atomic(&path, render_file(&keys).as_bytes(), 0o600).map_err(
        |source| RootKeyError::Io {
            action: "write",
            path: path.clone(),
            source,
        },
    )?;
    Ok((keys, RootKeySource::Generated))
}

/// Reads one variable of the process environment. Unset and empty count as
/// unset; a non-UTF-8 value is read lossily, so the key checks reject it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string_lossy().into_owned())
}

fn missing_pair(field: &str) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        message: "missing: set both root keys or neither".to_string(),
    }
}

fn parse_file(path: &Path, text: &str) -> Result<KeyPair, RootKeyError> {
    let damaged = |message: String| RootKeyError::Damaged {
        path: path.to_path_buf(),
        message,
    };
    let file: CredentialsFile = toml::from_str(text).map_err(|e| damaged(e.to_string()))?;
    KeyPair::new(file.access_key, file.secret_key, "access_key", "secret_key")
        .map_err(|e| damaged(e.to_string()))
}

fn render_file(keys: &KeyPair) -> String {
    format!(
        "# NitroFS S3 root identity (uid 0), generated at first start. Keep it secret.\n\
         access_key = \"{}\"\nsecret_key = \"{}\"\n",
        keys.access_key, keys.secret_key
    )
}

/// A new random pair from the OS's generator: an access key of upper-case
/// letters and digits, a secret of letters and digits (no characters that
/// need quoting in a shell or a URL).
fn generate() -> KeyPair {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rngs::OsRng;
    let pick = Uniform::new(0, UPPER.len());
    let access_key = (0..ACCESS_KEY_LEN)
        .map(|_| char::from(UPPER[pick.sample(&mut rng)]))
        .collect();
    let secret_key = Alphanumeric.sample_string(&mut rng, SECRET_KEY_LEN);
    KeyPair {
        access_key,
        secret_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn pair(access: &str, secret: &str) -> KeyPair {
        KeyPair::new(access.into(), secret.into(), "a", "s").expect("valid pair")
    }

    #[test]
    fn the_environment_wins_over_config_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = env_of(&[
            (ENV_ROOT_ACCESS_KEY, "ENVKEY"),
            (ENV_ROOT_SECRET_KEY, "env-secret"),
        ]);
        let (keys, source) =
            root_keys(env, Some(pair("CFGKEY", "cfg-secret")), dir.path()).expect("keys");
        assert_eq!(source, RootKeySource::Environment);
        assert_eq!(keys, pair("ENVKEY", "env-secret"));
        assert!(
            !dir.path().join(ROOT_CREDENTIALS_FILE).exists(),
            "nothing is written"
        );
    }

    #[test]
    fn config_keys_are_used_when_the_environment_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keys, source) =
            root_keys(env_of(&[]), Some(pair("CFGKEY", "cfg-secret")), dir.path()).expect("keys");
        assert_eq!(source, RootKeySource::Config);
        assert_eq!(keys.access_key, "CFGKEY");
        assert!(!dir.path().join(ROOT_CREDENTIALS_FILE).exists());
    }

    #[test]
    fn half_a_pair_in_the_environment_names_the_missing_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = root_keys(env_of(&[(ENV_ROOT_ACCESS_KEY, "ENVKEY")]), None, dir.path())
            .expect_err("secret missing");
        assert!(err.to_string().contains(ENV_ROOT_SECRET_KEY), "{err}");
        let err = root_keys(
            env_of(&[
                (ENV_ROOT_ACCESS_KEY, "bad key"),
                (ENV_ROOT_SECRET_KEY, "env-secret"),
            ]),
            None,
            dir.path(),
        )
        .expect_err("bad access key");
        assert!(err.to_string().contains(ENV_ROOT_ACCESS_KEY), "{err}");
    }

    #[test]
    fn first_start_generates_a_private_file_and_later_starts_reuse_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, source) = root_keys(env_of(&[]), None, dir.path()).expect("generated");
        assert_eq!(source, RootKeySource::Generated);
        assert_eq!(first.access_key.len(), ACCESS_KEY_LEN);
        assert_eq!(first.secret_key.len(), SECRET_KEY_LEN);
        let path = dir.path().join(ROOT_CREDENTIALS_FILE);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let (again, source) = root_keys(env_of(&[]), None, dir.path()).expect("reused");
        assert_eq!(source, RootKeySource::File);
        assert_eq!(again, first);

        let other = tempfile::tempdir().expect("tempdir");
        let (fresh, _) = root_keys(env_of(&[]), None, other.path()).expect("generated");
        assert_ne!(fresh.access_key, first.access_key, "keys are random");
        assert_ne!(fresh.secret_key, first.secret_key, "keys are random");
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_new_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(ROOT_CREDENTIALS_FILE);
        for text in [
            "",
            "access_key = \"ONLYACCESS\"\n",
            "access_key = \"A\"\nsecret_key = \"long-enough\"\n",
            "garbage",
        ] {
            std::fs::write(&path, text).expect("write");
            let err = root_keys(env_of(&[]), None, dir.path()).expect_err(text);
            assert!(matches!(err, RootKeyError::Damaged { .. }), "{text}: {err}");
            assert!(err.to_string().contains(ROOT_CREDENTIALS_FILE), "{err}");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
        }
    }
}
