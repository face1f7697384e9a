//! The HTTP side of the client commands: [`Client`] sends requests to a
//! server's `/v1` API and turns its answers into JSON or a [`ClientError`].
//! It knows routes and bodies, never how anything is shown.

use reqwest::{Method, Url};
use serde_json::Value;

/// What went wrong, shaped by what the message must tell the user. Every one
/// ends a command with exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No HTTP answer at all: connection refused, DNS, timeout.
    #[error("cannot reach the server at {server}: {cause}")]
    Unreachable { server: String, cause: String },
    /// The server refused the request with its JSON error.
    #[error("{message} ({code}, HTTP {status})")]
    Server { status: u16, code: String, message: String },
    /// An answer that is not the API's (a proxy, another program on the port).
    #[error("unexpected answer from the server (HTTP {status}): {body}")]
    Unexpected { status: u16, body: String },
    /// Bad input on this side: an invalid `--server`, a file that cannot be read, JSON that is not JSON.
    #[error("{0}")]
    Input(String),
}

/// A server's `/v1` API.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

/// A successful answer's body: JSON, or the raw bytes of a non-JSON one
/// (a function's output that is not JSON).
pub enum Body {
    Json(Value),
    Bytes(Vec<u8>),
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = Url::parse(server)
            .ok()
            .filter(|u| u.scheme() == "http" && !u.cannot_be_a_base())
            .ok_or_else(|| ClientError::Input(format!("--server {server:?} is not an http:// URL")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Input(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self { http, base, token: token.filter(|t| !t.is_empty()) })
    }

    /// The URL of `/v1/<segments...>`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.json(Method::GET, segments, query, None).await
    }

    /// A request whose body, if any, is JSON (or bytes the server reads as JSON), answered with JSON.
    pub async fn json(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        match self.send(method, segments, query, body, "application/json").await? {
            Body::Json(v) => Ok(v),
            Body::Bytes(b) => Err(ClientError::Unexpected { status: 200, body: lossy(&b) }),
        }
    }

    /// Sends one request; a 2xx answer's body, or the error it means.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Body, ClientError> {
        let mut request = self.http.request(method, self.url(segments));
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        }
        let unreachable =
            |e: reqwest::Error| ClientError::Unreachable { server: self.base.to_string(), cause: chain(&e) };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = response.bytes().await.map_err(unreachable)?;
        let json = if is_json { serde_json::from_slice::<Value>(&bytes).ok() } else { None };
        if (200..300).contains(&status) {
            return Ok(match json {
                Some(v) => Body::Json(v),
                None => Body::Bytes(bytes.to_vec()),
            });
        }
        match json.as_ref().and_then(|v| v.get("error")) {
            Some(error) => Err(ClientError::Server {
                status,
                code: error["code"].as_str().unwrap_or("unknown").to_owned(),
                message: error["message"].as_str().unwrap_or("(no message)").to_owned(),
            }),
            None => Err(ClientError::Unexpected { status, body: lossy(&bytes) }),
        }
    }
}

/// An error and its causes on one line (reqwest's own message hides the
/// useful part, such as "Connection refused", in its causes).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A body for an error message: text, cut to a readable length.
fn lossy(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let client = Client::new("http://127.0.0.1:1/prefix/", None).unwrap();
        assert_eq!(
            client.url(&["transactions", "a b/c"]).as_str(),
            "http://127.0.0.1:1/prefix/v1/transactions/a%20b%2Fc"
        );
        let client = Client::new("http://127.0.0.1:1", None).unwrap();
        assert_eq!(client.url(&["modules"]).as_str(), "http://127.0.0.1:1/v1/modules");
    }

    #[test]
    fn a_server_that_is_not_an_http_url_is_refused() {
        for server in ["127.0.0.1:36789", "https://example.invalid", "not a url"] {
            let error = Client::new(server, None).err().expect(server);
            assert!(error.to_string().contains("is not an http:// URL"), "{server}: {error}");
        }
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        assert_eq!(lossy(b""), "(empty body)");
        assert_eq!(lossy(b" short \n"), "short");
        let long = "x".repeat(300);
        assert_eq!(lossy(long.as_bytes()).chars().count(), 201);
    }
}
