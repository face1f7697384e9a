//! Who may call the API, and from where.
//!
//! - **Tokens with rights.** `read` (GET routes), `submit` (starting
//!   transactions) and `admin` (uploading modules, calling functions
//!   directly). With tokens configured every `/v1` request needs
//!   `Authorization: Bearer <token>` carrying the route's right. Tokens are
//!   compared by their SHA-256 digests in constant time, all of them every time.
//! - **Browsers.** A request a browser marks as coming from another site
//!   (`Origin` not this server, or `Sec-Fetch-Site: cross-site`) is refused,
//!   tokens or not, so a web page in the operator's browser cannot drive a
//!   local server. Without tokens (loopback development), the `Host` header
//!   must name a loopback host, which defeats DNS rebinding.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;

use super::{ApiError, AppState};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Read modules and transactions.
    Read,
    /// Start transactions.
    Submit,
    /// Upload modules and call functions directly.
    Admin,
    /// Scrape `/metrics`.
    Metrics,
}

impl Right {
    pub fn parse(s: &str) -> Option<Right> {
        match s {
            "read" => Some(Right::Read),
            "submit" => Some(Right::Submit),
            "admin" => Some(Right::Admin),
            "metrics" => Some(Right::Metrics),
            _ => None,
        }
    }

    pub const ALL: [Right; 4] = [Right::Read, Right::Submit, Right::Admin, Right::Metrics];
}

/// A configured token: a name for logs, the secret, and its rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub name: String,
    pub token: String,
    pub rights: Vec<Right>,
}

/// The tokens the server accepts (none: no authentication, loopback only).
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Arc<[Entry]>,
}

#[derive(Debug)]
struct Entry {
    name: String,
    digest: [u8; 32],
    rights: Vec<Right>,
}

