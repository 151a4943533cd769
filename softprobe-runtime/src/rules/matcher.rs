//! Whether a rule's `when` holds for a request. Every comparison works on borrowed strings:
//! deciding runs for every proxied hop, so nothing here allocates except parsing a JSON body,
//! which happens at most once per request (see [`BodyJson`]).

use std::cell::OnceCell;

use serde_json::Value;

use super::When;
use crate::replay::Request;

/// The request body parsed as JSON once, on first use, shared by every rule and candidate.
#[derive(Default)]
pub(crate) struct BodyJson(OnceCell<Option<Value>>);

impl BodyJson {
    pub(crate) fn get(&self, req: &Request) -> Option<&Value> {
        self.0
            .get_or_init(|| {
                req.body
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b.as_bytes()).ok())
            })
            .as_ref()
    }
}

impl When {
    /// True when every condition holds for `req`.
    pub fn matches(&self, req: &Request) -> bool {
        self.matches_with(req, &BodyJson::default())
    }

    pub(crate) fn matches_with(&self, req: &Request, body: &BodyJson) -> bool {
        if let Some(d) = self.direction
            && d != req.direction
        {
            return false;
        }
        if let Some(s) = &self.service
            && req.service.as_deref() != Some(s.as_str())
        {
            return false;
        }
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(&req.method)
        {
            return false;
        }
        if let Some(p) = &self.path
            && *p != req.path
        {
            return false;
        }
        if let Some(p) = &self.path_prefix
            && !req.path.starts_with(p.as_str())
        {
            return false;
        }
        if let Some(h) = &self.host
            && !host_matches(h, &req.host)
        {
            return false;
        }
        if !self.host_suffix.is_empty() || !self.not_host_suffix.is_empty() {
            let (name, _) = split_port(&req.host);
            if !self.host_suffix.is_empty()
                && !self
                    .host_suffix
                    .iter()
                    .any(|s| ends_with_ignore_case(name, s))
            {
                return false;
            }
            if self
                .not_host_suffix
                .iter()
                .any(|s| ends_with_ignore_case(name, s))
            {
                return false;
            }
        }
        for (name, value) in &self.headers {
            if !req
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value)
            {
                return false;
            }
        }
        for (key, value) in &self.trace_tags {
            if !req.trace_tags.iter().any(|(k, v)| k == key && v == value) {
                return false;
            }
        }
        if !self.body_json_path.is_empty() {
            let Some(doc) = body.get(req) else {
                return false;
            };
            for (path, expected) in &self.body_json_path {
                if !path.select(doc).is_some_and(|v| json_eq(v, expected)) {
                    return false;
                }
            }
        }
        true
    }
}

pub(crate) use crate::json::json_eq;

/// Lowercases a host and drops a default port (`:80`, `:443`), the form rules and the replay
/// index compare.
pub fn normalize_host(host: &str) -> String {
    let (name, port) = split_port(host);
    let mut out = name.to_ascii_lowercase();
    if let Some(p) = port
        && !is_default_port(p)
    {
        out.push(':');
        out.push_str(p);
    }
    out
}

/// Whether a rule's `host` matches a request host: names compare case-insensitively; a port
/// is compared only when the rule gives one; default ports count as no port on both sides.
pub fn host_matches(rule_host: &str, request_host: &str) -> bool {
    let (rule_name, rule_port) = split_port(rule_host);
    let (req_name, req_port) = split_port(request_host);
    if !rule_name.eq_ignore_ascii_case(req_name) {
        return false;
    }
    match rule_port.filter(|p| !is_default_port(p)) {
        None => true,
        Some(p) => req_port == Some(p),
    }
}

fn is_default_port(p: &str) -> bool {
    p == "80" || p == "443"
}

/// Splits `host[:port]`, keeping IPv6 literals (`[::1]:8080`) whole.
pub(crate) fn split_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.find("]:") {
            Some(i) => (&host[..=i], Some(&host[i + 2..])),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (name, Some(port))
        }
        _ => (host, None),
    }
}

