//! Outbound HTTP (`wasi:http/outgoing-handler`) for branches: a request goes
//! out only when its host is allowed both by the operator (`http_allow` in the
//! config) and by the module's upload (`?http=host,…`); when either list is
//! empty, every request is refused with `HTTP-request-denied`.
//!
//! A rule is `host` (any port), `host:port`, or `*.domain` (any subdomain,
//! any port); hosts compare case-insensitively. The request's authority is
//! what is checked, with the scheme's default port when none is given.

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// One allowed host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    /// Lowercase host, without `*.` for a domain rule.
    host: String,
    port: Option<u16>,
    subdomains: bool,
}

impl HostRule {
    /// `host`, `host:port` or `*.domain`; no scheme, path or user.
    pub fn parse(text: &str) -> Result<HostRule, String> {
        let bad = || format!("invalid HTTP host rule {text:?}: use host, host:port or *.domain");
        let text = text.trim();
        if text.is_empty() || text.contains(['/', '@', '?', '#', ' ']) {
            return Err(bad());
        }
        let (subdomains, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (host, port) = split_port(rest).ok_or_else(bad)?;
        if host.is_empty() || host.contains('*') || (subdomains && port.is_some()) {
            return Err(bad());
        }
        Ok(HostRule { host: host.to_ascii_lowercase(), port, subdomains })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = if self.subdomains {
            host.strip_suffix(&self.host).is_some_and(|prefix| prefix.ends_with('.'))
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// Whether the operator's `rules` alone allow `host:port` (for what the
/// host itself calls: HTTP branch targets).
pub fn operator_allows(rules: &[HostRule], host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    rules.iter().any(|r| r.matches(&host, port))
}

/// `host[:port]` (IPv6 in brackets) → (host, port).
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// The hosts a module's requests may reach: both lists must allow a host.
#[derive(Debug, Clone, Default)]
pub struct HttpGrant {
    operator: Arc<[HostRule]>,
    module: Arc<[HostRule]>,
}

impl HttpGrant {
    pub fn new(operator: Arc<[HostRule]>, module: Arc<[HostRule]>) -> HttpGrant {
        HttpGrant { operator, module }
    }

    /// Whether a request to `host:port` may go out.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.operator.iter().any(|r| r.matches(&host, port)) && self.module.iter().any(|r| r.matches(&host, port))
    }
}

impl WasiHttpHooks for HttpGrant {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>,
            > + Send,
    > {
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let allowed =
            uri.host().is_some_and(|host| self.allows(host.trim_start_matches('[').trim_end_matches(']'), port));
        if !allowed {
            tracing::debug!(uri = %uri, "outbound HTTP request refused: the host is not allowed");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(texts: &[&str]) -> Arc<[HostRule]> {
        texts.iter().map(|t| HostRule::parse(t).unwrap()).collect()
    }

    #[test]
    fn rules_parse_hosts_ports_and_domains_only() {
        assert_eq!(HostRule::parse("API.example.com").unwrap().host, "api.example.com");
        assert_eq!(HostRule::parse("127.0.0.1:8080").unwrap().port, Some(8080));
        assert_eq!(HostRule::parse("[::1]:80").unwrap().host, "::1");
        for bad in ["", "http://x", "x/y", "user@x", "*.x:80", "x:http", "*", "a*.b"] {
            assert!(HostRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_host_must_be_allowed_by_both_lists() {
        let both =
            HttpGrant::new(rules(&["*.example.com", "127.0.0.1:8080"]), rules(&["api.example.com", "127.0.0.1"]));
        assert!(both.allows("api.example.com", 443));
        assert!(both.allows("API.EXAMPLE.COM", 80));
        assert!(both.allows("127.0.0.1", 8080));
        assert!(!both.allows("127.0.0.1", 9090), "the operator allows only port 8080");
        assert!(!both.allows("other.example.com", 443), "the module does not ask for it");
        assert!(!both.allows("example.com", 443), "*.example.com is subdomains only");
        assert!(!both.allows("evilexample.com", 443));
        let operator_only = HttpGrant::new(rules(&["api.example.com"]), rules(&[]));
        assert!(!operator_only.allows("api.example.com", 443), "an empty module list denies everything");
        let module_only = HttpGrant::new(rules(&[]), rules(&["api.example.com"]));
        assert!(!module_only.allows("api.example.com", 443), "an empty operator list denies everything");
    }
}
