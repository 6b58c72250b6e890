//! Checkpoints of replicated objects in an embedded store (Electra's object server): a
//! process saves each object's snapshot (`Replica::checkpoint`) under the object's name, and
//! a replica made again from it (`Replica::restore`) starts with that state, so a group that
//! stopped entirely restarts with its last state.
//!
//! The store is `redb` (an embedded, crash-safe key-value store in pure Rust: copy-on-write
//! B-trees, checksummed commits), one file per process; a save is one transaction made
//! durable before it returns, so a process killed at any point leaves the previous
//! checkpoint or the new one, never a torn one. The file is locked while open: a second
//! process cannot use it at the same time. What it holds is checked when a replica undumps
//! it, as any state transferred.
//!
//! Tested below (save, reopen, load; the newest save wins; a missing object) and in
//! `bins/tests/kv.rs` (a whole group killed and restarted from its checkpoints).

use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::Path;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");

/// One process's checkpoints, by object name.
pub struct Checkpoints {
    db: Database,
}

impl Checkpoints {
    /// Opens the store at `path`, making it if there is none.
    pub fn open(path: &Path) -> Result<Checkpoints, String> {
        let db = Database::create(path).map_err(|e| format!("the store {}: {e}", path.display()))?;
        Ok(Checkpoints { db })
    }

    /// Saves `snapshot` as `object`'s checkpoint, durably, replacing the one before.
    pub fn save(&self, object: &str, snapshot: &[u8]) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("saving {object}: {e}");
        let tx = self.db.begin_write().map_err(|e| err(&e))?;
        {
            let mut t = tx.open_table(OBJECTS).map_err(|e| err(&e))?;
            t.insert(object, snapshot).map_err(|e| err(&e))?;
        }
        tx.commit().map_err(|e| err(&e))
    }

    /// `object`'s last checkpoint, if it has one.
    pub fn load(&self, object: &str) -> Result<Option<Vec<u8>>, String> {
        let err = |e: &dyn std::fmt::Display| format!("loading {object}: {e}");
        let tx = self.db.begin_read().map_err(|e| err(&e))?;
        let t = match tx.open_table(OBJECTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(&e)),
        };
        Ok(t.get(object).map_err(|e| err(&e))?.map(|v| v.value().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_survive_a_reopen_and_the_newest_wins() {
        let dir = std::env::temp_dir().join(format!("thoth-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let path = dir.join("checkpoints.redb");
        let _ = std::fs::remove_file(&path);
        {
            let c = Checkpoints::open(&path).expect("opens");
            assert_eq!(c.load("kv"), Ok(None));
            c.save("kv", b"first").expect("saves");
            c.save("kv", b"second").expect("saves");
            c.save("trader", b"other").expect("saves");
            assert!(Checkpoints::open(&path).is_err(), "the file is locked while open");
        }
        let c = Checkpoints::open(&path).expect("opens again");
        assert_eq!(c.load("kv"), Ok(Some(b"second".to_vec())));
        assert_eq!(c.load("trader"), Ok(Some(b"other".to_vec())));
        assert_eq!(c.load("none"), Ok(None));
        drop(c);
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}
