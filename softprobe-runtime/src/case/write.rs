//! Atomic file writes: a temporary file beside the target, flushed to disk, renamed over it,
//! then the directory flushed. A crash at any point leaves the old file or the new one,
//! never a mix.

use std::io::Write as _;
use std::path::Path;

use super::CaseError;

/// Writes `bytes` to `path` atomically, creating parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CaseError> {
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
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io("cannot create a temporary file beside it"))?;
    tmp.write_all(bytes).map_err(io("cannot write"))?;
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
    Ok(())
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
