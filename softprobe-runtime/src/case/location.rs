//! Where a case lives: a local path, or an object in S3-compatible storage
//! (`s3://bucket/key`). Every read and write of a case file goes through [`read_bytes`] and
//! [`write_atomic`](super::write_atomic), which ask [`CaseLocation::parse`] first, so a URL
//! is never taken for a relative path (which would create a directory named `s3:`).
//!
//! Objects are written with the `object_store` crate in one PUT (atomic: readers see the
//! old object or the new one). Endpoint, region and credentials come from the standard AWS
//! variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`). Without the
//! `object-storage` feature an `s3://` location is refused like any unknown scheme.

use std::path::Path;

use super::CaseError;

/// The schemes a case location may have.
pub const SUPPORTED_SCHEMES: &[&str] = &["s3"];

/// A parsed case location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseLocation<'a> {
    /// A file on the local file system.
    File(&'a Path),
    /// An object in S3-compatible storage.
    S3 {
        /// The bucket.
        bucket: &'a str,
        /// The object key (no leading `/`).
        key: &'a str,
    },
}

impl<'a> CaseLocation<'a> {
    /// Classifies `path`: `scheme://...` is a URL (only `s3://bucket/key` is supported; any
    /// other scheme is refused with an error naming it), anything else a local path.
    pub fn parse(path: &'a Path) -> Result<Self, CaseError> {
        let Some(text) = path.to_str() else {
            return Ok(CaseLocation::File(path));
        };
        let Some(scheme) = url_scheme(text) else {
            return Ok(CaseLocation::File(path));
        };
        let refuse = |reason: String| CaseError::Location {
            location: text.to_owned(),
            reason,
        };
        if !scheme.eq_ignore_ascii_case("s3") {
            return Err(refuse(format!(
                "the `{scheme}://` scheme is not supported: cases live in local files or in \
                 S3-compatible object storage (`s3://bucket/prefix/{{sessionId}}.case.json`)"
            )));
        }
        let rest = &text[scheme.len() + 3..];
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let key = key.trim_start_matches('/');
        if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
            return Err(refuse(
                "an s3:// location needs a bucket and an object key: \
                 s3://bucket/prefix/name.case.json"
                    .into(),
            ));
        }
        if !cfg!(feature = "object-storage") {
            return Err(refuse(
                "this build of softprobe has no object storage support (cargo feature \
                 `object-storage`)"
                    .into(),
            ));
        }
        Ok(CaseLocation::S3 { bucket, key })
    }
}

/// The scheme of `text` when it starts like a URL (`letters://`), else `None`. Windows drive
/// letters (`C:\`) and plain relative paths are not URLs.
pub fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Checks that a capture path template (`SOFTPROBE_CAPTURE_CASE_PATH`, `?out=`) names a
/// place the runtime can write; called at start so a wrong scheme fails before any capture.
pub fn check_writable(template: &str) -> Result<(), CaseError> {
    // Placeholders stand for ids and stamps; any value will do for the check.
    let sample = template
        .replace("{sessionId}", "sess_check")
        .replace("{ts}", "0")
        .replace("{mode}", "capture");
    CaseLocation::parse(Path::new(&sample))
        .map(|_| ())
        .map_err(|err| match err {
            CaseError::Location { reason, .. } => CaseError::Location {
                location: template.to_owned(),
                reason,
            },
            other => other,
        })
}

/// Reads the bytes of the case at `path` (a file, or an `s3://` object).
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, CaseError> {
    match CaseLocation::parse(path)? {
        CaseLocation::File(file) => std::fs::read(file).map_err(|source| CaseError::Io {
            path: file.to_owned(),
            action: "cannot read case file",
            source,
        }),
        CaseLocation::S3 { bucket, key } => object::get(path, bucket, key),
    }
}

/// Writes `bytes` to the `s3://` object at `path` in one PUT. Callers have classified the
/// location already.
pub(super) fn put_object(
    path: &Path,
    bucket: &str,
    key: &str,
    bytes: &[u8],
) -> Result<(), CaseError> {
    object::put(path, bucket, key, bytes)
}

