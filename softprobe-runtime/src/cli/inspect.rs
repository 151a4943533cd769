//! `softprobe inspect`: the hops of a case file as the Direction / Method / Status / URL table
//! of the capture guide, and the state of a live session. The table abbreviates URLs as the
//! guide does (`https://api.stripe.com/…`) unless `--wide`; `--json` always has them whole.

use std::path::Path;

use comfy_table::{ContentArrangement, Table};
use serde_json::{Value, json};

use super::output::{CliError, Outcome};
use super::{Ctx, read_file};
use crate::case::{Case, Direction, Exchange};

/// Rows of the inspect table, in the order the hops happened.
pub(crate) fn rows(exchanges: &[Exchange]) -> Vec<Value> {
    exchanges
        .iter()
        .map(|ex| {
            let url = match ex.direction {
                Direction::Inbound => {
                    let mut u = ex.path.clone();
                    if let Some(q) = &ex.query {
                        u.push('?');
                        u.push_str(q);
                    }
                    u
                }
                Direction::Outbound => ex.url(),
            };
            let mut row = json!({
                "direction": ex.direction.as_str(),
                "service": ex.service,
                "method": ex.method,
                "status": ex.status,
                "url": url,
                "traceId": ex.trace_id.to_string(),
                "spanId": ex.span_id.to_string(),
            });
            protocol_fields(ex, &mut row);
            row
        })
        .collect()
}

/// What a row says beyond HTTP: the call and status of a gRPC hop (and its message counts
/// when it streamed), the message count of a WebSocket, the chunk count of a streamed answer.
fn protocol_fields(ex: &Exchange, row: &mut Value) {
    let attr = |key: &str| ex.extra_attributes.iter().find(|kv| kv.key == key);
    if crate::grpc::is_grpc_hop(ex) {
        row["protocol"] = json!("grpc");
        row["call"] = json!(crate::grpc::call_name(ex));
        if let Some(code) = crate::grpc::status_of(ex) {
            row["grpcStatus"] = json!(crate::grpc::status_name(code));
        }
        for (key, field) in [
            (crate::grpc::REQUEST_MESSAGES, "requestMessages"),
            (crate::grpc::RESPONSE_MESSAGES, "responseMessages"),
        ] {
            if let Some(n) = attr(key).and_then(|kv| kv.value.as_i64()) {
                row[field] = json!(n);
            }
        }
    } else if attr(crate::proxy::websocket::PROTOCOL).and_then(|kv| kv.value.as_str())
        == Some(crate::proxy::websocket::WEBSOCKET)
    {
        row["protocol"] = json!("websocket");
        let transcript = ex.response_body.as_ref().and_then(|b| {
            serde_json::from_slice::<crate::proxy::websocket::Transcript>(b.as_bytes()).ok()
        });
        if let Some(t) = transcript {
            row["messages"] = json!(t.messages.len());
        }
    } else if let Some(chunks) = attr(crate::streaming::RESPONSE_CHUNKS)
        .and_then(|kv| kv.value.as_str())
        .and_then(|v| crate::streaming::parse_chunks(v).ok())
    {
        row["chunks"] = json!(chunks.len());
    }
}

/// Hops of a case in the order they happened: traces in file order, and within a trace by
/// start time (the inbound request starts before the calls it makes).
pub(crate) fn ordered_exchanges(case: &Case, source: &str) -> Result<Vec<Exchange>, CliError> {
    let exchanges = case
        .exchanges_named(source)
        .map_err(|e| CliError::invalid(e.to_string()))?;
    let mut trace_order = Vec::new();
    for ex in &exchanges {
        if !trace_order.contains(&ex.trace_id) {
            trace_order.push(ex.trace_id);
        }
    }
    let mut indexed: Vec<(usize, usize, Exchange)> = exchanges
        .into_iter()
        .enumerate()
        .map(|(i, ex)| {
            let t = trace_order
                .iter()
                .position(|t| *t == ex.trace_id)
                .unwrap_or(0);
            (t, i, ex)
        })
        .collect();
    indexed.sort_by_key(|(t, i, ex)| (*t, ex.start_time_unix_nano, *i));
    Ok(indexed.into_iter().map(|(_, _, ex)| ex).collect())
}

