//! World reconstruction: the workspace as a run's committed effects left it at a given entry,
//! rebuilt from the ledger alone (the start-state manifest plus every execution's file
//! changes, with contents from the content-addressed blobs). The real workspace is never
//! read, so this works after it was changed or deleted.

use crate::recorded::{self, Reader, RecordError};
use praxis_core::record::{Manifest, kinds};
use praxis_core::{FileChange, Record};
use praxis_ledger::{Entry, Ledger, LedgerError};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The run is missing or unreadable, or an entry's payload is malformed.
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("run {run_id} has no entry seq {at} (its last entry is seq {last})")]
    NoSuchEntry { run_id: String, at: u64, last: u64 },
    #[error(
        "run {run_id} recorded no workspace_snapshot, so its start state is unknown and the \
         world cannot be rebuilt"
    )]
    NoSnapshot { run_id: String },
    #[error("`{path}` existed at seq {at} but its content was not recorded ({why})")]
    ContentUnknown { path: String, at: u64, why: String },
    #[error("blob {blob} (content of `{path}`) is missing from the ledger")]
    MissingBlob { path: String, blob: String },
    #[error("reading blob {blob} (content of `{path}`): {source}")]
    Blob {
        path: String,
        blob: String,
        source: Box<LedgerError>,
    },
}

/// The workspace of a run as of entry `at`.
#[derive(Clone, Debug, PartialEq)]
pub struct World {
    run_id: String,
    at: u64,
    /// Every file that existed then: path -> blob id (None: content not recorded).
    files: BTreeMap<String, Option<String>>,
    /// Why a file's content is unknown (skipped at capture, or untracked after a change).
    unknown: BTreeMap<String, String>,
    /// Paths the run's executions changed up to `at`.
    changed: BTreeSet<String>,
}

/// Rebuilds the world of `run_id` as of entry `at` (default: the last entry), inclusive.
pub fn world_at(ledger: &dyn Ledger, run_id: &str, at: Option<u64>) -> Result<World, WorldError> {
    let entries = recorded::load(ledger, run_id)?;
    let last = entries[entries.len() - 1].seq;
    let at = at.unwrap_or(last);
    if at == 0 || at > last {
        return Err(WorldError::NoSuchEntry {
            run_id: run_id.to_string(),
            at,
            last,
        });
    }
    let read = Reader { run_id };
    // The snapshot is the state before anything ran, so it is the base even for `at` = 1.
    let snapshot = entries
        .iter()
        .find(|e| e.kind == kinds::WORKSPACE_SNAPSHOT)
        .ok_or_else(|| WorldError::NoSnapshot {
            run_id: run_id.to_string(),
        })?;
    let Record::WorkspaceSnapshot(start) = read.record(snapshot)? else {
        unreachable!("found by kind")
    };
    let mut world = World {
        run_id: run_id.to_string(),
        at,
        files: BTreeMap::new(),
        unknown: BTreeMap::new(),
        changed: BTreeSet::new(),
    };
    world.load_manifest(snapshot, start.files)?;
    for entry in entries.iter().filter(|e| e.seq <= at) {
        if let Record::Execution(execution) = read.record(entry)? {
            world.apply(execution.files_changed);
        }
    }
    Ok(world)
}

impl World {
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The entry this world is the state after.
    pub fn at(&self) -> u64 {
        self.at
    }

    /// Every file that existed at this point: path -> blob id (None: content not recorded).
    pub fn files(&self) -> &BTreeMap<String, Option<String>> {
        &self.files
    }

    /// The paths the run changed up to this point (including deleted ones), sorted.
    pub fn changed_paths(&self) -> &BTreeSet<String> {
        &self.changed
    }

