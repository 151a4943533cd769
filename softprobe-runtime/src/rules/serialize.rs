//! Rules written back as JSON in the document shape they are read from, for the `state`
//! endpoint and the CLI. Parsing the output gives the same rule again, except that header
//! maps come back in name order (JSON objects here do not keep insertion order).

use base64::Engine as _;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::{Consume, MockResponse, Rule, Then, When};
use crate::case::Body;

impl Rule {
    /// The rule as a JSON object in the rules-document shape.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        if let Some(n) = &self.name {
            out.insert("name".into(), json!(n));
        }
        if let Some(d) = &self.description {
            out.insert("description".into(), json!(d));
        }
        out.insert("priority".into(), json!(self.priority));
        if self.consume == Consume::Once {
            out.insert("consume".into(), json!(self.consume.as_str()));
        }
        if let Some(l) = self.latency_ms {
            out.insert("latencyMs".into(), json!(l));
        }
        out.insert("when".into(), self.when.to_json());
        out.insert("then".into(), self.then.to_json());
        Value::Object(out)
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl When {
    /// The conditions as a JSON object; absent conditions are left out.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        let mut put = |k: &str, v: Value| {
            out.insert(k.to_owned(), v);
        };
        if let Some(d) = self.direction {
            put("direction", json!(d.as_str()));
        }
        if let Some(s) = &self.service {
            put("service", json!(s));
        }
        if let Some(h) = &self.host {
            put("host", json!(h));
        }
        if !self.host_suffix.is_empty() {
            put("hostSuffix", json!(self.host_suffix));
        }
        if !self.not_host_suffix.is_empty() {
            put("notHostSuffix", json!(self.not_host_suffix));
        }
        if let Some(m) = &self.method {
            put("method", json!(m));
        }
        if let Some(p) = &self.path {
            put("path", json!(p));
        }
        if let Some(p) = &self.path_prefix {
            put("pathPrefix", json!(p));
        }
        if !self.headers.is_empty() {
            put("headers", pairs(&self.headers));
        }
        if !self.body_json_path.is_empty() {
            let map: Map<String, Value> = self
                .body_json_path
                .iter()
                .map(|(p, v)| (p.as_str().to_owned(), v.clone()))
                .collect();
            put("bodyJsonPath", Value::Object(map));
        }
        if !self.trace_tags.is_empty() {
            put("traceTags", pairs(&self.trace_tags));
        }
        Value::Object(out)
    }
}

impl Then {
    /// The action and its payload as a JSON object.
    pub fn to_json(&self) -> Value {
        match self {
            Then::Mock(r) | Then::Error(r) => {
                json!({"action": self.action(), "response": response_json(r)})
            }
            Then::Replay | Then::Passthrough => json!({"action": self.action()}),
            Then::CaptureOnly(r) => json!({
                "action": self.action(),
                "captureOnly": {"redactHeaders": r.headers, "redactJsonPaths": r.json_paths},
            }),
        }
    }
}

fn pairs(list: &[(String, String)]) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn response_json(r: &MockResponse) -> Value {
    let mut out = Map::new();
    out.insert("status".into(), json!(r.status));
    if !r.headers.is_empty() {
        out.insert("headers".into(), pairs(&r.headers));
    }
    match &r.body {
        None => {}
        Some(Body::Text(s)) => {
            out.insert("body".into(), json!(s));
        }
        Some(Body::Binary(b)) => {
            out.insert(
                "bodyBase64".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(b)),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use crate::rules::parse_rules_document;

    #[test]
    fn written_rules_parse_back_to_the_same_rules() {
        let text = r#"[
          {"id": "a", "description": "d", "priority": 5, "consume": "once", "latencyMs": 20,
           "when": {"direction": "outbound", "service": "s", "host": "Api.Example.com:443",
                    "hostSuffix": [".example.com"], "notHostSuffix": "internal",
                    "method": "post", "path": "/p", "pathPrefix": "/", "headers": {"X-A": "1"},
                    "bodyJsonPath": {"$.a": {"b": [1]}}, "traceTags": {"t": "v"}},
           "then": {"action": "mock", "response": {"status": 201, "headers": {"x": "y"}, "body": {"ok": 1}}}},
          {"then": {"action": "error", "response": {"bodyBase64": "AAE="}}},
          {"then": {"action": "capture_only", "captureOnly": {"redactHeaders": ["cookie"], "redactJsonPaths": ["$.x"]}}},
          {"then": {"action": "replay"}},
          {"then": {"action": "passthrough"}}
        ]"#;
        let rules = parse_rules_document(text.as_bytes(), "t").unwrap();
        assert_eq!(rules.len(), 5);
        let written = serde_json::to_vec(&rules).unwrap();
        let again = parse_rules_document(&written, "t2").unwrap();
        let sorted = |mut rules: Vec<crate::rules::Rule>| {
            for r in &mut rules {
                if let crate::rules::Then::Mock(m) | crate::rules::Then::Error(m) = &mut r.then {
                    m.headers.sort();
                }
            }
            rules
        };
        assert_eq!(sorted(rules), sorted(again));
        let first = &serde_json::from_slice::<serde_json::Value>(&written).unwrap()[0];
        assert_eq!(first["when"]["host"], "api.example.com");
        assert_eq!(first["when"]["method"], "POST");
    }
}
