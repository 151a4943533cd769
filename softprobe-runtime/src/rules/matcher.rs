//! Whether a rule's `when` holds for a request. Every comparison works on borrowed strings:
//! deciding runs for every proxied hop, so nothing here allocates except parsing a JSON body,
//! which happens at most once per request (see [`BodyJson`]).

use super::When;
use crate::request::host::{ends_with_ignore_case, host_matches, split_port};
use crate::request::{BodyJson, Request};

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

use crate::json::json_eq;

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
}