/// The widest URL the abbreviated table shows whole, in characters.
const URL_WIDTH: usize = 32;

/// A URL as the abbreviated table shows it: without its query string; when still longer than
/// [`URL_WIDTH`], cut to its origin (`https://api.stripe.com/…`), or, for a bare path or an
/// origin that is itself too long, to its first characters and `…`.
pub(crate) fn abbreviate(url: &str) -> String {
    let no_query = url.split_once('?').map_or(url, |(u, _)| u);
    if no_query.chars().count() <= URL_WIDTH {
        return no_query.to_owned();
    }
    let origin_end = no_query
        .find("://")
        .and_then(|i| no_query[i + 3..].find('/').map(|j| i + 3 + j));
    if let Some(end) = origin_end
        && no_query[..end].chars().count() < URL_WIDTH
    {
        return format!("{}/…", &no_query[..end]);
    }
    let head: String = no_query.chars().take(URL_WIDTH - 1).collect();
    format!("{head}…")
}

/// Draws the table; `wide` shows every URL whole.
pub(crate) fn table(rows: &[Value], wide: bool) -> String {
    let mut table = Table::new();
    table
        .load_preset("││──├─┼┤│    ┬┴┌┐└┘")
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(["Direction", "Method", "Status", "URL"]);
    for row in rows {
        let direction = match row["direction"].as_str() {
            Some("inbound") => "inbound (app)".to_owned(),
            Some(other) => other.to_owned(),
            None => "?".to_owned(),
        };
        let mut status = match &row["status"] {
            Value::Number(n) => n.to_string(),
            _ => "-".to_owned(),
        };
        let mut method = row["method"].as_str().unwrap_or("?").to_owned();
        let mut url = match row["url"].as_str() {
            Some(url) if wide => url.to_owned(),
            Some(url) => abbreviate(url),
            None => "?".to_owned(),
        };
        match row["protocol"].as_str() {
            Some("grpc") => {
                method = "grpc".to_owned();
                status = row["grpcStatus"].as_str().unwrap_or("-").to_owned();
                url = row["call"].as_str().unwrap_or("?").to_owned();
                // A streaming call: how many messages went each way (one where not counted).
                let (sent, answered) = (
                    row["requestMessages"].as_u64(),
                    row["responseMessages"].as_u64(),
                );
                if sent.is_some() || answered.is_some() {
                    url.push_str(&format!(
                        " ({} → {} messages)",
                        sent.unwrap_or(1),
                        answered.unwrap_or(1)
                    ));
                }
            }
            Some("websocket") => {
                method = "websocket".to_owned();
                if let Some(n) = row["messages"].as_u64() {
                    url.push_str(&format!(" ({n} messages)"));
                }
            }
            _ => {
                if let Some(n) = row["chunks"].as_u64() {
                    url.push_str(&format!(" ({n} chunks)"));
                }
            }
        }
        table.add_row([direction, method, status, url]);
    }
    table.to_string()
}

pub(crate) fn summary(case: &Case, rows: &[Value], wide: bool) -> String {
    format!(
        "Case: {}\nTraces: {}\n{}",
        case.case_id,
        case.traces.len(),
        table(rows, wide)
    )
}

