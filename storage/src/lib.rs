//! Where checkpoints and savepoints live: a [`Location`] is either a directory on a file
//! system every process shares (a path or a `file://` URI) or a prefix in S3-compatible
//! object storage (`s3://bucket/prefix`, also `s3a://` and `s3p://` as Flink writes them).
//!
//! Both kinds give the same guarantees to the checkpoint code above them:
//! - a file is published whole or not at all ([`Location::put_file`], [`Location::put`]);
//! - [`Location::put_new`] creates an object only if nothing is there yet (a hard link on a
//!   directory, `If-None-Match: *` on S3), so a completed checkpoint's metadata is never
//!   overwritten, not even by a stale jobmanager;
//! - a published file survives a crash of the machine (files and directories are synced;
//!   an S3 PUT is durable once answered).
//!
//! Directories keep their own implementation instead of object_store's `LocalFileSystem`
//! because checkpoints there need what it does not do: fsync of files and directories, and
//! hard links for immutable SST files on restore (no copy).
//!
//! Object stores are reached through [`object_store`] on a small runtime of their own, so
//! the blocking calls of this API work from any thread, inside a Tokio runtime or not.
//! Their settings ([`S3Options`]) are the process's, set once at start with
//! [`configure_s3`], as Flink reads `s3.*` from every process's configuration: credentials
//! never travel in a job's graph.

#![deny(missing_docs)]

mod local;
mod object;

use std::path::{Path, PathBuf};

pub use object::{configure_s3, S3Options};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file system operation failed.
    #[error("cannot {action} '{location}': {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// Where.
        location: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An object store request failed (after its retries).
    #[error("cannot {action} '{location}': {source}")]
    Object {
        /// What was attempted.
        action: &'static str,
        /// Where.
        location: String,
        /// The error.
        #[source]
        source: object_store::Error,
    },
    /// [`Location::put_new`] found something already there.
    #[error("'{location}' already exists and is never overwritten")]
    AlreadyExists {
        /// Where.
        location: String,
    },
    /// Nothing is stored at the location.
    #[error("'{location}' does not exist")]
    NotFound {
        /// Where.
        location: String,
    },
    /// The location cannot be used.
    #[error("storage location '{location}' cannot be used: {reason}")]
    Unsupported {
        /// The location as given.
        location: String,
        /// Why, and what to use instead.
        reason: String,
    },
}

/// Result of storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;

/// A file or directory (a key or prefix) in checkpoint storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    inner: Inner,
}

#[derive(Debug, Clone, PartialEq)]
enum Inner {
    Local(PathBuf),
    Object(object::ObjectLocation),
}

