//! HTTP content codings (`Content-Encoding`: `gzip`, `deflate`, `br`, `zstd`): bodies are
//! recorded decoded, so that people and the diff read them, rules match them and redaction
//! reaches them; replay encodes them again for a client that accepts the recorded coding.
//!
//! The proxies call [`decode_for_record`] on the bytes they captured; the replay index calls
//! [`encode_for_client`] on the answer it is about to serve. The codecs are maintained
//! pure-Rust crates (`flate2` on miniz_oxide, `brotli`, `ruzstd`), so the runtime needs no C
//! toolchain. `spec/protocol/case-format.md` ("Compressed bodies") is the contract.
//!
//! The brotli encoder is the largest of the codecs (about 0.75 MiB of code in a debug test
//! binary) and only replay's re-encoding uses it, so it sits behind the `brotli-encode`
//! feature (the standalone runtime has it). Without it [`Coding::can_encode`] is false for
//! `br` and a recorded `br` answer is served decoded, as to a client that does not accept
//! `br`; captured `br` bodies are decoded either way (`brotli-decompressor`).

use std::io::{Read, Write};

use crate::case::{Body, KeyValue};

/// Attribute noting that the request body is stored decoded: the `Content-Encoding` the
/// request carried on the wire (for example `gzip`).
pub const REQUEST_CODING: &str = "sp.http.request.body.content_encoding";
/// Attribute noting that the response body is stored decoded: the `Content-Encoding` the
/// answer carried on the wire (for example `br`).
pub const RESPONSE_CODING: &str = "sp.http.response.body.content_encoding";
/// Attribute marking a request body that could not be decoded: it is stored as it came (its
/// `Content-Encoding` header kept) and the value says why.
pub const REQUEST_CODING_ERROR: &str = "sp.http.request.body.content_encoding_error";
/// Attribute marking a response body that could not be decoded, as [`REQUEST_CODING_ERROR`].
pub const RESPONSE_CODING_ERROR: &str = "sp.http.response.body.content_encoding_error";

/// One content coding the runtime can decode and encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` (and its alias `x-gzip`), RFC 1952.
    Gzip,
    /// `deflate`: the zlib format of RFC 1950 (raw deflate is also read, as browsers do).
    Deflate,
    /// `br`, RFC 7932.
    Brotli,
    /// `zstd`, RFC 8878.
    Zstd,
}

impl Coding {
    /// The token as written in `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// Whether this build can encode the coding: `br` needs the `brotli-encode` feature.
    pub fn can_encode(self) -> bool {
        self != Coding::Brotli || cfg!(feature = "brotli-encode")
    }

    fn parse(token: &str) -> Option<Self> {
        match token.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodingError {
    /// The header names a coding the runtime does not know.
    #[error("content coding {0:?} is not one of gzip, deflate, br, zstd")]
    Unsupported(String),
    /// The bytes are not valid for the coding.
    #[error("the body is not valid {coding}: {message}")]
    Corrupt {
        /// The coding that failed.
        coding: &'static str,
        /// The codec's explanation.
        message: String,
    },
    /// The decoded body would be larger than the limit (a decompression bomb, or simply too
    /// large to record).
    #[error("the decoded body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The coding's encoder is not part of this build.
    #[error(
        "encoding {coding} needs the `{feature}` feature of softprobe-runtime (softprobe-test: `{feature}`)"
    )]
    EncoderNotBuilt {
        /// The coding that cannot be encoded.
        coding: &'static str,
        /// The feature that builds its encoder.
        feature: &'static str,
    },
}

/// The codings of a `Content-Encoding` value, in the order they were applied. `identity`
/// entries are dropped; an empty result means the body is not encoded.
pub fn parse_codings(header: &str) -> Result<Vec<Coding>, CodingError> {
    header
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("identity"))
        .map(|t| Coding::parse(t).ok_or_else(|| CodingError::Unsupported(t.to_owned())))
        .collect()
}

