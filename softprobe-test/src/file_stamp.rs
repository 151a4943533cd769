//! Telling that a case file is unchanged from its metadata alone, so a test replaying a case
//! this process has already read and indexed does not open and read the file again (the
//! open, read and close were 2 % of a whole replay test's samples in a profile of
//! `softprobe-bench --only 1b`).
//!
//! The rule is git's answer to "racily clean" index entries. Any write to a file, or a file
//! renamed over it, sets its change time (`ctime`, which no program can set back) to the
//! current time, and a rename gives it another inode. So a file whose device, inode, length,
//! modification and change times are all those it had when it was read has not been
//! written since, provided the read came well after the last change: file times are taken
//! from a coarse clock (one tick can be several milliseconds), and a write in the same tick
//! as the change before it would leave the times as they were. [`FileStamp::settled`] asks
//! for [`SETTLE`] between the last change and the start of the read; until then the file is
//! read and compared byte for byte as before.

use std::fs::Metadata;
use std::time::{Duration, SystemTime};

/// How long before a read a file's last change must be for its stamp to stand for its bytes.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// What a file's metadata says about its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: SystemTime,
    /// Device, inode and change time (seconds, nanoseconds).
    #[cfg(unix)]
    node: (u64, u64, i64, i64),
}

impl FileStamp {
    /// The stamp of a file's metadata; `None` where the platform gives no modification time.
    pub(crate) fn of(meta: &Metadata) -> Option<FileStamp> {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok()?,
            #[cfg(unix)]
            node: (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// The last time the file's contents or name changed, as far as the stamp tells.
    fn changed(&self) -> SystemTime {
        #[cfg(unix)]
        {
            let (_, _, secs, nanos) = self.node;
            let ctime = u64::try_from(secs)
                .ok()
                .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s)))
                .and_then(|t| t.checked_add(Duration::from_nanos(nanos.max(0) as u64)));
            // A change time before 1970 is not trusted: treat it as just now.
            ctime.map_or(SystemTime::now(), |c| c.max(self.modified))
        }
        #[cfg(not(unix))]
        {
            self.modified
        }
    }

    /// Whether this stamp, taken before a read that started at `read_at`, stands for the
    /// bytes that read returned: the file's last change came at least [`SETTLE`] before it.
    pub(crate) fn settled(&self, read_at: SystemTime) -> bool {
        cfg!(unix)
            && self
                .changed()
                .checked_add(SETTLE)
                .is_some_and(|settled| settled < read_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_stands_for_the_bytes_only_once_the_file_has_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.case.json");
        std::fs::write(&path, b"{\"a\":1}").unwrap();
        let stamp = FileStamp::of(&std::fs::metadata(&path).unwrap()).unwrap();
        let now = SystemTime::now();
        assert!(
            !stamp.settled(now),
            "a file written just now may be written again within the same tick"
        );
        assert!(stamp.settled(now + SETTLE + Duration::from_millis(50)));
    }

    #[test]
    fn writing_or_replacing_the_file_changes_its_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.case.json");
        std::fs::write(&path, b"{\"a\":1}").unwrap();
        let first = FileStamp::of(&std::fs::metadata(&path).unwrap()).unwrap();
        // Another file renamed over it (how captures and `softprobe scrub` write a case),
        // with the same length: another inode.
        let other = dir.path().join("b.tmp");
        std::fs::write(&other, b"{\"a\":2}").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let replaced = FileStamp::of(&std::fs::metadata(&path).unwrap()).unwrap();
        assert_ne!(
            first, replaced,
            "a file renamed over the case has another stamp"
        );
        // Written in place after the change time has moved on: another change time.
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(&path, b"{\"a\":3}").unwrap();
        let written = FileStamp::of(&std::fs::metadata(&path).unwrap()).unwrap();
        assert_ne!(
            replaced, written,
            "a file written in place has another stamp"
        );
    }
}