impl Location {
    /// Parses a path, a `file://` URI or an `s3://bucket/prefix` URL.
    pub fn parse(raw: &str) -> Result<Location> {
        let unsupported = |reason: String| StorageError::Unsupported { location: raw.to_string(), reason };
        if let Some(path) = raw.strip_prefix("file://") {
            if path.is_empty() {
                return Err(unsupported("a file:// URI needs a path".into()));
            }
            return Ok(Location::local(path));
        }
        match raw.split_once("://") {
            Some(("s3" | "s3a" | "s3p", rest)) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(unsupported("an s3:// URL needs a bucket: s3://bucket/prefix".into()));
                }
                Ok(Location { inner: Inner::Object(object::ObjectLocation::new(bucket, prefix)) })
            }
            Some((scheme, _)) => Err(unsupported(format!(
                "the scheme '{scheme}://' is not supported; use a directory every process shares (a path or \
                 file:// URI) or S3-compatible storage (s3://bucket/prefix)"
            ))),
            None if raw.is_empty() => Err(unsupported("expected a directory or an s3:// URL".into())),
            None => Ok(Location::local(raw)),
        }
    }

    /// A location on the local (or a shared, mounted) file system.
    pub fn local(path: impl Into<PathBuf>) -> Location {
        Location { inner: Inner::Local(path.into()) }
    }

    /// The location `relative` (a `/`-separated path) below this one.
    pub fn join(&self, relative: &str) -> Location {
        let inner = match &self.inner {
            Inner::Local(path) => Inner::Local(path.join(relative)),
            Inner::Object(o) => Inner::Object(o.join(relative)),
        };
        Location { inner }
    }

    /// The last component of the location, if it has one.
    pub fn file_name(&self) -> Option<String> {
        match &self.inner {
            Inner::Local(path) => path.file_name().map(|n| n.to_string_lossy().to_string()),
            Inner::Object(o) => o.file_name(),
        }
    }

    /// The location one level up, if there is one.
    pub fn parent(&self) -> Option<Location> {
        let inner = match &self.inner {
            Inner::Local(path) => Inner::Local(path.parent()?.to_path_buf()),
            Inner::Object(o) => Inner::Object(o.parent()?),
        };
        Some(Location { inner })
    }

    /// The directory, when the location is on a file system.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Local(path) => Some(path),
            Inner::Object(_) => None,
        }
    }

    /// Publishes the local file `source` here, whole or not at all, durably. Large files
    /// go to object storage in parts. Returns the size and xxh3-64 checksum of what was
    /// stored.
    pub fn put_file(&self, source: &Path) -> Result<(u64, u64)> {
        match &self.inner {
            Inner::Local(path) => local::put_file(source, path),
            Inner::Object(o) => o.put_file(source),
        }
    }

    /// Stores `bytes` here, replacing what is there, whole or not at all, durably.
    pub fn put(&self, bytes: Vec<u8>) -> Result<()> {
        match &self.inner {
            Inner::Local(path) => local::put(path, &bytes, false),
            Inner::Object(o) => o.put(bytes, false),
        }
    }

    /// Stores `bytes` here only if nothing is here yet; otherwise fails with
    /// [`StorageError::AlreadyExists`]. Durable once it returns.
    pub fn put_new(&self, bytes: Vec<u8>) -> Result<()> {
        match &self.inner {
            Inner::Local(path) => local::put(path, &bytes, true),
            Inner::Object(o) => o.put(bytes, true),
        }
    }

    /// The content of the file here ([`StorageError::NotFound`] when there is none).
    pub fn read(&self) -> Result<Vec<u8>> {
        match &self.inner {
            Inner::Local(path) => local::read(path),
            Inner::Object(o) => o.read(),
        }
    }

    /// The size of the file here, or `None` when there is none.
    pub fn size(&self) -> Result<Option<u64>> {
        match &self.inner {
            Inner::Local(path) => local::size(path),
            Inner::Object(o) => o.size(),
        }
    }

    /// Copies the file here to the local file `target` (created or replaced) and syncs it.
    /// An `immutable` file in a local directory is hard-linked instead when it can be.
    /// Returns the size and xxh3-64 checksum of the copy.
    pub fn fetch(&self, target: &Path, immutable: bool) -> Result<(u64, u64)> {
        match &self.inner {
            Inner::Local(path) => local::fetch(path, target, immutable),
            Inner::Object(o) => o.fetch(target),
        }
    }

    /// Deletes the file here; nothing there is fine.
    pub fn delete(&self) -> Result<()> {
        match &self.inner {
            Inner::Local(path) => local::delete(path),
            Inner::Object(o) => o.delete(),
        }
    }

    /// Deletes everything below this location (a directory and its content).
    pub fn delete_all(&self) -> Result<()> {
        match &self.inner {
            Inner::Local(path) => local::delete_all(path),
            Inner::Object(o) => o.delete_all(),
        }
    }

    /// The names of what is directly below this location (files and directories), sorted;
    /// none when nothing is there.
    pub fn children(&self) -> Result<Vec<String>> {
        let mut names = match &self.inner {
            Inner::Local(path) => local::children(path)?,
            Inner::Object(o) => o.children()?,
        };
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every file below this location (in every directory under it), as `/`-separated
    /// paths relative to it, sorted; none when nothing is there.
    pub fn files(&self) -> Result<Vec<String>> {
        let mut files = match &self.inner {
            Inner::Local(path) => local::files(path)?,
            Inner::Object(o) => o.files()?,
        };
        files.sort();
        Ok(files)
    }

    /// Copies the file here to `target` (replacing what is there), whole or not at all,
    /// durably; within one bucket, without the bytes leaving the store.
    pub fn copy_to(&self, target: &Location) -> Result<()> {
        match (&self.inner, &target.inner) {
            (Inner::Local(from), Inner::Local(to)) => local::copy(from, to),
            (Inner::Object(from), Inner::Object(to)) => from.copy_to(to),
            (_, _) => target.put(self.read()?),
        }
    }

    /// Whether the location is in this machine's temporary directory, which processes on
    /// other hosts cannot reach.
    pub fn is_machine_local_temp(&self) -> bool {
        self.local_path().is_some_and(|p| p.starts_with(std::env::temp_dir()))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Local(path) => write!(f, "{}", path.display()),
            Inner::Object(o) => write!(f, "{o}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_join_and_print() {
        let s3 = Location::parse("s3://bucket/a/b").unwrap();
        assert_eq!(s3.to_string(), "s3://bucket/a/b");
        assert_eq!(s3.join("chk-1/_metadata").to_string(), "s3://bucket/a/b/chk-1/_metadata");
        assert_eq!(s3.join("chk-1").file_name().as_deref(), Some("chk-1"));
        assert_eq!(s3.join("chk-1").parent().unwrap(), s3);
        assert_eq!(Location::parse("s3a://bucket").unwrap().join("x").to_string(), "s3://bucket/x");
        assert_eq!(Location::parse("file:///data/chk").unwrap(), Location::local("/data/chk"));
        assert_eq!(Location::parse("/data/chk").unwrap().join("shared/1.sst").to_string(), "/data/chk/shared/1.sst");
        let error = Location::parse("hdfs://nn/x").unwrap_err().to_string();
        assert!(error.contains("'hdfs://' is not supported") && error.contains("s3://bucket/prefix"), "{error}");
        assert!(Location::parse("s3:///x").is_err(), "a bucket is required");
        assert!(Location::local(std::env::temp_dir().join("x")).is_machine_local_temp());
        assert!(!s3.is_machine_local_temp());
    }

    #[test]
    fn a_directory_publishes_once_reads_back_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let root = Location::local(dir.path());
        let meta = root.join("chk-1/_metadata");
        meta.put_new(b"first".to_vec()).unwrap();
        let again = meta.put_new(b"second".to_vec()).unwrap_err();
        assert!(matches!(again, StorageError::AlreadyExists { .. }), "{again}");
        assert_eq!(meta.read().unwrap(), b"first");
        root.join("_coordinator").put(b"a".to_vec()).unwrap();
        root.join("_coordinator").put(b"b".to_vec()).unwrap();
        assert_eq!(root.join("_coordinator").read().unwrap(), b"b");

        let source = dir.path().join("source.sst");
        std::fs::write(&source, b"immutable").unwrap();
        let (size, checksum) = root.join("shared/x.sst").put_file(&source).unwrap();
        assert_eq!((size, checksum), (9, xxhash_rust::xxh3::xxh3_64(b"immutable")));
        assert_eq!(root.join("shared/x.sst").size().unwrap(), Some(9));
        assert_eq!(root.join("shared/y.sst").size().unwrap(), None);
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("restored.sst");
        assert_eq!(root.join("shared/x.sst").fetch(&target, true).unwrap(), (size, checksum));
        assert_eq!(std::fs::read(&target).unwrap(), b"immutable");

        assert_eq!(root.children().unwrap(), ["_coordinator", "chk-1", "shared", "source.sst"]);
        root.join("chk-1").delete_all().unwrap();
        root.join("shared/x.sst").delete().unwrap();
        root.join("shared/x.sst").delete().unwrap();
        assert_eq!(root.children().unwrap(), ["_coordinator", "shared", "source.sst"]);
        assert!(matches!(root.join("chk-1/_metadata").read(), Err(StorageError::NotFound { .. })));
        assert!(root.join("nothing").children().unwrap().is_empty());
    }
}
