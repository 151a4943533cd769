//! The capture root: the one directory captures may be written under, so that a close call
//! (whose `?out=` anyone who reaches the control API chooses) cannot write a file wherever
//! the runtime's user can. `..`, absolute paths elsewhere and symbolic links that lead out
//! are refused with [`Error::CaptureOutsideRoot`], before anything is created.
//!
//! The root is `--capture-root` when given; else the directory of the configured capture
//! path template (its leading part without placeholders); else the working directory.
//! `--allow-capture-outside-root` turns the check off ([`CaptureRoot::Anywhere`]).
//!
//! The check resolves the path the way the OS will when the file is written: every part
//! that exists is resolved through its symbolic links, and the file is then written to the
//! resolved path, so a link swapped in later by someone else cannot redirect the write of a
//! directory that was checked. (A directory replaced by a link between the check and the
//! write is outside what this guards against: that attacker already writes the root.)

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The flag that sets the root.
pub const CAPTURE_ROOT_ENV: &str = "SOFTPROBE_CAPTURE_ROOT";

/// Where captures may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureRoot {
    /// Under this directory only (absolute, symbolic links resolved).
    Under(PathBuf),
    /// Anywhere the runtime's user can write (`--allow-capture-outside-root`).
    Anywhere,
}

impl CaptureRoot {
    /// The root for a runtime: `explicit` (`--capture-root`) when given, else the directory
    /// of `template` before its first placeholder, else the working directory. Relative
    /// paths are taken from the working directory.
    pub fn for_config(explicit: Option<&Path>, template: Option<&str>) -> Result<CaptureRoot> {
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            context: "reading the working directory for the capture root".into(),
            source,
        })?;
        // An object-store template (`s3://…`) says nothing about local directories.
        let local_template = template
            .filter(|t| !t.trim().is_empty())
            .filter(|t| crate::case::location::url_scheme(t).is_none());
        let dir = match (explicit, local_template) {
            (Some(dir), _) => dir.to_owned(),
            (None, Some(template)) => template_dir(template),
            (None, None) => PathBuf::new(),
        };
        let (resolved, _) = resolve(&cwd.join(dir));
        Ok(CaptureRoot::Under(resolved))
    }

    /// The root directory, unless captures may go anywhere.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            CaptureRoot::Under(dir) => Some(dir),
            CaptureRoot::Anywhere => None,
        }
    }

    /// The file to write for the capture path `path` (relative paths are taken from the
    /// working directory): `path` with its existing parts resolved, when that lies under
    /// the root; otherwise [`Error::CaptureOutsideRoot`] saying how it leaves the root.
    pub fn confine(&self, path: &Path) -> Result<PathBuf> {
        let absolute = std::path::absolute(path).map_err(|source| Error::Io {
            context: format!("resolving the capture path {}", path.display()),
            source,
        })?;
        let (resolved, followed_link) = resolve(&absolute);
        let CaptureRoot::Under(root) = self else {
            return Ok(resolved);
        };
        if resolved.starts_with(root) {
            if let Ok(meta) = std::fs::symlink_metadata(&resolved)
                && meta.file_type().is_symlink()
            {
                // Only a dangling link is left unresolved.
                return Err(outside(path, root, "a symbolic link to a missing file"));
            }
            return Ok(resolved);
        }
        let reason = if followed_link {
            "a symbolic link leads out of it"
        } else if path.components().any(|c| c == Component::ParentDir) {
            "`..` leads out of it"
        } else {
            "an absolute path elsewhere"
        };
        Err(outside(path, root, reason))
    }
}