#[cfg(feature = "object-storage")]
mod object {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use object_store::aws::AmazonS3Builder;
    use object_store::path::Path as ObjectPath;
    use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};

    use super::CaseError;

    /// How long one request to the object store may take.
    const TIMEOUT: Duration = Duration::from_secs(30);

    fn failed(path: &Path, action: &str, err: impl std::fmt::Display) -> CaseError {
        CaseError::Location {
            location: path.display().to_string(),
            reason: format!("{action}: {err}"),
        }
    }

    fn store(path: &Path, bucket: &str) -> Result<Arc<dyn ObjectStore>, CaseError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_client_options(ClientOptions::new().with_timeout(TIMEOUT));
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        builder
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            .map_err(|e| failed(path, "cannot configure the S3 client", e))
    }

    /// Runs an object store request to completion on a runtime of its own, on a thread of
    /// its own: callers are synchronous and may sit on a runtime's worker thread, where
    /// blocking on another runtime is not allowed.
    fn run<T: Send>(fut: impl std::future::Future<Output = T> + Send) -> Result<T, std::io::Error> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map(|rt| rt.block_on(fut))
                })
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("object store request panicked")))
        })
    }

    pub(super) fn get(path: &Path, bucket: &str, key: &str) -> Result<Vec<u8>, CaseError> {
        let store = store(path, bucket)?;
        let location = ObjectPath::from(key);
        let result = run(async move {
            let got = store.get(&location).await?;
            got.bytes().await
        })
        .map_err(|e| failed(path, "cannot start the S3 client", e))?;
        result
            .map(|b| b.to_vec())
            .map_err(|e| failed(path, "cannot read the object", e))
    }

    pub(super) fn put(path: &Path, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), CaseError> {
        let store = store(path, bucket)?;
        let location = ObjectPath::from(key);
        let payload = PutPayload::from(bytes.to_vec());
        run(async move { store.put(&location, payload).await })
            .map_err(|e| failed(path, "cannot start the S3 client", e))?
            .map(|_| ())
            .map_err(|e| failed(path, "cannot write the object", e))
    }
}

#[cfg(not(feature = "object-storage"))]
mod object {
    use std::path::Path;

    use super::CaseError;

    // `CaseLocation::parse` refuses s3:// without the feature, so these are never reached.
    fn refused(path: &Path) -> CaseError {
        CaseError::Location {
            location: path.display().to_string(),
            reason: "this build has no object storage support".into(),
        }
    }

    pub(super) fn get(path: &Path, _: &str, _: &str) -> Result<Vec<u8>, CaseError> {
        Err(refused(path))
    }

    pub(super) fn put(path: &Path, _: &str, _: &str, _: &[u8]) -> Result<(), CaseError> {
        Err(refused(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls_are_told_apart() {
        let p = Path::new("captures/x.case.json");
        assert_eq!(CaseLocation::parse(p).unwrap(), CaseLocation::File(p));
        let p = Path::new("C:\\captures\\x.case.json");
        assert_eq!(CaseLocation::parse(p).unwrap(), CaseLocation::File(p));
        assert_eq!(url_scheme("gs://b/k"), Some("gs"));
        assert_eq!(url_scheme("./a://b"), None);
    }

    #[test]
    fn unknown_schemes_are_refused_by_name() {
        for url in ["gs://bucket/x.case.json", "az://c/x.case.json", "file://x"] {
            let err = CaseLocation::parse(Path::new(url)).unwrap_err().to_string();
            let scheme = url.split("://").next().unwrap();
            assert!(
                err.contains(&format!("`{scheme}://` scheme is not supported")),
                "{err}"
            );
            assert!(err.starts_with(url), "{err}");
        }
        let err = check_writable("gs://b/{sessionId}.case.json").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("gs://b/{sessionId}.case.json: the `gs://`"),
            "{err}"
        );
    }

    #[test]
    fn s3_needs_a_bucket_and_a_key() {
        for url in [
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3://bucket/dir/",
        ] {
            let err = CaseLocation::parse(Path::new(url)).unwrap_err().to_string();
            assert!(
                err.contains("needs a bucket and an object key"),
                "{url}: {err}"
            );
        }
        #[cfg(feature = "object-storage")]
        assert_eq!(
            CaseLocation::parse(Path::new("s3://b/p/x.case.json")).unwrap(),
            CaseLocation::S3 {
                bucket: "b",
                key: "p/x.case.json"
            }
        );
    }
}
