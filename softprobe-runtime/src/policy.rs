//! The session policy: what happens to an outbound hop that no rule and no captured exchange
//! answers (`externalHttp`, `externalAllowlist`, `defaultOnMiss`), plus the lowest rule layer.
//!
//! [`crate::replay::Engine`] applies it; the control API parses it from
//! `POST /v1/sessions/{id}/policy` and shows it in `state`.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::json::PathPattern;
use crate::request::host::split_port;
use crate::request::host::{host_matches, normalize_host};
use crate::rules::parse::{Obj, RawRule, convert_rules, str_enum, unwrap_all};
use crate::rules::{Rule, RulesError};

/// Whether outbound hops may reach real hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternalHttp {
    /// Unanswered outbound hops go upstream.
    #[default]
    Allow,
    /// Unanswered outbound hops to hosts not allowlisted get the strict-miss answer (599).
    Strict,
}

/// What an unanswered outbound hop gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultOnMiss {
    /// Forward upstream (unless `externalHttp` is strict).
    #[default]
    Passthrough,
    /// The strict-miss answer, even when `externalHttp` is allow.
    Error,
}

/// What a replayed outbound request that differs from its recording does to the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftAction {
    /// The drift is recorded and fails the replay (the default, strict or not).
    #[default]
    Fail,
    /// The drift is recorded and shown, but the replay passes.
    Warn,
    /// Requests are not compared with their recordings.
    Ignore,
}

str_enum!(DriftAction {
    "fail" => DriftAction::Fail,
    "warn" => DriftAction::Warn,
    "ignore" => DriftAction::Ignore,
});

/// How replay plays back a recorded stream (a hop with `sp.http.response.body.chunks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamTiming {
    /// The whole body at once, unless the hop itself asks for its recorded timing
    /// (`sp.replay.stream_timing`).
    #[default]
    Immediate,
    /// Every recorded stream with its chunks at their recorded offsets.
    Recorded,
}

str_enum!(StreamTiming {
    "immediate" => StreamTiming::Immediate,
    "recorded" => StreamTiming::Recorded,
});

/// Fields of a request named by a test: body fields as JSON paths (`.body.items[].at` or
/// `$.items[*].at`; a form body's fields are its top-level members), `header:<name>` and
/// `query:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    /// As written.
    pub selectors: Vec<String>,
    /// Body fields.
    pub body: Vec<PathPattern>,
    /// Header names, lowercase.
    pub headers: Vec<String>,
    /// Query parameter names.
    pub query: Vec<String>,
}

impl Fields {
    /// Parses selectors; the error names the one that is not a field.
    pub fn parse<S: AsRef<str>>(selectors: &[S]) -> Result<Self, String> {
        let mut out = Fields::default();
        for s in selectors {
            let s = s.as_ref().trim();
            if let Some(h) = s.strip_prefix("header:") {
                out.headers.push(h.trim().to_ascii_lowercase());
            } else if let Some(q) = s.strip_prefix("query:") {
                out.query.push(q.trim().to_owned());
            } else {
                out.body.push(PathPattern::parse_body(s)?);
            }
            out.selectors.push(s.to_owned());
        }
        Ok(out)
    }

    /// Whether the header is named (case-insensitive).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Whether the query parameter is named.
    pub fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|q| q == name)
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.selectors.serialize(serializer)
    }
}

str_enum!(ExternalHttp { "allow" => ExternalHttp::Allow, "strict" => ExternalHttp::Strict });
str_enum!(DefaultOnMiss {
    "passthrough" => DefaultOnMiss::Passthrough,
    "error" => DefaultOnMiss::Error,
});

/// A policy document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// `allow` (default) or `strict`.
    pub external_http: ExternalHttp,
    /// Hosts that may always go upstream: exact hosts (`api.example.com`, `localhost:8080`) or
    /// `*.suffix` patterns (`*.internal` matches `a.internal` and `b.a.internal`).
    pub external_allowlist: Vec<String>,
    /// `passthrough` (default) or `error`.
    pub default_on_miss: DefaultOnMiss,
    /// The policy rule layer, below case and session rules.
    pub rules: Vec<Rule>,
    /// What a replayed outbound request that differs from its recording does.
    pub request_drift: DriftAction,
    /// Request fields never compared with the recording.
    pub volatile_fields: Fields,
    /// Request fields compared by value even when both sides look volatile (UUIDs, ULIDs,
    /// timestamps, clocks), and headers compared even when they are volatile by default.
    pub exact_fields: Fields,
    /// Request headers compared besides `content-type`.
    pub compared_headers: Vec<String>,
    /// How replayed streams are paced.
    pub stream_timing: StreamTiming,
}

impl Policy {
    /// True when an unanswered outbound hop to `host` gets the strict-miss answer.
    pub fn blocks(&self, host: &str) -> bool {
        let enforcing = self.external_http == ExternalHttp::Strict
            || self.default_on_miss == DefaultOnMiss::Error;
        enforcing && !self.allowlisted(host)
    }

