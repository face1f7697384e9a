//! Logging, and OpenTelemetry traces of transactions, exported over OTLP/HTTP
//! (protobuf) when `otlp_endpoint` is set and off otherwise.
//!
//! One trace per transaction: a `transaction` span per driver run (`gid`,
//! `mode`, `status`), parent of a `branch_op` span per attempt of a branch op
//! (`branch_id`, `op`, `module`, `function`, `attempt`, `outcome`), parent of
//! a `db_call` span per database call of the guest (`kind`, and `operation`:
//! a SQL statement's first keyword or a key-value command, never parameters,
//! keys or the statement's text). A transaction may be driven by several
//! runs on several instances, so its trace id is not random: it is the trace
//! id of the W3C `traceparent` given at submit (its transaction spans are
//! then children of the caller's span), else the first 16 bytes of the
//! SHA-256 of the gid.
//!
//! The spans are `tracing` spans with target [`SPANS`] at `DEBUG`: the OTLP
//! layer takes them (and warnings, as span events), the log takes them only
//! when `WASMTX_LOG` asks for debug. This module knows nothing of the engine,
//! databases or sandbox; they open the spans, it names and links them.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use sha2::{Digest, Sha256};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::model::Gid;

/// The target of the transaction, branch op and database call spans.
pub const SPANS: &str = "wasmtx::trace";

/// The W3C trace context header, as `branch_headers` name it.
pub const TRACEPARENT: &str = "traceparent";

/// The installed logging; exports the spans still buffered when dropped.
#[must_use = "dropping it flushes and stops the trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("exporting", &self.provider.is_some()).finish()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: exporting the last traces: {e}");
        }
    }
}

/// Why the traces cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("otlp_endpoint {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("logging is already set up in this process: {0}")]
    AlreadySet(String),
}

/// Sets up the process's logging (to stderr, filtered by `log_filter`) and,
/// with `otlp_endpoint` (an `http://HOST:PORT` collector; spans go to its
/// `/v1/traces`), the trace export. Once per process.
pub fn init(log_filter: EnvFilter, otlp_endpoint: Option<&str>) -> Result<Telemetry, TelemetryError> {
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(log_filter);
    let provider = otlp_endpoint.map(exporting_to).transpose()?;
    let otel = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("wasmtx")).with_filter(exported()));
    tracing_subscriber::registry()
        .with(otel)
        .with(log)
        .try_init()
        .map_err(|e| TelemetryError::AlreadySet(e.to_string()))?;
    Ok(Telemetry { provider })
}

/// What is exported: the spans, and warnings and errors (as span events).
fn exported() -> Targets {
    Targets::new().with_target(SPANS, tracing::Level::DEBUG).with_target("wasmtx", tracing::Level::WARN)
}

/// A tracer provider batching spans to the collector at `endpoint`.
fn exporting_to(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let base = endpoint.trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .map_err(|e| TelemetryError::Exporter { endpoint: endpoint.to_owned(), message: e.to_string() })?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("wasmtx").build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The span of one driver run of transaction `gid`, in its trace (see the
/// module's doc); `headers` are its `branch_headers`.
pub fn transaction_span(gid: &Gid, mode: &str, headers: &[(String, String)]) -> Span {
    let span = tracing::debug_span!(target: SPANS, "transaction", gid = %gid, mode, status = tracing::field::Empty);
    if !span.is_disabled() {
        let parent = header(headers, TRACEPARENT).and_then(parse_traceparent).unwrap_or_else(|| gid_parent(gid));
        // Fails only without an OpenTelemetry layer: then there is no trace to join.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    span
}

/// The trace a transaction without a `traceparent` belongs to: the trace id
/// is the first 16 bytes of the SHA-256 of the gid, the (never exported)
/// parent span id the next 8.
pub fn gid_parent(gid: &Gid) -> SpanContext {
    let hash = Sha256::digest(gid.as_str().as_bytes());
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    trace_id.copy_from_slice(&hash[..16]);
    span_id.copy_from_slice(&hash[16..24]);
    SpanContext::new(
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )
}

/// A W3C `traceparent` value's span context; `None` when it is not one
/// (which the W3C rules say to ignore).
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower_hex(version, 2)
        || version == "ff"
        || !lower_hex(trace_id, 32)
        || !lower_hex(span_id, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    // Version 00 has exactly four fields; later versions may add some.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        TraceId::from_hex(trace_id).ok()?,
        SpanId::from_hex(span_id).ok()?,
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// `span`'s context as a `traceparent` value; `None` when traces are off
/// (no OpenTelemetry layer, or the span is disabled).
pub fn traceparent(span: &Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let context = cx.span().span_context().clone();
    context
        .is_valid()
        .then(|| format!("00-{}-{}-{:02x}", context.trace_id(), context.span_id(), context.trace_flags().to_u8()))
}

/// Sets `name` in `headers` (names compare case-insensitively), replacing
/// what was there.
pub fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    match headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        Some((_, v)) => *v = value,
        None => headers.push((name.to_owned(), value)),
    }
}

/// The value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A SQL statement's first keyword, upper-cased (`SELECT`, `UPDATE`, `WITH`…),
/// after blanks and comments; what a span may say of a statement.
pub fn sql_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(line) = rest.strip_prefix("--") {
            rest = line.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(block) = rest.strip_prefix("/*") {
            rest = block.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let word: String = rest.chars().take_while(char::is_ascii_alphabetic).take(16).collect();
    if word.is_empty() { "?".to_owned() } else { word.to_ascii_uppercase() }
}

#[cfg(test)]
mod tests;