    pub fn exists(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// The content of `path` at this point; None if it did not exist then.
    pub fn content(&self, ledger: &dyn Ledger, path: &str) -> Result<Option<Vec<u8>>, WorldError> {
        match self.files.get(path) {
            None => Ok(None),
            Some(None) => Err(WorldError::ContentUnknown {
                path: path.to_string(),
                at: self.at,
                why: self
                    .unknown
                    .get(path)
                    .cloned()
                    .unwrap_or_else(|| "not captured".into()),
            }),
            Some(Some(blob)) => read_blob(ledger, path, blob).map(Some),
        }
    }

    fn malformed(&self, entry: &Entry, field: &str, reason: impl Into<String>) -> WorldError {
        Reader {
            run_id: &self.run_id,
        }
        .malformed(entry, field, reason)
        .into()
    }

    /// Each file of the start manifest has a blob, or says why its content was skipped.
    fn load_manifest(&mut self, snapshot: &Entry, manifest: Manifest) -> Result<(), WorldError> {
        for (path, file) in manifest {
            match (file.blob, file.skipped) {
                (Some(blob), _) => {
                    self.files.insert(path, Some(blob));
                }
                (None, Some(why)) => {
                    self.files.insert(path.clone(), None);
                    self.unknown
                        .insert(path, format!("skipped at the start: {why}"));
                }
                (None, None) => {
                    return Err(self.malformed(
                        snapshot,
                        &format!("files.{path}"),
                        "expected a blob or why the content was skipped",
                    ));
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, changes: Vec<FileChange>) {
        for change in changes {
            match change.after {
                Some(blob) => {
                    self.files.insert(change.path.clone(), Some(blob));
                    self.unknown.remove(&change.path);
                }
                None => {
                    self.files.remove(&change.path);
                    self.unknown.remove(&change.path);
                }
            }
            self.changed.insert(change.path);
        }
    }
}

fn read_blob(ledger: &dyn Ledger, path: &str, blob: &str) -> Result<Vec<u8>, WorldError> {
    ledger
        .blob(blob)
        .map_err(|source| WorldError::Blob {
            path: path.to_string(),
            blob: blob.to_string(),
            source: Box::new(source),
        })?
        .ok_or_else(|| WorldError::MissingBlob {
            path: path.to_string(),
            blob: blob.to_string(),
        })
}

/// A unified diff (`--- a/P`, `+++ b/P`, `/dev/null` for a side where the file did not
/// exist) of every path either world's run changed whose content differs between `from` and
/// `to`, in path order. Binary files and files whose content was not recorded get a one-line
/// note instead.
pub fn diff(ledger: &dyn Ledger, from: &World, to: &World) -> Result<String, WorldError> {
    let paths: BTreeSet<&String> = from.changed.iter().chain(&to.changed).collect();
    let mut out = String::new();
    for path in paths {
        let (before, after) = (from.files.get(path.as_str()), to.files.get(path.as_str()));
        if before == after {
            continue;
        }
        let (Some(before), Some(after)) = (side(ledger, path, before)?, side(ledger, path, after)?)
        else {
            out.push_str(&format!(
                "{path}: changed (content not recorded on one side; no diff)\n"
            ));
            continue;
        };
        let (Some(old), Some(new)) = (text_of(&before), text_of(&after)) else {
            out.push_str(&format!("Binary file {path} changed\n"));
            continue;
        };
        let original = if matches!(before, Side::Absent) {
            "/dev/null".to_string()
        } else {
            format!("a/{path}")
        };
        let modified = if matches!(after, Side::Absent) {
            "/dev/null".to_string()
        } else {
            format!("b/{path}")
        };
        let patch = diffy::DiffOptions::new()
            .set_original_filename(original)
            .set_modified_filename(modified)
            .create_patch(old, new);
        out.push_str(&patch.to_string());
    }
    Ok(out)
}

/// One side of a diff: no file, or its bytes.
enum Side {
    Absent,
    Bytes(Vec<u8>),
}

/// None when the file existed but its content was not recorded.
fn side(
    ledger: &dyn Ledger,
    path: &str,
    state: Option<&Option<String>>,
) -> Result<Option<Side>, WorldError> {
    Ok(match state {
        None => Some(Side::Absent),
        Some(None) => None,
        Some(Some(blob)) => Some(Side::Bytes(read_blob(ledger, path, blob)?)),
    })
}

/// Text for the diff; None for binary content (not UTF-8, or containing NUL).
fn text_of(side: &Side) -> Option<&str> {
    match side {
        Side::Absent => Some(""),
        Side::Bytes(bytes) if bytes.contains(&0) => None,
        Side::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
    }
}