    /// True when `host` is on the allowlist (names case-insensitive, default ports ignored,
    /// a port compared only when the pattern gives one).
    pub fn allowlisted(&self, host: &str) -> bool {
        let (name, port) = split_port(host);
        self.external_allowlist.iter().any(|pattern| {
            let Some(wildcard) = pattern.strip_prefix("*.") else {
                return host_matches(pattern, host);
            };
            let (suffix, want_port) = split_port(wildcard);
            let name_ok = name.len() > suffix.len() + 1
                && name.is_char_boundary(name.len() - suffix.len() - 1)
                && name[name.len() - suffix.len() - 1..]
                    .strip_prefix('.')
                    .is_some_and(|s| s.eq_ignore_ascii_case(suffix));
            // As with `host`: a port counts only when the pattern gives a non-default one.
            let port_ok = match want_port.filter(|p| *p != "80" && *p != "443") {
                None => true,
                Some(p) => port == Some(p),
            };
            name_ok && port_ok
        })
    }
}

/// Parses a policy document (JSON or YAML, detected). Unknown keys are refused with their
/// JSON path; rules inside are checked like any rules document (`$.rules[i]...`).
pub fn parse_policy(bytes: &[u8], source_name: &str) -> Result<Policy, RulesError> {
    let Obj(raw): Obj<RawPolicy> = crate::rules::parse::from_bytes(bytes, source_name)?;
    let allowlist = raw.external_allowlist.unwrap_or_default();
    for (i, pattern) in allowlist.iter().enumerate() {
        let host = pattern.strip_prefix("*.").unwrap_or(pattern);
        if host.trim().is_empty() || host.contains(['/', ' ', '*']) {
            return Err(RulesError::at(
                source_name,
                format!("$.externalAllowlist[{i}]"),
                format!("{pattern:?} is not a host or a `*.suffix` pattern"),
            ));
        }
    }
    Ok(Policy {
        external_http: raw.external_http.unwrap_or_default(),
        external_allowlist: allowlist
            .iter()
            .map(|p| match p.strip_prefix("*.") {
                Some(s) => format!("*.{}", s.to_ascii_lowercase()),
                None => normalize_host(p),
            })
            .collect(),
        default_on_miss: raw.default_on_miss.unwrap_or_default(),
        rules: convert_rules(
            unwrap_all(raw.rules.unwrap_or_default()),
            source_name,
            "$.rules",
        )?,
        request_drift: raw.request_drift.unwrap_or_default(),
        volatile_fields: fields(raw.volatile_fields, source_name, "volatileFields")?,
        exact_fields: fields(raw.exact_fields, source_name, "exactFields")?,
        compared_headers: raw
            .compared_headers
            .unwrap_or_default()
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        stream_timing: raw.stream_timing.unwrap_or_default(),
    })
}