/// Undoes `codings` (applied in that order), refusing to produce more than `limit` bytes.
pub fn decode(codings: &[Coding], bytes: &[u8], limit: usize) -> Result<Vec<u8>, CodingError> {
    let mut data = bytes.to_vec();
    for &coding in codings.iter().rev() {
        data = decode_one(coding, &data, limit)?;
    }
    Ok(data)
}

fn decode_one(coding: Coding, bytes: &[u8], limit: usize) -> Result<Vec<u8>, CodingError> {
    let read = match coding {
        Coding::Gzip => read_limited(flate2::read::MultiGzDecoder::new(bytes), limit),
        Coding::Deflate => match read_limited(flate2::read::ZlibDecoder::new(bytes), limit) {
            // Some servers send raw deflate under the `deflate` name.
            Err(LimitedRead::Io(zlib_err)) => {
                read_limited(flate2::read::DeflateDecoder::new(bytes), limit).map_err(|e| match e {
                    LimitedRead::TooLarge => LimitedRead::TooLarge,
                    LimitedRead::Io(_) => LimitedRead::Io(zlib_err),
                })
            }
            other => other,
        },
        Coding::Brotli => read_limited(
            brotli_decompressor::Decompressor::new(bytes, 8 * 1024),
            limit,
        ),
        Coding::Zstd => match ruzstd::decoding::StreamingDecoder::new(bytes) {
            Ok(decoder) => read_limited(decoder, limit),
            Err(e) => Err(LimitedRead::Io(std::io::Error::other(e.to_string()))),
        },
    };
    read.map_err(|e| match e {
        LimitedRead::TooLarge => CodingError::TooLarge { limit },
        LimitedRead::Io(e) => CodingError::Corrupt {
            coding: coding.as_str(),
            message: e.to_string(),
        },
    })
}

enum LimitedRead {
    TooLarge,
    Io(std::io::Error),
}

/// Reads everything from `reader`, failing once more than `limit` bytes came out.
fn read_limited(reader: impl Read, limit: usize) -> Result<Vec<u8>, LimitedRead> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(LimitedRead::Io)?;
    if out.len() > limit {
        return Err(LimitedRead::TooLarge);
    }
    Ok(out)
}

/// Applies `codings` in order; fails, naming the feature, for a coding this build cannot
/// encode ([`Coding::can_encode`]).
pub fn encode(codings: &[Coding], bytes: &[u8]) -> Result<Vec<u8>, CodingError> {
    if let Some(missing) = codings.iter().find(|c| !c.can_encode()) {
        return Err(CodingError::EncoderNotBuilt {
            coding: missing.as_str(),
            feature: "brotli-encode",
        });
    }
    let mut data = bytes.to_vec();
    for &coding in codings {
        data = encode_one(coding, &data);
    }
    Ok(data)
}

fn encode_one(coding: Coding, bytes: &[u8]) -> Vec<u8> {
    // Writing into a Vec cannot fail, so the codecs' io::Results are infallible here.
    match coding {
        Coding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let _ = enc.write_all(bytes);
            enc.finish().unwrap_or_default()
        }
        Coding::Deflate => {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            let _ = enc.write_all(bytes);
            enc.finish().unwrap_or_default()
        }
        #[cfg(feature = "brotli-encode")]
        Coding::Brotli => {
            let mut out = Vec::new();
            {
                let mut enc = brotli::CompressorWriter::new(&mut out, 8 * 1024, 5, 22);
                let _ = enc.write_all(bytes);
            }
            out
        }
        Coding::Zstd => {
            ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
        }
        // `encode` refuses it before getting here.
        #[cfg(not(feature = "brotli-encode"))]
        Coding::Brotli => bytes.to_vec(),
    }
}

/// True when an `Accept-Encoding` value accepts `coding`: listed (or `*`) with a non-zero
/// weight, and not listed with `q=0`.
pub fn accepts(accept_encoding: &str, coding: Coding) -> bool {
    let mut star = None;
    for entry in accept_encoding.split(',') {
        let mut parts = entry.split(';');
        let token = parts.next().unwrap_or("").trim();
        let weight_zero = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if token == "*" {
            star = Some(!weight_zero);
        } else if Coding::parse(token) == Some(coding) {
            return !weight_zero;
        }
    }
    star.unwrap_or(false)
}

