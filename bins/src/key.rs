//! Group keys as the binaries take them: `--key FILE` (a secret written by `--keygen`),
//! `--identity FILE --allow FILE` (member key pairs: this member's key written by
//! `--new-identity`, and the public keys of the members the group admits), `--insecure`
//! (said loudly), and the throwaway key file a benchmark's parent writes for the member
//! processes it starts. A secret never goes on a command line (other users' `ps` shows
//! those) nor into any output.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thoth::{AllowList, GroupSecret, Identity, PublicKey, Security};

/// How a member protects its datagrams, as its command line chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keying {
    /// `--insecure`.
    Insecure,
    /// `--key FILE`: a pre-shared group secret.
    Shared(PathBuf),
    /// `--identity FILE --allow FILE`: member key pairs.
    Pairs { identity: PathBuf, allow: PathBuf },
}

impl Keying {
    /// The security of a member keyed so (its files read).
    pub fn security(&self) -> Result<Security, String> {
        match self {
            Keying::Insecure => Ok(Security::Insecure),
            Keying::Shared(path) => security(Some(path)),
            Keying::Pairs { identity, allow } => {
                let id = Identity::read(identity).map_err(|e| format!("--identity {}: {e}", identity.display()))?;
                let list = AllowList::read(allow).map_err(|e| format!("--allow {}: {e}", allow.display()))?;
                Ok(Security::key_pairs(id, list))
            }
        }
    }
}

/// The security of a member: sealed under the secret in `key`, or none (`--insecure`).
pub fn security(key: Option<&Path>) -> Result<Security, String> {
    match key {
        None => Ok(Security::Insecure),
        Some(path) => {
            GroupSecret::read(path).map(Security::shared).map_err(|e| format!("--key {}: {e}", path.display()))
        }
    }
}

/// The key options of a member's command line (`#[command(flatten)]` into its parser):
/// exactly one of `--key`, `--identity` with `--allow`, and `--insecure` (`keying`).
#[derive(clap::Args, Clone, Debug)]
pub struct KeyArgs {
    /// The group key, as `thoth-member --keygen` wrote it
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Member key pairs: this process's key, as `thoth-member --new-identity` wrote it ...
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// ... and the public keys of the members the group admits, one per line (`#`
    /// comments); a fresh key per view goes to the view's members only
    #[arg(long, value_name = "FILE")]
    pub allow: Option<PathBuf>,
    /// No key: datagrams neither authenticated nor encrypted, and anyone who reaches the
    /// group can speak for any member (said loudly on stderr)
    #[arg(long)]
    pub insecure: bool,
}

impl KeyArgs {
    /// The keying these options chose (`choice`).
    pub fn keying(&self, make: &str) -> Result<Keying, String> {
        choice(self.key.as_deref(), [self.identity.as_deref(), self.allow.as_deref()], self.insecure, make)
    }
}

/// A member's choice between `--key`, `--identity` with `--allow` (`pairs`, where the
/// program offers them), and `--insecure`: exactly one (without any, the error says how to
/// make a key: `make`, e.g. "thoth-member --keygen").
pub fn choice(key: Option<&Path>, pairs: [Option<&Path>; 2], insecure: bool, make: &str) -> Result<Keying, String> {
    let keying = match (key, pairs) {
        (Some(key), [None, None]) => Keying::Shared(key.to_path_buf()),
        (None, [Some(identity), Some(allow)]) => {
            Keying::Pairs { identity: identity.to_path_buf(), allow: allow.to_path_buf() }
        }
        (None, [None, None]) if insecure => return Ok(Keying::Insecure),
        (None, [None, None]) => {
            return Err(format!(
                "no group key: make one with `{make} > group.key` and give every member `--key group.key`, \
                 or choose `--insecure`"
            ));
        }
        (None, _) => return Err("--identity and --allow go together".into()),
        (Some(_), _) => return Err("--key, or --identity with --allow: choose one".into()),
    };
    if insecure {
        return Err("a key and --insecure: choose one".into());
    }
    Ok(keying)
}

/// Writes a new identity (member key pairs) to `path`, readable by this user only and never
/// over an existing file; its public key, for the group's allow-list.
pub fn new_identity(path: &Path) -> Result<PublicKey, String> {
    let id = Identity::generate();
    write_private(path, &id.to_hex())?;
    Ok(id.public())
}

/// Writes `text` and a newline to a new file at `path`, readable by this user only.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write a key file at {}: {e}", path.display()))?;
    writeln!(f, "{text}").map_err(|e| format!("cannot write {}: {e}", path.display()))
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
        write_private(&path, &secret.to_hex())?;
        Ok(KeyFile { path })
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

    #[test]
    fn an_identity_is_private_and_its_public_key_makes_an_allow_list() {
        let dir = std::env::temp_dir().join(format!("key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (id, allow) = (dir.join("a.id"), dir.join("allow"));
        let public = new_identity(&id).unwrap();
        assert_eq!(std::fs::metadata(&id).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(new_identity(&id).is_err(), "never over an existing file");
        std::fs::write(&allow, format!("# the group\n{public}  # a\n\n")).unwrap();
        let keying = Keying::Pairs { identity: id.clone(), allow: allow.clone() };
        let Security::KeyPairs { identity, allow: list, .. } = keying.security().unwrap() else { panic!() };
        assert_eq!((identity.public(), list.keys().copied().collect::<Vec<_>>()), (public, vec![public]));
        assert!(!format!("{identity:?}").contains(&std::fs::read_to_string(&id).unwrap().trim().to_string()));
        std::fs::write(&allow, "not a key\n").unwrap();
        assert!(keying.security().unwrap_err().contains("--allow"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exactly_one_way_to_key_a_member() {
        let (k, i, a) = (Some(Path::new("k")), Some(Path::new("i")), Some(Path::new("a")));
        assert_eq!(choice(k, [None, None], false, "m"), Ok(Keying::Shared("k".into())));
        assert_eq!(choice(None, [i, a], false, "m"), Ok(Keying::Pairs { identity: "i".into(), allow: "a".into() }));
        assert_eq!(choice(None, [None, None], true, "m"), Ok(Keying::Insecure));
        assert!(choice(None, [None, None], false, "make a key").unwrap_err().contains("make a key"));
        for bad in [(k, [i, a], false), (None, [i, None], false), (None, [None, a], false), (k, [None, None], true)] {
            assert!(choice(bad.0, bad.1, bad.2, "m").is_err(), "{bad:?}");
        }
        assert!(choice(None, [i, a], true, "m").is_err());
    }
}