fn ends_with_ignore_case(host: &str, suffix: &str) -> bool {
    host.len() >= suffix.len()
        && host.is_char_boundary(host.len() - suffix.len())
        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{Body, Direction};
    use crate::rules::parse_rules_document;

    fn request() -> Request {
        Request {
            direction: Direction::Outbound,
            service: Some("checkout".into()),
            method: "POST".into(),
            scheme: Some("https".into()),
            host: "API.Stripe.com:443".into(),
            path: "/v1/charges".into(),
            query: Some("expand=x".into()),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-tenant".into(), "acme".into()),
            ],
            body: Some(Body::Text(
                r#"{"amount": 1000, "card": {"brand": "visa"}, "items": [1, 2]}"#.into(),
            )),
            trace_tags: vec![("tenant".into(), "acme".into())],
        }
    }

    fn when(json: &str) -> When {
        let doc = format!(r#"[{{"when": {json}, "then": {{"action": "passthrough"}}}}]"#);
        parse_rules_document(doc.as_bytes(), "t")
            .unwrap()
            .remove(0)
            .when
    }

    #[test]
    fn each_condition_matches_and_mismatches() {
        let req = request();
        let table = [
            (r#"{}"#, true),
            (r#"{"direction": "outbound"}"#, true),
            (r#"{"direction": "inbound"}"#, false),
            (r#"{"service": "checkout"}"#, true),
            (r#"{"service": "Checkout"}"#, false),
            (r#"{"host": "api.stripe.com"}"#, true),
            (r#"{"host": "API.STRIPE.COM:443"}"#, true),
            (r#"{"host": "api.stripe.com:8443"}"#, false),
            (r#"{"host": "stripe.com"}"#, false),
            (r#"{"hostSuffix": ".STRIPE.com"}"#, true),
            (r#"{"hostSuffix": ["example.org", "stripe.com"]}"#, true),
            (r#"{"hostSuffix": ["example.org"]}"#, false),
            (r#"{"notHostSuffix": "stripe.com"}"#, false),
            (r#"{"notHostSuffix": ["example.org", "internal"]}"#, true),
            (r#"{"method": "post"}"#, true),
            (r#"{"method": "GET"}"#, false),
            (r#"{"path": "/v1/charges"}"#, true),
            (r#"{"path": "/v1/charges/"}"#, false),
            (r#"{"pathPrefix": "/v1/"}"#, true),
            (r#"{"pathPrefix": "/v2/"}"#, false),
            (r#"{"headers": {"X-Tenant": "acme"}}"#, true),
            (r#"{"headers": {"x-tenant": "ACME"}}"#, false),
            (r#"{"headers": {"x-missing": ""}}"#, false),
            (
                r#"{"bodyJsonPath": {"$.amount": 1000, "$.card.brand": "visa"}}"#,
                true,
            ),
            (r#"{"bodyJsonPath": {"$.amount": 1000.0}}"#, true),
            (r#"{"bodyJsonPath": {"$.items": [1, 2]}}"#, true),
            (r#"{"bodyJsonPath": {"$.amount": "1000"}}"#, false),
            (r#"{"bodyJsonPath": {"$.missing": null}}"#, false),
            (r#"{"traceTags": {"tenant": "acme"}}"#, true),
            (r#"{"traceTags": {"tenant": "other"}}"#, false),
            (
                r#"{"method": "POST", "path": "/v1/charges", "host": "api.stripe.com", "direction": "outbound"}"#,
                true,
            ),
            (r#"{"method": "POST", "path": "/v1/other"}"#, false),
        ];
        for (json, expected) in table {
            assert_eq!(when(json).matches(&req), expected, "{json}");
        }
    }

    #[test]
    fn body_json_path_needs_a_json_body() {
        let mut req = request();
        req.body = Some(Body::Text("amount=1000".into()));
        assert!(!when(r#"{"bodyJsonPath": {"$.amount": 1000}}"#).matches(&req));
        req.body = None;
        assert!(!when(r#"{"bodyJsonPath": {"$": null}}"#).matches(&req));
    }

    #[test]
    fn hosts_normalise_and_split() {
        assert_eq!(normalize_host("Example.COM:80"), "example.com");
        assert_eq!(normalize_host("example.com:8080"), "example.com:8080");
        assert_eq!(normalize_host("[::1]:443"), "[::1]");
        assert_eq!(split_port("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_port("::1"), ("::1", None));
        assert!(host_matches("localhost:8080", "LOCALHOST:8080"));
        assert!(!host_matches("localhost:8080", "localhost"));
        assert!(host_matches("localhost", "localhost:9999"));
        assert!(host_matches("example.com:443", "example.com"));
    }
}