/// Which side of a hop a body belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request body.
    Request,
    /// The response body.
    Response,
}

impl Side {
    fn attributes(self) -> (&'static str, &'static str) {
        match self {
            Side::Request => (REQUEST_CODING, REQUEST_CODING_ERROR),
            Side::Response => (RESPONSE_CODING, RESPONSE_CODING_ERROR),
        }
    }
}

/// Turns a captured body into what the recording stores. A body whose `Content-Encoding`
/// (in `headers`, lowercase names) decodes within `limit` bytes comes back decoded, the
/// header is removed (the stored body is no longer encoded) and the returned attribute notes
/// the coding; one that does not decode comes back as it came, the header kept, with an
/// attribute saying why. A body without a coding is returned untouched, with no attribute.
pub fn decode_for_record(
    side: Side,
    headers: &mut Vec<(String, String)>,
    bytes: Vec<u8>,
    limit: usize,
) -> (Vec<u8>, Option<KeyValue>) {
    let (coded, failed) = side.attributes();
    let Some(value) = headers
        .iter()
        .find(|(k, _)| k == "content-encoding")
        .map(|(_, v)| v.clone())
    else {
        return (bytes, None);
    };
    if bytes.is_empty() {
        return (bytes, None);
    }
    let decoded = parse_codings(&value).and_then(|codings| {
        if codings.is_empty() {
            Ok(None)
        } else {
            decode(&codings, &bytes, limit).map(Some)
        }
    });
    match decoded {
        Ok(None) => (bytes, None),
        Ok(Some(plain)) => {
            headers.retain(|(k, _)| k != "content-encoding");
            (plain, Some(KeyValue::string(coded, value.trim())))
        }
        Err(e) => (bytes, Some(KeyValue::string(failed, e.to_string()))),
    }
}

