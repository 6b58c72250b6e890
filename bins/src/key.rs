//! Group keys as the binaries take them: `--key FILE` (a secret written by `--keygen`),
//! `--insecure` (said loudly), and the throwaway key file a benchmark's parent writes for the
//! member processes it starts. A key never goes on a command line (other users' `ps` shows
//! those) nor into any output.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thoth::{GroupSecret, Security};

/// The security of a member: sealed under the secret in `key`, or none (`--insecure`).
pub fn security(key: Option<&Path>) -> Result<Security, String> {
    match key {
        None => Ok(Security::Insecure),
        Some(path) => {
            GroupSecret::read(path).map(Security::shared).map_err(|e| format!("--key {}: {e}", path.display()))
        }
    }
}

/// A member's choice between `--key` and `--insecure`: exactly one (without either, the error
/// says how to make a key: `make`, e.g. "thoth-member --keygen"). `Ok(None)`: insecure.
pub fn choice(key: Option<&Path>, insecure: bool, make: &str) -> Result<Option<PathBuf>, String> {
    match (key, insecure) {
        (None, false) => Err(format!(
            "no group key: make one with `{make} > group.key` and give every member `--key group.key`, \
             or choose `--insecure`"
        )),
        (Some(_), true) => Err("--key and --insecure: choose one".into()),
        (key, _) => Ok(key.map(Path::to_path_buf)),
    }
}

/// Says on standard error, so that no one misses it, that `program` runs unprotected.
pub fn warn_insecure(program: &str) {
    eprintln!(
        "{program}: WARNING: running with --insecure: datagrams are neither authenticated nor encrypted, \
         and anyone who can reach the group can speak for any member"
    );
}

/// A key file readable by this user only, removed when dropped.
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    /// Writes a fresh secret to a new file in the temporary directory.
    pub fn throwaway(program: &str) -> Result<KeyFile, String> {
        let secret = GroupSecret::generate();
        // A random part, so that no one can make the file beforehand (`create_new` refuses it).
        let name = format!("{program}-{}-{}.key", std::process::id(), &GroupSecret::generate().to_hex()[..16]);
        let path = std::env::temp_dir().join(name);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot write a key file at {}: {e}", path.display()))?;
        let file = KeyFile { path };
        writeln!(f, "{}", secret.to_hex()).map_err(|e| format!("cannot write {}: {e}", file.path.display()))?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_throwaway_key_is_private_readable_and_removed() {
        let f = KeyFile::throwaway("key-test").unwrap();
        let path = f.path().to_path_buf();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(security(Some(&path)).unwrap().is_secure());
        let g = KeyFile::throwaway("key-test").unwrap();
        assert_ne!(std::fs::read(&path).unwrap(), std::fs::read(g.path()).unwrap(), "fresh each time");
        drop(f);
        assert!(!path.exists());
        assert_eq!(security(None).unwrap(), Security::Insecure);
        let err = security(Some(&path)).unwrap_err();
        assert!(err.contains("--key") && err.contains("cannot read"), "{err}");
    }
}
