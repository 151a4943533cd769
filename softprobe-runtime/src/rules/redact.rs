//! The capture redaction policy: `capture_only` rules name headers and JSONPaths whose values
//! are replaced by `"[REDACTED]"` before the capture store or a case file ever sees them.
//! Replacing them is [`crate::redact`]'s; this builds and applies the policy.

use super::Redaction;
use crate::case::Exchange;
use crate::json::path::JsonPath;

impl Redaction {
    /// A redaction of these headers only (e.g. [`crate::headers::SENSITIVE`]).
    pub fn headers<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Redaction {
            headers: names
                .into_iter()
                .map(|n| n.as_ref().to_ascii_lowercase())
                .collect(),
            json_paths: Vec::new(),
        }
    }

    /// True when nothing would be redacted.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.json_paths.is_empty()
    }

    /// Adds another redaction's headers and paths, skipping ones already present.
    pub fn merge(&mut self, other: &Redaction) {
        for h in &other.headers {
            if !self.headers.iter().any(|x| x.eq_ignore_ascii_case(h)) {
                self.headers.push(h.clone());
            }
        }
        for p in &other.json_paths {
            if !self.json_paths.contains(p) {
                self.json_paths.push(p.clone());
            }
        }
    }

    /// Redacts request and response headers and JSON request and response bodies in place.
    /// A body that is not JSON, or a path that selects nothing, is left as is. Paths are
    /// checked when rules are parsed; an invalid path built by hand is skipped.
    pub fn apply(&self, exchange: &mut Exchange) {
        let paths: Vec<JsonPath> = self
            .json_paths
            .iter()
            .filter_map(|p| JsonPath::parse(p).ok())
            .collect();
        crate::redact::exchange(exchange, &self.headers, &paths);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{Body, Direction};
    use crate::redact::REDACTED;
    use serde_json::Value;

    fn exchange() -> Exchange {
        Exchange {
            scheme: Some("https".into()),
            request_headers: vec![
                ("Authorization".into(), "Bearer secret".into()),
                ("accept".into(), "*/*".into()),
            ],
            request_body: Some(Body::Text(
                r#"{"card":{"number":"4242","exp":"12/30"},"user":{"ssn":"1"}}"#.into(),
            )),
            status: Some(200),
            response_headers: vec![("set-cookie".into(), "sid=1".into())],
            response_body: Some(Body::Text(r#"{"card":{"number":"4242"},"ok":true}"#.into())),
            ..Exchange::new(Direction::Outbound, "POST", "api", "/pay")
        }
    }

    #[test]
    fn headers_and_json_paths_are_replaced_in_both_directions() {
        let mut ex = exchange();
        let r = Redaction {
            headers: vec!["authorization".into(), "SET-COOKIE".into()],
            json_paths: vec!["$.card.number".into(), "$.user.ssn".into()],
        };
        r.apply(&mut ex);
        assert_eq!(ex.request_header("authorization"), Some(REDACTED));
        assert_eq!(ex.request_header("accept"), Some("*/*"));
        assert_eq!(ex.response_header("set-cookie"), Some(REDACTED));
        let req: Value = serde_json::from_slice(ex.request_body.unwrap().as_bytes()).unwrap();
        assert_eq!(
            req,
            serde_json::json!({"card": {"number": REDACTED, "exp": "12/30"}, "user": {"ssn": REDACTED}})
        );
        let resp: Value = serde_json::from_slice(ex.response_body.unwrap().as_bytes()).unwrap();
        assert_eq!(
            resp,
            serde_json::json!({"card": {"number": REDACTED}, "ok": true})
        );
    }

    #[test]
    fn untouched_and_non_json_bodies_keep_their_bytes() {
        let mut ex = exchange();
        ex.request_body = Some(Body::Text("{ \"a\" : 1 }".into()));
        ex.response_body = Some(Body::Text("card.number=4242".into()));
        let r = Redaction {
            headers: vec![],
            json_paths: vec!["$.card.number".into()],
        };
        r.apply(&mut ex);
        assert_eq!(ex.request_body, Some(Body::Text("{ \"a\" : 1 }".into())));
        assert_eq!(
            ex.response_body,
            Some(Body::Text("card.number=4242".into()))
        );
    }

    #[test]
    fn merge_deduplicates() {
        let mut a = Redaction::headers(["Authorization"]);
        a.merge(&Redaction {
            headers: vec!["authorization".into(), "cookie".into()],
            json_paths: vec!["$.a".into()],
        });
        assert_eq!(a.headers, vec!["authorization", "cookie"]);
        assert_eq!(a.json_paths, vec!["$.a"]);
        assert!(!a.is_empty());
        assert!(Redaction::default().is_empty());
    }
}