/// Prepares a recorded answer for the client that asked: when the recording notes a response
/// coding (`recorded_coding`, the value of [`RESPONSE_CODING`]) and `accept_encoding` accepts
/// every coding in it, the body is encoded again and `Content-Encoding` set; otherwise (or when
/// this build cannot encode one of them: `br` without `brotli-encode`) the decoded body is
/// served as identity.
pub fn encode_for_client(
    recorded_coding: &str,
    accept_encoding: Option<&str>,
    headers: &mut Vec<(String, String)>,
    body: &mut Option<Body>,
) {
    let Ok(codings) = parse_codings(recorded_coding) else {
        return;
    };
    let Some(accept) = accept_encoding else {
        return;
    };
    if codings.is_empty() || !codings.iter().all(|c| accepts(accept, *c)) {
        return;
    }
    let Some(plain) = body.as_ref() else {
        return;
    };
    let Ok(packed) = encode(&codings, plain.as_bytes()) else {
        return;
    };
    *body = Some(Body::Binary(packed));
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-encoding"));
    headers.push((
        "content-encoding".to_owned(),
        recorded_coding.trim().to_owned(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[u8] =
        br#"{"items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"total":"31.50"}"#;

    #[test]
    #[cfg(feature = "brotli-encode")]
    fn every_coding_round_trips() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            let packed = encode(&[coding], JSON).unwrap();
            assert_ne!(packed, JSON, "{coding:?} changed nothing");
            assert_eq!(
                decode(&[coding], &packed, 1 << 20).unwrap(),
                JSON,
                "{coding:?}"
            );
        }
        let stacked = encode(&[Coding::Gzip, Coding::Brotli], JSON).unwrap();
        let codings = parse_codings("gzip, br").unwrap();
        assert_eq!(decode(&codings, &stacked, 1 << 20).unwrap(), JSON);
    }

    #[test]
    fn raw_deflate_is_read_too() {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(JSON).unwrap();
        let raw = enc.finish().unwrap();
        assert_eq!(decode(&[Coding::Deflate], &raw, 1 << 20).unwrap(), JSON);
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(
            parse_codings("gzip, compress").unwrap_err().to_string(),
            "content coding \"compress\" is not one of gzip, deflate, br, zstd"
        );
        assert_eq!(parse_codings("identity").unwrap(), vec![]);
        let err = decode(&[Coding::Gzip], b"not gzip at all", 1 << 20).unwrap_err();
        assert!(
            err.to_string().starts_with("the body is not valid gzip: "),
            "{err}"
        );
        let bomb = encode(&[Coding::Gzip], &vec![b'a'; 10_000]).unwrap();
        assert_eq!(
            decode(&[Coding::Gzip], &bomb, 100).unwrap_err(),
            CodingError::TooLarge { limit: 100 }
        );
    }

    #[test]
    fn accept_encoding_weights_and_wildcards() {
        assert!(accepts("gzip, deflate, br, zstd", Coding::Zstd));
        assert!(accepts("GZIP;q=0.5", Coding::Gzip));
        assert!(!accepts("gzip;q=0, br", Coding::Gzip));
        assert!(accepts("*", Coding::Brotli));
        assert!(!accepts("*, br;q=0", Coding::Brotli));
        assert!(!accepts("identity", Coding::Gzip));
        assert!(!accepts("", Coding::Gzip));
    }

    #[test]
    #[cfg(feature = "brotli-encode")]
    fn recording_decodes_and_marks_or_keeps_and_marks() {
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("content-encoding".to_owned(), "br".to_owned()),
        ];
        let (body, note) = decode_for_record(
            Side::Response,
            &mut headers,
            encode(&[Coding::Brotli], JSON).unwrap(),
            1 << 20,
        );
        assert_eq!(body, JSON);
        assert_eq!(note, Some(KeyValue::string(RESPONSE_CODING, "br")));
        assert_eq!(
            headers.len(),
            1,
            "content-encoding no longer describes the body"
        );

        let mut headers = vec![("content-encoding".to_owned(), "gzip".to_owned())];
        let (body, note) = decode_for_record(
            Side::Request,
            &mut headers,
            b"\x1f\x8bbroken".to_vec(),
            1 << 20,
        );
        assert_eq!(body, b"\x1f\x8bbroken", "stored as it came");
        let note = note.unwrap();
        assert_eq!(note.key, REQUEST_CODING_ERROR);
        assert_eq!(
            headers.len(),
            1,
            "the header still describes the stored bytes"
        );
    }

    #[test]
    #[cfg(feature = "brotli-encode")]
    fn replay_encodes_only_for_a_client_that_accepts() {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let mut body = Some(Body::from_bytes(JSON.to_vec()));
        encode_for_client("br", Some("gzip"), &mut headers, &mut body);
        assert_eq!(
            body.as_ref().unwrap().as_bytes(),
            JSON,
            "identity for gzip-only"
        );

        encode_for_client("br", Some("gzip, br"), &mut headers, &mut body);
        let packed = body.unwrap();
        assert_eq!(
            decode(&[Coding::Brotli], packed.as_bytes(), 1 << 20).unwrap(),
            JSON
        );
        assert!(headers.contains(&("content-encoding".to_owned(), "br".to_owned())));
    }

    #[test]
    #[cfg(not(feature = "brotli-encode"))]
    fn without_the_encoder_br_is_refused_by_name_and_served_as_identity() {
        let err = encode(&[Coding::Brotli], JSON).unwrap_err();
        assert_eq!(
            err.to_string(),
            "encoding br needs the `brotli-encode` feature of softprobe-runtime \
             (softprobe-test: `brotli-encode`)"
        );
        let mut headers = Vec::new();
        let mut body = Some(Body::from_bytes(JSON.to_vec()));
        encode_for_client("gzip, br", Some("gzip, br"), &mut headers, &mut body);
        assert_eq!(body.unwrap().as_bytes(), JSON);
        assert!(headers.is_empty(), "{headers:?}");
    }
}