/// `inspect case FILE...`: one table per file; `--json` keeps the one-file shape for one file
/// and lists `cases` for several.
pub(crate) fn cases(files: &[std::path::PathBuf], wide: bool) -> Result<Outcome, CliError> {
    let files = super::paths::expand(files)?;
    if let [one] = files.as_slice() {
        return case(one, wide);
    }
    let mut human = String::new();
    let mut list = Vec::new();
    for f in &files {
        let outcome = case(f, wide)?;
        if !human.is_empty() {
            human.push('\n');
        }
        human.push_str(outcome.human.as_deref().unwrap_or_default().trim_end());
        human.push('\n');
        list.push(serde_json::Value::Object(outcome.fields));
    }
    Ok(Outcome::ok(json!({"cases": list}), Some(human)))
}

pub(crate) fn case(file: &Path, wide: bool) -> Result<Outcome, CliError> {
    let bytes = read_file(file)?;
    let source = file.display().to_string();
    let case =
        Case::from_slice_named(&bytes, &source).map_err(|e| CliError::invalid(e.to_string()))?;
    let exchanges = ordered_exchanges(&case, &source)?;
    let rows = rows(&exchanges);
    let human = summary(&case, &rows, wide);
    Ok(Outcome::ok(
        json!({
            "file": source,
            "caseId": case.case_id,
            "traces": case.traces.len(),
            "spans": rows.len(),
            "rows": rows,
        }),
        Some(human),
    ))
}

pub(crate) fn session(ctx: &Ctx, session: &str) -> Result<Outcome, CliError> {
    let client = ctx.client()?;
    let state = client.get(&format!("/v1/sessions/{session}/state"))?;
    let mut human = format!(
        "Session {session}\n  mode:      {}\n  revision:  {}\n",
        state["mode"].as_str().unwrap_or("?"),
        state["sessionRevision"]
    );
    match &state["case"] {
        Value::Object(c) => human.push_str(&format!(
            "  case:      {} ({} spans: {} inbound, {} outbound)\n",
            c.get("caseId").and_then(Value::as_str).unwrap_or("?"),
            c.get("spans").cloned().unwrap_or(Value::Null),
            c.get("inbound").cloned().unwrap_or(Value::Null),
            c.get("outbound").cloned().unwrap_or(Value::Null),
        )),
        _ => human.push_str("  case:      none loaded\n"),
    }
    human.push_str(&format!(
        "  policy:    {}\n  rules:     {} policy, {} case, {} session\n  spans:     {} extracted, {} injected, {} strict misses\n",
        state["policy"]["externalHttp"].as_str().unwrap_or("allow"),
        state["rules"]["policy"],
        state["rules"]["case"],
        state["rules"]["session"],
        state["stats"]["extractedSpans"],
        state["stats"]["injectedSpans"],
        state["stats"]["strictMisses"],
    ));
    if let Some(misses) = state["strictMisses"].as_array().filter(|m| !m.is_empty()) {
        human.push_str("  last strict misses:\n");
        for m in misses {
            human.push_str(&format!(
                "    {} {}\n",
                m["request"]["method"].as_str().unwrap_or("?"),
                m["request"]["url"].as_str().unwrap_or("?")
            ));
        }
    }
    Ok(Outcome::ok(state, Some(human)))
}

#[cfg(test)]
mod tests {
    use super::abbreviate;

    #[test]
    fn urls_are_cut_like_the_guide_shows_them() {
        assert_eq!(
            abbreviate("https://api.stripe.com/v1/payment_intents"),
            "https://api.stripe.com/…"
        );
        assert_eq!(
            abbreviate("http://fragment/shipping?zip=94107"),
            "http://fragment/shipping"
        );
        assert_eq!(abbreviate("/checkout"), "/checkout");
        assert_eq!(
            abbreviate("/v1/customers/cus_123/payment_methods/pm_456"),
            "/v1/customers/cus_123/payment_m…"
        );
        let long_host = "https://a-very-long-host-name.internal.example.com/x/y";
        let cut = abbreviate(long_host);
        assert_eq!(cut.chars().count(), 32, "{cut}");
        assert!(cut.ends_with('…') && long_host.starts_with(cut.trim_end_matches('…')));
    }
}
