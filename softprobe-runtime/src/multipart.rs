//! `multipart/form-data` bodies compared part by part. Every client picks a new random
//! boundary for each upload, so two uploads of the same form never have equal bytes; what
//! matters is the parts: name, file name, content type and content.
//!
//! A capture notes the parts of a multipart request in `sp.http.request.body.parts` (content
//! inline up to [`INLINE_PART_LIMIT`] bytes, a SHA-256 digest above it); replay prefers the
//! recording whose parts equal the live request's, and a miss report lists the parts that
//! differ. Parsing uses `multer` over the already-buffered body.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::case::{Exchange, KeyValue};

/// Attribute listing the parts of a multipart request body (JSON text, an array of
/// [`Part`]).
pub const REQUEST_PARTS: &str = "sp.http.request.body.parts";
/// Parts longer than this many bytes (64 KiB) are noted by their SHA-256 digest and length
/// instead of their content.
pub const INLINE_PART_LIMIT: usize = 64 * 1024;

/// One part of a multipart body, as recorded and compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// The form field name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The file name of a file part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The part's content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Content length in bytes.
    pub size: usize,
    /// The content, when it is UTF-8 text up to the inline limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The content as base64, when it is binary up to the inline limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Lowercase hex SHA-256 of the content, when it is above the inline limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Part {
    fn new(
        name: Option<String>,
        filename: Option<String>,
        content_type: Option<String>,
        content: &[u8],
    ) -> Self {
        let mut part = Part {
            name,
            filename,
            content_type,
            size: content.len(),
            text: None,
            base64: None,
            sha256: None,
        };
        if content.len() > INLINE_PART_LIMIT {
            part.sha256 = Some(crate::case::diff::sha256_hex(content));
        } else {
            match std::str::from_utf8(content) {
                Ok(text) => part.text = Some(text.to_owned()),
                Err(_) => {
                    part.base64 = Some(base64::engine::general_purpose::STANDARD.encode(content))
                }
            }
        }
        part
    }

    fn label(&self) -> String {
        match (&self.name, &self.filename) {
            (Some(n), Some(f)) => format!("{n:?} ({f})"),
            (Some(n), None) => format!("{n:?}"),
            (None, Some(f)) => format!("({f})"),
            (None, None) => "(unnamed)".to_owned(),
        }
    }

    fn content_summary(&self) -> String {
        if let Some(t) = &self.text {
            let short: String = t.chars().take(60).collect();
            if short.len() < t.len() {
                return format!("{short:?}… ({} bytes)", self.size);
            }
            return format!("{t:?}");
        }
        if let Some(sha) = &self.sha256 {
            return format!("{} bytes, sha256 {}", self.size, &sha[..sha.len().min(16)]);
        }
        format!("{} bytes of binary", self.size)
    }
}

/// True for a `multipart/form-data` content type.
pub fn is_multipart(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    })
}

/// The parts of a multipart body whose content type (with its boundary) is `content_type`.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = multer::parse_boundary(content_type).map_err(|e| e.to_string())?;
    let bytes = Bytes::copy_from_slice(body);
    let stream =
        futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let parse = async move {
        let mut parts = Vec::new();
        while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().map(str::to_owned);
            let filename = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(|m| m.to_string());
            let content = field.bytes().await.map_err(|e| e.to_string())?;
            parts.push(Part::new(name, filename, content_type, &content));
        }
        Ok(parts)
    };
    // The whole body is in memory, so the parser never waits: one poll finishes it.
    match pin!(parse).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err("the multipart parser waited for more input".to_owned()),
    }
}

/// The [`REQUEST_PARTS`] attribute for a request body, when it is a multipart form that
/// parses.
pub(crate) fn parts_attribute(content_type: Option<&str>, body: &[u8]) -> Option<KeyValue> {
    if !is_multipart(content_type) {
        return None;
    }
    let parts = parse(content_type?, body).ok()?;
    Some(KeyValue::string(
        REQUEST_PARTS,
        serde_json::to_string(&parts).ok()?,
    ))
}

/// The recorded parts of a hop, when it noted them.
pub fn recorded_parts(ex: &Exchange) -> Option<Vec<Part>> {
    let kv = ex
        .extra_attributes
        .iter()
        .find(|kv| kv.key == REQUEST_PARTS)?;
    serde_json::from_str(kv.value.as_str()?).ok()
}

/// The parts of a live request, when it is a multipart form.
pub(crate) fn live_parts(headers: &[(String, String)], body: Option<&[u8]>) -> Option<Vec<Part>> {
    let ct = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    if !is_multipart(ct) {
        return None;
    }
    parse(ct?, body.unwrap_or_default()).ok()
}

/// One line per difference between recorded and live parts, in part order:
/// `part 2 "file" (a.csv): content: expected "x", got "y"`.
pub fn differences(expected: &[Part], actual: &[Part]) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..expected.len().max(actual.len()) {
        match (expected.get(i), actual.get(i)) {
            (Some(e), None) => out.push(format!("part {}: {} is missing", i + 1, e.label())),
            (None, Some(a)) => out.push(format!("part {}: {} was not recorded", i + 1, a.label())),
            (Some(e), Some(a)) => {
                let at = format!("part {} {}", i + 1, e.label());
                if e.name != a.name {
                    out.push(format!(
                        "{at}: name: expected {:?}, got {:?}",
                        e.name, a.name
                    ));
                }
                if e.filename != a.filename {
                    out.push(format!(
                        "{at}: filename: expected {:?}, got {:?}",
                        e.filename, a.filename
                    ));
                }
                if e.content_type != a.content_type {
                    out.push(format!(
                        "{at}: content type: expected {:?}, got {:?}",
                        e.content_type, a.content_type
                    ));
                }
                if (e.size, &e.text, &e.base64, &e.sha256)
                    != (a.size, &a.text, &a.base64, &a.sha256)
                {
                    out.push(format!(
                        "{at}: content: expected {}, got {}",
                        e.content_summary(),
                        a.content_summary()
                    ));
                }
            }
            (None, None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(boundary: &str, file: &[u8]) -> Vec<u8> {
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"order\"\r\n\r\n42\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        body
    }

    #[test]
    fn the_boundary_does_not_matter_the_parts_do() {
        let a = parse(
            "multipart/form-data; boundary=aaa",
            &form("aaa", b"sku,qty\nA-1,2\n"),
        )
        .unwrap();
        let b = parse(
            "multipart/form-data; boundary=XyZ",
            &form("XyZ", b"sku,qty\nA-1,2\n"),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].filename.as_deref(), Some("a.csv"));
        assert_eq!(a[1].content_type.as_deref(), Some("text/csv"));
        let c = parse(
            "multipart/form-data; boundary=q",
            &form("q", b"sku,qty\nB-7,1\n"),
        )
        .unwrap();
        assert_eq!(
            differences(&a, &c),
            vec![
                r#"part 2 "file" (a.csv): content: expected "sku,qty\nA-1,2\n", got "sku,qty\nB-7,1\n""#
            ]
        );
    }

    #[test]
    fn large_parts_are_digests_and_bad_bodies_are_named() {
        let big = vec![b'x'; INLINE_PART_LIMIT + 1];
        let parts = parse("multipart/form-data; boundary=b", &form("b", &big)).unwrap();
        assert_eq!(parts[1].size, big.len());
        assert!(parts[1].text.is_none());
        assert_eq!(parts[1].sha256.as_ref().unwrap().len(), 64);
        assert!(
            parse("multipart/form-data", b"")
                .unwrap_err()
                .contains("boundary")
        );
    }
}