impl Auth {
    pub fn new(tokens: &[TokenSpec]) -> Auth {
        let tokens = tokens
            .iter()
            .map(|t| Entry { name: t.name.clone(), digest: digest(t.token.as_bytes()), rights: t.rights.clone() })
            .collect();
        Auth { tokens }
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The token presented, if any matches: compares against every token,
    /// each in constant time, so timing tells nothing about which or how much.
    fn find(&self, presented: &str) -> Option<&Entry> {
        let presented = digest(presented.as_bytes());
        let mut found = None;
        for entry in self.tokens.iter() {
            let diff = entry.digest.iter().zip(presented.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(entry);
            }
        }
        found
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// The right a request needs.
fn needed(method: &Method, path: &str) -> Right {
    // What a DTM client does to its own transactions (see `dtm`).
    let dtm_client = ["/prepare", "/submit", "/abort", "/registerBranch", "/registerTccBranch", "/registerXaBranch"];
    if path == "/metrics" {
        Right::Metrics
    } else if method == Method::GET || method == Method::HEAD {
        Right::Read
    } else if method == Method::POST
        && (path.trim_end_matches('/').ends_with("/transactions")
            || (path.contains("dtmsvr") && dtm_client.iter().any(|r| path.ends_with(r))))
    {
        Right::Submit
    } else {
        Right::Admin
    }
}

/// Who made a request: the name of its token, or `local` for a loopback
/// request to a server without tokens. Handlers record it (operators' controls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// The `/v1` gate: browser checks, then host or token checks.
pub(super) async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match check(&state.auth, request.method(), request.uri().path(), request.headers()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

fn check(auth: &Auth, method: &Method, path: &str, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST).unwrap_or_default();
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Err(forbidden("cross-site requests from a browser are refused"));
    }
    if let Some(origin) = text(header::ORIGIN) {
        let same = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host);
        if !same {
            return Err(forbidden("requests from another origin (a web page) are refused"));
        }
    }
    if !auth.enabled() {
        // No browser sends a request without a Host header.
        if !host.is_empty() && !loopback_host(host) {
            return Err(forbidden(
                "without tokens the server answers only requests addressed to a loopback host (localhost, \
                 127.0.0.1, [::1])",
            ));
        }
        return Ok(Caller("local".to_owned()));
    }
    let presented = text(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
    let Some(entry) = presented.and_then(|p| auth.find(p)) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token"));
    };
    let right = needed(method, path);
    if !entry.rights.contains(&right) {
        return Err(forbidden(&format!(
            "token {:?} lacks the {} right this request needs",
            entry.name,
            format!("{right:?}").to_lowercase()
        )));
    }
    Ok(Caller(entry.name.clone()))
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// `localhost`, `127.0.0.1`, `[::1]` (any loopback address), with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn dtm_clients_need_submit_for_their_own_transactions_and_admin_for_the_rest() {
        for route in ["prepare", "submit", "abort", "registerBranch", "registerTccBranch", "registerXaBranch"] {
            assert_eq!(needed(&Method::POST, &format!("/dtmsvr/{route}")), Right::Submit, "{route}");
        }
        for route in ["forceStop", "resetNextCronTime"] {
            assert_eq!(needed(&Method::POST, &format!("/dtmsvr/{route}")), Right::Admin, "{route}");
        }
        assert_eq!(needed(&Method::GET, "/dtmsvr/query"), Right::Read);
        assert_eq!(needed(&Method::DELETE, "/dtmsvr/topic/t"), Right::Admin);
        assert_eq!(needed(&Method::POST, "/transactions"), Right::Submit);
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["localhost", "localhost:36789", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:1", "127.1.2.3:9"] {
            assert!(loopback_host(host), "{host}");
        }
        for host in ["evil.example", "evil.example:36789", "10.0.0.1:80", "localhost.evil.example", "[::2]:1"] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn without_tokens_only_loopback_hosts_and_same_origin_pass() {
        let open = Auth::default();
        let get = Method::GET;
        assert!(check(&open, &get, "/v1/modules", &headers(&[("host", "127.0.0.1:36789")])).is_ok());
        let rebound = check(&open, &get, "/v1/modules", &headers(&[("host", "attacker.example:36789")]));
        assert_eq!(rebound.unwrap_err().status, StatusCode::FORBIDDEN);
        let cross = headers(&[("host", "127.0.0.1:36789"), ("origin", "https://attacker.example")]);
        assert_eq!(check(&open, &Method::PUT, "/v1/modules/x", &cross).unwrap_err().status, StatusCode::FORBIDDEN);
        let fetch = headers(&[("host", "localhost:36789"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(check(&open, &Method::POST, "/v1/transactions", &fetch).unwrap_err().status, StatusCode::FORBIDDEN);
        let same = headers(&[("host", "localhost:36789"), ("origin", "http://localhost:36789")]);
        assert!(check(&open, &Method::POST, "/v1/transactions", &same).is_ok());
    }

    #[test]
    fn tokens_carry_rights() {
        let auth = Auth::new(&[
            TokenSpec { name: "ci".into(), token: "submitter".into(), rights: vec![Right::Submit, Right::Read] },
            TokenSpec { name: "ops".into(), token: "operator".into(), rights: Right::ALL.to_vec() },
        ]);
        let with =
            |token: &str| headers(&[("host", "wasmtx.internal:36789"), ("authorization", &format!("Bearer {token}"))]);
        assert!(check(&auth, &Method::POST, "/v1/transactions", &with("submitter")).is_ok());
        assert!(check(&auth, &Method::GET, "/v1/transactions/x", &with("submitter")).is_ok());
        let upload = check(&auth, &Method::PUT, "/v1/modules/bank", &with("submitter")).unwrap_err();
        assert_eq!(upload.status, StatusCode::FORBIDDEN);
        assert!(upload.message.contains("admin"), "{}", upload.message);
        assert!(check(&auth, &Method::PUT, "/v1/modules/bank", &with("operator")).is_ok());
        let wrong = check(&auth, &Method::GET, "/v1/modules", &with("guess")).unwrap_err();
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let none = check(&auth, &Method::GET, "/v1/modules", &headers(&[("host", "x")])).unwrap_err();
        assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    }
}