fn outside(path: &Path, root: &Path, reason: &str) -> Error {
    Error::CaptureOutsideRoot {
        path: path.to_owned(),
        root: root.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The leading directories of a template, up to (not including) the first component with
/// a placeholder or the file name.
fn template_dir(template: &str) -> PathBuf {
    let path = Path::new(template);
    let mut dir = PathBuf::new();
    let parent = path.parent().unwrap_or(Path::new(""));
    for component in parent.components() {
        if component.as_os_str().to_string_lossy().contains('{') {
            break;
        }
        dir.push(component);
    }
    dir
}

/// `path` (absolute) with `.` dropped and, for every prefix that exists, symbolic links and
/// `..` resolved as the OS would; the parts that do not exist yet are appended as written,
/// a `..` among them removing the part before it (every prefix is looked at, so a link
/// reached again through such a `..` is still resolved). Returns whether a link was
/// followed.
fn resolve(path: &Path) -> (PathBuf, bool) {
    let mut resolved = PathBuf::new();
    let mut followed = false;
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => resolved.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                resolved.push(name);
                let is_link = std::fs::symlink_metadata(&resolved)
                    .is_ok_and(|meta| meta.file_type().is_symlink());
                // A dangling link stays as it is; `confine` refuses it.
                if is_link && let Ok(target) = std::fs::canonicalize(&resolved) {
                    resolved = target;
                    followed = true;
                }
            }
        }
    }
    (resolved, followed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<PathBuf>) -> String {
        match r {
            Ok(p) => format!("ok {}", p.display()),
            Err(Error::CaptureOutsideRoot { reason, .. }) => reason,
            Err(e) => format!("other {e}"),
        }
    }

    #[test]
    fn paths_stay_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join("cases")).unwrap();
        std::fs::create_dir_all(base.join("elsewhere")).unwrap();
        let r = CaptureRoot::Under(root.clone());

        assert_eq!(
            r.confine(&root.join("cases/a.case.json")).unwrap(),
            root.join("cases/a.case.json")
        );
        assert_eq!(
            r.confine(&root.join("new/dir/./b.case.json")).unwrap(),
            root.join("new/dir/b.case.json")
        );
        assert_eq!(
            r.confine(&root.join("cases/../c.case.json")).unwrap(),
            root.join("c.case.json")
        );
        assert_eq!(
            code(r.confine(&root.join("../elsewhere/x.json"))),
            "`..` leads out of it"
        );
        assert_eq!(
            code(r.confine(&base.join("elsewhere/x.json"))),
            "an absolute path elsewhere"
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join("elsewhere"), root.join("out")).unwrap();
            assert_eq!(
                code(r.confine(&root.join("out/x.json"))),
                "a symbolic link leads out of it"
            );
            std::os::unix::fs::symlink(root.join("cases"), root.join("in")).unwrap();
            assert_eq!(
                r.confine(&root.join("in/x.json")).unwrap(),
                root.join("cases/x.json")
            );
            std::os::unix::fs::symlink(base.join("missing"), root.join("dangling.json")).unwrap();
            assert_eq!(
                code(r.confine(&root.join("dangling.json"))),
                "a symbolic link to a missing file"
            );
        }
        assert_eq!(
            CaptureRoot::Anywhere
                .confine(&base.join("elsewhere/x.json"))
                .unwrap(),
            base.join("elsewhere/x.json")
        );
    }

    #[test]
    fn the_root_comes_from_the_flag_the_template_or_the_working_directory() {
        assert_eq!(
            template_dir("cases/{sessionId}.case.json"),
            Path::new("cases")
        );
        assert_eq!(
            template_dir("/cases/checkout.case.json"),
            Path::new("/cases")
        );
        assert_eq!(template_dir("{mode}/x.json"), Path::new(""));
        assert_eq!(template_dir("x.json"), Path::new(""));
        let cwd = std::fs::canonicalize(std::env::current_dir().unwrap()).unwrap();
        assert_eq!(
            CaptureRoot::for_config(None, None).unwrap(),
            CaptureRoot::Under(cwd.clone())
        );
        assert_eq!(
            CaptureRoot::for_config(None, Some("e2e/{sessionId}.json")).unwrap(),
            CaptureRoot::Under(cwd.join("e2e"))
        );
        assert_eq!(
            CaptureRoot::for_config(Some(Path::new("/")), Some("e2e/x.json")).unwrap(),
            CaptureRoot::Under(PathBuf::from("/"))
        );
    }
}
