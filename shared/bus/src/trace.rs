//! W3C Trace Context (`traceparent`, `tracestate`) in NATS headers, so one
//! trace follows a record from the HTTP request through every service.
//!
//! A committed block gathers transactions from many traces, so beside the
//! block's own `traceparent` its `BLOCKS` message carries, for each traced
//! transaction, a [`TX_TRACE_HEADER`] value `<tx hash hex> <traceparent>`:
//! whoever stores the block continues each transaction's trace.

use async_nats::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes the trace context of `cx` into `headers`.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// Writes the current tracing span's trace context into `headers` (nothing
/// when no OpenTelemetry layer is installed or the span is not sampled).
pub fn inject_current(headers: &mut HeaderMap) {
    inject(&tracing::Span::current().context(), headers);
}

/// Reads the trace context from `headers` (an empty context when absent).
pub fn extract(headers: Option<&HeaderMap>) -> Context {
    match headers {
        Some(h) => TraceContextPropagator::new().extract(&HeaderExtractor(h)),
        None => Context::new(),
    }
}

/// The trace id carried by `headers`, as 32 hex characters.
pub fn trace_id(headers: Option<&HeaderMap>) -> Option<String> {
    let cx = extract(headers);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Makes `span` a child of the trace carried by `headers` (when there is one).
pub fn set_parent_from(span: &tracing::Span, headers: Option<&HeaderMap>) {
    set_parent(span, extract(headers));
}

/// Header (one value per traced transaction) of a `BLOCKS` message.
pub const TX_TRACE_HEADER: &str = "Glucochain-Tx-Trace";

/// At most this many transaction traces ride on one block message (about
/// 30 KiB of headers); the rest of a bigger block is not traced further.
pub const MAX_TX_TRACES: usize = 256;

/// The `traceparent` value of `cx`, if it holds a valid span context.
pub fn traceparent(cx: &Context) -> Option<String> {
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The context a `traceparent` value names (empty when malformed).
pub fn context_from_traceparent(value: &str) -> Context {
    let carrier: std::collections::HashMap<String, String> =
        [("traceparent".to_string(), value.to_string())].into_iter().collect();
    TraceContextPropagator::new().extract(&carrier)
}

/// Makes `span` a child of `cx` (when it holds a valid span context).
pub fn set_parent(span: &tracing::Span, cx: Context) {
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Makes `span` a child of the span a `traceparent` value names (nothing
/// when malformed).
pub fn set_parent_traceparent(span: &tracing::Span, value: &str) {
    set_parent(span, context_from_traceparent(value));
}

/// The `traceparent` that makes another process's span a child of `span`.
pub fn span_traceparent(span: &tracing::Span) -> Option<String> {
    traceparent(&span.context())
}

/// Adds one transaction's trace to a block message's headers.
pub fn add_tx_trace(headers: &mut HeaderMap, tx_hash_hex: &str, traceparent: &str) {
    headers.append(TX_TRACE_HEADER, format!("{tx_hash_hex} {traceparent}").as_str());
}

/// The transaction traces a block message carries: (tx hash hex, context).
pub fn tx_traces(headers: Option<&HeaderMap>) -> Vec<(String, Context)> {
    let Some(headers) = headers else { return Vec::new() };
    headers
        .get_all(TX_TRACE_HEADER)
        .filter_map(|v| {
            let (hash, tp) = v.as_str().split_once(' ')?;
            let cx = context_from_traceparent(tp);
            cx.span().span_context().is_valid().then(|| (hash.to_string(), cx))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_traces_round_trip_through_block_headers() {
        let a = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let b = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut h = HeaderMap::new();
        add_tx_trace(&mut h, "aa11", a);
        add_tx_trace(&mut h, "bb22", b);
        h.append(TX_TRACE_HEADER, "cc33 not-a-traceparent");
        let got = tx_traces(Some(&h));
        assert_eq!(got.len(), 2, "the malformed value is skipped");
        assert_eq!(got[0].0, "aa11");
        assert_eq!(traceparent(&got[0].1).as_deref(), Some(a));
        assert_eq!(got[1].1.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(tx_traces(None).is_empty());
        assert_eq!(traceparent(&Context::new()), None);
    }
}