fn fields(list: Option<Vec<String>>, source_name: &str, key: &str) -> Result<Fields, RulesError> {
    let list = list.unwrap_or_default();
    for (i, s) in list.iter().enumerate() {
        Fields::parse(std::slice::from_ref(s))
            .map_err(|e| RulesError::at(source_name, format!("$.{key}[{i}]"), e))?;
    }
    Fields::parse(&list).map_err(|e| RulesError::at(source_name, format!("$.{key}"), e))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    external_http: Option<ExternalHttp>,
    #[serde(default)]
    external_allowlist: Option<Vec<String>>,
    default_on_miss: Option<DefaultOnMiss>,
    #[serde(default)]
    rules: Option<Vec<Obj<RawRule>>>,
    request_drift: Option<DriftAction>,
    volatile_fields: Option<Vec<String>>,
    exact_fields: Option<Vec<String>>,
    compared_headers: Option<Vec<String>>,
    stream_timing: Option<StreamTiming>,
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(9))?;
        map.serialize_entry("externalHttp", &self.external_http)?;
        map.serialize_entry("externalAllowlist", &self.external_allowlist)?;
        map.serialize_entry("defaultOnMiss", &self.default_on_miss)?;
        map.serialize_entry("rules", &self.rules)?;
        map.serialize_entry("requestDrift", &self.request_drift)?;
        map.serialize_entry("volatileFields", &self.volatile_fields)?;
        map.serialize_entry("exactFields", &self.exact_fields)?;
        map.serialize_entry("comparedHeaders", &self.compared_headers)?;
        map.serialize_entry("streamTiming", &self.stream_timing)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_drift_fields_are_read_and_bad_ones_named() {
        let p = parse_policy(
            br#"{"requestDrift": "warn", "volatileFields": [".body.nonce", "header:X-Nonce", "query:ts"],
                 "exactFields": ["$.items[*].id"], "comparedHeaders": ["Stripe-Version"]}"#,
            "p.json",
        )
        .unwrap();
        assert_eq!(p.request_drift, DriftAction::Warn);
        assert!(p.volatile_fields.has_header("x-nonce") && p.volatile_fields.has_query("ts"));
        assert_eq!(p.volatile_fields.body.len(), 1);
        assert_eq!(p.compared_headers, ["stripe-version"]);
        let err = parse_policy(br#"{"volatileFields": [".body.a", "nonce"]}"#, "p.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("$.volatileFields[1]") && err.contains("nonce"),
            "{err}"
        );
        let err = parse_policy(br#"{"requestDrift": "loud"}"#, "p.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("loud"), "{err}");
    }

    #[test]
    fn defaults_and_the_sdk_shapes() {
        let p = parse_policy(b"{}", "p").unwrap();
        assert_eq!(p, Policy::default());
        let p = parse_policy(br#"{"streamTiming": "recorded"}"#, "p").unwrap();
        assert_eq!(p.stream_timing, StreamTiming::Recorded);
        let err = parse_policy(br#"{"streamTiming": "slow"}"#, "p").unwrap_err();
        let err = err.to_string();
        assert!(err.contains("$.streamTiming"), "{err}");
        assert!(err.contains("unknown variant `slow`"), "{err}");
        let p = parse_policy(br#"{"externalHttp": "strict"}"#, "p").unwrap();
        assert_eq!(p.external_http, ExternalHttp::Strict);
        let p = parse_policy(
            b"externalHttp: allow\ndefaultOnMiss: error\nexternalAllowlist: [Localhost:8080, '*.Internal']\n",
            "p.yaml",
        )
        .unwrap();
        assert_eq!(p.default_on_miss, DefaultOnMiss::Error);
        assert_eq!(p.external_allowlist, vec!["localhost:8080", "*.internal"]);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"externalHttp": "allow", "externalAllowlist": ["localhost:8080", "*.internal"],
                               "defaultOnMiss": "error", "rules": [], "requestDrift": "fail",
                               "volatileFields": [], "exactFields": [], "comparedHeaders": [],
                               "streamTiming": "immediate"})
        );
        assert_eq!(
            parse_policy(&serde_json::to_vec(&p).unwrap(), "again").unwrap(),
            p
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"externalHTTP": "strict"}"#,
                "$.externalHTTP",
                "unknown field",
            ),
            (
                r#"{"externalHttp": "deny"}"#,
                "$.externalHttp",
                "unknown variant",
            ),
            (r#"{"defaultOnMiss": 1}"#, "$.defaultOnMiss", "invalid type"),
            (
                r#"{"externalAllowlist": ["a b"]}"#,
                "$.externalAllowlist[0]",
                "not a host",
            ),
            (
                r#"{"rules": [{"then": {"action": "nope"}}]}"#,
                "$.rules[0].then.action",
                "unknown variant",
            ),
            (
                r#"{"rules": [{"then": {"action": "mock"}}]}"#,
                "$.rules[0].then.response",
                "required",
            ),
            (r#"[]"#, "$", "invalid type"),
        ];
        for (text, path, fragment) in cases {
            let err = parse_policy(text.as_bytes(), "p.json").unwrap_err();
            assert_eq!(err.json_path, path, "{text}: {err}");
            assert!(err.message.contains(fragment), "{text}: {err}");
        }
    }

    #[test]
    fn allowlist_and_blocking() {
        let p = Policy {
            external_http: ExternalHttp::Strict,
            external_allowlist: vec![
                "localhost:8080".into(),
                "*.internal".into(),
                "api.example.com".into(),
            ],
            ..Policy::default()
        };
        assert!(p.allowlisted("localhost:8080"));
        assert!(!p.allowlisted("localhost:9090"));
        assert!(p.allowlisted("svc.INTERNAL:9000"));
        assert!(p.allowlisted("a.b.internal"));
        assert!(!p.allowlisted("internal"));
        assert!(!p.allowlisted("notinternal"));
        assert!(p.allowlisted("API.example.com:443"));
        let ported = Policy {
            external_allowlist: vec!["*.svc:8080".into(), "*.web:443".into()],
            ..Policy::default()
        };
        assert!(ported.allowlisted("a.svc:8080"));
        assert!(!ported.allowlisted("a.svc:9090"));
        assert!(!ported.allowlisted("a.svc"));
        assert!(ported.allowlisted("a.web"));
        assert!(ported.allowlisted("a.web:8443"));
        assert!(p.blocks("stripe.com"));
        assert!(!p.blocks("a.internal"));
        let allow = Policy::default();
        assert!(!allow.blocks("stripe.com"));
        let error = Policy {
            default_on_miss: DefaultOnMiss::Error,
            ..Policy::default()
        };
        assert!(error.blocks("stripe.com"));
    }
}
