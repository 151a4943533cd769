//! Host names as rules, the replay index, the policy and the proxies compare them: split
//! from their port, lowercased, with default ports dropped.

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
pub fn split_port(host: &str) -> (&str, Option<&str>) {
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

/// True when `host` ends with `suffix`, ignoring ASCII case.
pub fn ends_with_ignore_case(host: &str, suffix: &str) -> bool {
    host.len() >= suffix.len()
        && host.is_char_boundary(host.len() - suffix.len())
        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// `host[:port]` lowercased, without the default port of `scheme` only: the host as a
/// proxy records it (`svc:443` over plain HTTP keeps its port).
pub fn without_default_port(authority: &str, scheme: &str) -> String {
    let lower = authority.to_ascii_lowercase();
    let default = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    match lower.strip_suffix(default) {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => lower,
    }
}

/// [`without_default_port`], or `None` when that is `authority` itself: a host that is
/// already lowercase and without the default port needs no copy.
pub fn without_default_port_if_needed(authority: &str, scheme: &str) -> Option<String> {
    let default = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    let has_default = authority.len() > default.len() && authority.ends_with(default);
    (has_default || authority.bytes().any(|b| b.is_ascii_uppercase()))
        .then(|| without_default_port(authority, scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normalized_host_needs_no_copy_and_the_others_normalize_as_before() {
        for (authority, scheme) in [
            ("example.com", "http"),
            ("example.com:8080", "http"),
            ("example.com:443", "http"),
            (":80", "http"),
            ("Example.COM:80", "http"),
            ("example.com:80", "http"),
            ("EXAMPLE.com", "https"),
            ("example.com:443", "https"),
            ("[::1]:80", "http"),
        ] {
            let copy = without_default_port_if_needed(authority, scheme);
            let expected = without_default_port(authority, scheme);
            assert_eq!(
                copy.is_none(),
                expected == authority,
                "{authority} {scheme}"
            );
            assert_eq!(copy.as_deref().unwrap_or(authority), expected);
        }
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

    #[test]
    fn hosts_lose_only_their_scheme_default_port() {
        assert_eq!(
            without_default_port("API.Example.com:443", "https"),
            "api.example.com"
        );
        assert_eq!(without_default_port("svc:80", "http"), "svc");
        assert_eq!(without_default_port("svc:443", "http"), "svc:443");
        assert_eq!(
            without_default_port("127.0.0.1:8080", "http"),
            "127.0.0.1:8080"
        );
        assert_eq!(without_default_port("[::1]:443", "https"), "[::1]");
    }
}
