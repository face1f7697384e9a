//! Branch ops whose target is an HTTP endpoint ([`Target::http`]), called the
//! way DTM calls its branches, so that services written for DTM work as
//! they are:
//!
//! - `POST <url>?gid=…&trans_type=…&branch_id=…&op=…` with the payload as the
//!   body (`Content-Type: application/json`; `GET` when the payload is empty,
//!   except in an XA) and the transaction's
//!   `branch_headers`; the deadline is its `request_timeout`, else the
//!   server's;
//! - the answer is read in DTM's order: `425`, or a body containing
//!   `ONGOING`, asks to be called again (a `retry`); `409`, or a body
//!   containing `FAILURE`, refuses (a `failure`); any other status than
//!   exactly `200`, a network error or the deadline is an error (backed off);
//!   `200` succeeds, the body being the output.
//!
//! One client serves every call, so connections to a service are pooled and
//! kept alive. A URL must be `http://` and its host allowed by the operator's
//! `http_allow` (the rule guests' outbound HTTP follows), checked at submit
//! and again at every call. The barrier is the service's own business, as
//! with DTM.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{BranchCall, BranchResult, Outcome};
use crate::sandbox::{HostRule, operator_allows};

/// The most of a reply's body that is read; a longer one is an error.
const MAX_REPLY_BYTES: usize = 1 << 20;

/// Calls HTTP branch targets.
#[derive(Clone)]
pub struct HttpBranches {
    client: reqwest::Client,
    allow: Arc<[HostRule]>,
    /// A call's deadline when the transaction names none.
    timeout: Duration,
}

impl HttpBranches {
    /// `allow` is the operator's `http_allow`; `timeout` the deadline of a
    /// call whose transaction has no `request_timeout`.
    pub fn new(allow: Arc<[HostRule]>, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        Self { client, allow, timeout }
    }

    /// Why `url` cannot be a branch target on this server, if it cannot.
    pub fn refusal(&self, url: &str) -> Option<String> {
        let uri: http::Uri = match url.parse() {
            Ok(uri) => uri,
            Err(e) => return Some(format!("{url:?} is not a URL: {e}")),
        };
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Some(format!(
                    "{url}: https is not supported for branch targets yet; use http:// (inside the cluster)"
                ));
            }
            _ => return Some(format!("{url:?} is not an http:// URL")),
        }
        let Some(host) = uri.host() else { return Some(format!("{url:?} names no host")) };
        let port = uri.port_u16().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !operator_allows(&self.allow, host, port) {
            return Some(format!(
                "{url}: host {host}:{port} is not allowed for HTTP calls (the operator's http_allow lists the hosts \
                 branches may call)"
            ));
        }
        None
    }

    /// Runs one op: one request, its answer read as DTM reads it.
    pub async fn call(&self, call: BranchCall) -> BranchResult {
        let Some(url) = call.target.url() else {
            return BranchResult::of(Outcome::Error("not an HTTP target".to_owned()));
        };
        if url.is_empty() {
            // DTM's rule: an empty URL (a step without compensation) succeeds, never called.
            return BranchResult::of(Outcome::Succeeded);
        }
        if let Some(why) = self.refusal(url) {
            return BranchResult::of(Outcome::Error(why));
        }
        let timeout = call.timeout.unwrap_or(self.timeout);
        let query = [
            ("gid", call.gid.as_str()),
            ("trans_type", call.mode.as_str()),
            ("branch_id", call.branch_id.as_str()),
            ("op", call.op.as_str()),
        ];
        // DTM's rule: POST when there is a payload (or for XA), else GET.
        let method = if call.payload.is_empty() && call.mode != crate::model::Mode::Xa {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        let mut request = self
            .client
            .request(method, url)
            .query(&query)
            .timeout(timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(call.payload);
        for (name, value) in &call.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return BranchResult::of(Outcome::Error(format!("{url}: no answer within {timeout:?}")));
            }
            Err(e) => return BranchResult::of(Outcome::Error(format!("{url}: {}", describe(e)))),
        };
        let status = response.status().as_u16();
        let body = match read_body(response).await {
            Ok(body) => body,
            Err(why) => return BranchResult::of(Outcome::Error(format!("{url}: {why}"))),
        };
        let mut result = BranchResult::of(read_answer(status, &body));
        if result.outcome == Outcome::Succeeded {
            result.output = body;
        }
        result
    }
}

/// DTM's reading of an answer, in its order.
fn read_answer(status: u16, body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(body);
    let said = || {
        let text = text.trim();
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {}", text.chars().take(300).collect::<String>())
        }
    };
    if status == 425 || text.contains("ONGOING") {
        Outcome::Retry(said())
    } else if status == 409 || text.contains("FAILURE") {
        Outcome::Failed(said())
    } else if status != 200 {
        Outcome::Error(said())
    } else {
        Outcome::Succeeded
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the answer: {}", describe(e)))? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(format!("the answer is longer than {MAX_REPLY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's message and its causes, without the URL it repeats (the
/// caller names it once).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_dtm_s_order() {
        assert_eq!(read_answer(200, b"{\"ok\":true}"), Outcome::Succeeded);
        assert_eq!(read_answer(200, b""), Outcome::Succeeded);
        assert!(matches!(read_answer(425, b""), Outcome::Retry(m) if m == "HTTP 425"));
        assert!(matches!(read_answer(200, b"{\"dtm_result\":\"ONGOING\"}"), Outcome::Retry(_)));
        assert!(matches!(read_answer(409, b"no funds"), Outcome::Failed(m) if m == "HTTP 409: no funds"));
        assert!(matches!(read_answer(200, b"{\"dtm_result\":\"FAILURE\"}"), Outcome::Failed(_)));
        // ONGOING is read before FAILURE, as DTM does.
        assert!(matches!(read_answer(409, b"ONGOING"), Outcome::Retry(_)));
        for status in [201, 204, 400, 404, 500, 503] {
            assert!(matches!(read_answer(status, b""), Outcome::Error(_)), "{status}");
        }
    }

    fn allowing(rules: &[&str]) -> HttpBranches {
        let rules: Arc<[HostRule]> = rules.iter().map(|r| HostRule::parse(r).unwrap()).collect();
        HttpBranches::new(rules, Duration::from_secs(3))
    }

    #[test]
    fn urls_must_be_http_and_allowed_by_the_operator() {
        let branches = allowing(&["127.0.0.1:8081", "*.svc.local"]);
        assert_eq!(branches.refusal("http://127.0.0.1:8081/api/trans-out"), None);
        assert_eq!(branches.refusal("http://pay.svc.local/x"), None);
        assert!(branches.refusal("http://127.0.0.1:9999/x").unwrap().contains("http_allow"));
        assert!(branches.refusal("https://pay.svc.local/x").unwrap().contains("https"));
        assert!(branches.refusal("ftp://pay.svc.local/x").unwrap().contains("http://"));
        assert!(branches.refusal("not a url").unwrap().contains("not a URL"));
        assert!(allowing(&[]).refusal("http://127.0.0.1:8081/x").is_some(), "nothing allowed by default");
    }
}
