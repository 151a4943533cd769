//! Atomic file writes: a temporary file beside the target, flushed to disk, renamed over it,
//! then the directory flushed. A crash at any point leaves the old file or the new one,
//! never a mix. The temporary file's name carries the writer's process id, so a later
//! write to the same path removes the ones left by writers that were killed mid-write.
//!
//! [`write_atomic_with`] streams the document into the temporary file through a buffer as it
//! is serialized, so writing a large capture never holds the whole document in memory.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::CaseError;

/// Writes `bytes` to `path` atomically, creating parent directories; an `s3://` location
/// is written in one PUT, any other URL refused (see [`super::location`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CaseError> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// How much of a streamed document is buffered before it goes to the temporary file.
pub(super) const WRITE_BUFFER: usize = 256 * 1024;

/// [`write_atomic`] for a document produced by `produce` as it writes into the given
/// writer: a local file receives it through a buffer (256 KiB), so the whole
/// document is never in memory; an `s3://` object is collected first (one PUT). Either way
/// the target holds the old document or the complete new one, never a part.
pub fn write_atomic_with(
    path: &Path,
    produce: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CaseError> {
    write_atomic_when(path, |out| produce(out).map(|()| true)).map(drop)
}

/// [`write_atomic_with`] for a producer that decides only once it has written everything
/// whether the new document should replace the old one: when `produce` answers false, the
/// temporary file is removed and the target left as it was. Answers whether it was replaced.
pub(crate) fn write_atomic_when(
    path: &Path,
    produce: impl FnOnce(&mut dyn Write) -> std::io::Result<bool>,
) -> Result<bool, CaseError> {
    if let super::location::CaseLocation::S3 { bucket, key } =
        super::location::CaseLocation::parse(path)?
    {
        let mut bytes = Vec::new();
        let keep = produce(&mut bytes).map_err(|source| CaseError::Io {
            path: path.to_owned(),
            action: "cannot serialize",
            source,
        })?;
        if keep {
            super::location::put_object(path, bucket, key, &bytes)?;
        }
        return Ok(keep);
    }
    let io = |action: &'static str| {
        move |source: std::io::Error| CaseError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io("cannot create the parent directory"))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "case".to_owned());
    remove_orphaned_temporaries(dir, &file_name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}.{}.", std::process::id()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io("cannot create a temporary file beside it"))?;
    {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, tmp.as_file_mut());
        if !produce(&mut out).map_err(io("cannot write"))? {
            // The temporary file is removed when it is dropped.
            return Ok(false);
        }
        out.flush().map_err(io("cannot write"))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(io("cannot flush to disk"))?;
    tmp.persist(path)
        .map_err(|e| io("cannot rename the temporary file over it")(e.error))?;
    // The rename is durable only once the directory entry is.
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(true)
}

/// Removes `.{file_name}.{pid}.*.tmp` files beside the target whose writer process no longer
/// runs (it was killed between creating and renaming them). Linux only: elsewhere there is no
/// cheap way to ask whether a process id is alive, and nothing is removed.
fn remove_orphaned_temporaries(dir: &Path, file_name: &str) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{file_name}.");
    let own = std::process::id().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name
            .strip_prefix(&prefix)
            .filter(|_| name.ends_with(".tmp"))
        else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('.') else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || pid == own {
            continue;
        }
        if !proc.join(pid).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/out.case.json");
        write_atomic(&path, b"one\n").unwrap();
        write_atomic(&path, b"two\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn temporaries_of_dead_writers_are_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.case.json");
        // No process has pid 0 in /proc; the running test process is alive.
        let dead = dir.path().join(".out.case.json.0.abc123.tmp");
        let alive = dir
            .path()
            .join(format!(".out.case.json.{}.abc123.tmp", std::process::id()));
        let other_file = dir.path().join(".other.case.json.0.abc123.tmp");
        for p in [&dead, &alive, &other_file] {
            std::fs::write(p, "partial").unwrap();
        }
        write_atomic(&path, b"new\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        if Path::new("/proc/self").exists() {
            assert!(!dead.exists(), "the dead writer's temporary is still there");
        }
        assert!(alive.exists(), "a live writer's temporary was removed");
        assert!(other_file.exists(), "another file's temporary was removed");
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_directory_is_a_clear_error_and_keeps_the_old_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.case.json");
        write_atomic(&path, b"old\n").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        let result = write_atomic(&path, b"new\n");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // root ignores directory permissions; only check the error when it happened.
        if let Err(err) = result {
            assert!(err.to_string().contains("out.case.json"), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), b"old\n");
        }
    }
}
