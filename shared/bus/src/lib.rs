//! Messaging for GlucoChain over NATS.
//!
//! * [`subjects`]: every subject and stream name, in one place.
//! * [`Bus`]: a NATS connection that reconnects by itself, with JetStream.
//! * [`streams`]: idempotent stream and durable consumer setup.
//! * [`publish`](Bus::publish): JetStream publish with a message id for
//!   de-duplication, awaiting the server's acknowledgement.
//! * [`trace`]: W3C `traceparent` propagation in NATS headers.

pub mod access;
pub mod at_rest;
pub mod streams;
pub mod subjects;
pub mod trace;

use async_nats::jetstream;
use bytes::Bytes;
use std::time::Duration;

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Could not connect.
    #[error("connect to NATS at {url}: {source}")]
    Connect {
        /// Server URL.
        url: String,
        /// Cause.
        source: async_nats::ConnectError,
    },
    /// JetStream publish failed or was not acknowledged in time.
    #[error("publish to {subject}: {reason}")]
    Publish {
        /// Subject.
        subject: String,
        /// Cause.
        reason: String,
    },
    /// Stream or consumer setup failed.
    #[error("JetStream setup of {name}: {reason}")]
    Setup {
        /// Stream or consumer.
        name: String,
        /// Cause.
        reason: String,
    },
    /// Core NATS publish or request failed.
    #[error("NATS {0}")]
    Core(String),
    /// The NKey seed file could not be used.
    #[error("NATS credentials {path}: {reason}")]
    Credentials {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Environment variable naming the PEM file of the CA that vouches for the
/// NATS server's TLS certificate (TLS required when set).
pub const NATS_CA_FILE_ENV: &str = "GLUCOCHAIN_NATS_CA_FILE";

/// A NATS connection with its JetStream context.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
}

/// The outcome of a JetStream publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Stream that stored the message.
    pub stream: String,
    /// Its sequence number in the stream.
    pub sequence: u64,
    /// True when the server already had a message with this id (nothing new stored).
    pub duplicate: bool,
}

impl Bus {
    /// Connects to `url` as `name`, authenticated with the NKey seed in the
    /// file named by `GLUCOCHAIN_NATS_NKEY_FILE` when it is set (see
    /// [`access`]). The connection reconnects by itself forever with
    /// backoff; connection events are logged.
    ///
    /// When `GLUCOCHAIN_NATS_CA_FILE` names a PEM file, the connection must
    /// be TLS and the server's certificate must chain to a certificate in
    /// that file (a private CA); use a `tls://` URL.
    pub async fn connect(url: &str, name: &str) -> Result<Self, BusError> {
        let seed = match std::env::var_os(access::NKEY_FILE_ENV).filter(|p| !p.is_empty()) {
            Some(path) => Some(access::read_seed(std::path::Path::new(&path))?),
            None => None,
        };
        let ca = std::env::var_os(NATS_CA_FILE_ENV).filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
        Self::connect_with(url, name, seed, ca).await
    }

    /// [`Bus::connect`] with the NKey seed given (or none), without TLS
    /// requirements of its own (a `tls://` URL still means TLS, checked
    /// against the system's roots).
    pub async fn connect_with_seed(url: &str, name: &str, seed: Option<String>) -> Result<Self, BusError> {
        Self::connect_with(url, name, seed, None).await
    }

    /// [`Bus::connect`] with the NKey seed and the CA file given.
    pub async fn connect_with(
        url: &str,
        name: &str,
        seed: Option<String>,
        ca_file: Option<std::path::PathBuf>,
    ) -> Result<Self, BusError> {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(seed) = seed {
            options = options.nkey(seed);
        }
        if let Some(ca) = ca_file {
            if !ca.is_file() {
                return Err(BusError::Credentials {
                    path: ca.display().to_string(),
                    reason: format!("the CA file ({NATS_CA_FILE_ENV}) is not a readable file"),
                });
            }
            options = options.add_root_certificates(ca).require_tls(true);
        }
        let client = options
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("nats connected"),
                    async_nats::Event::Disconnected => tracing::warn!("nats disconnected; reconnecting"),
                    // Permission violations among them: a subject this service's user may not use.
                    async_nats::Event::ServerError(e) => tracing::warn!(error = %e, "nats server error"),
                    other => tracing::debug!(event = %other, "nats event"),
                }
            })
            .connect(url)
            .await
            .map_err(|source| BusError::Connect { url: url.to_string(), source })?;
        let js = jetstream::new(client.clone());
        Ok(Bus { client, js })
    }

    /// The core NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Publishes to JetStream with `msg_id` (the `Nats-Msg-Id` header: the
    /// stream drops a second message with the same id inside its duplicate
    /// window) and the current trace context, and waits for the server's
    /// acknowledgement. Only an acknowledged message is stored.
    pub async fn publish(&self, subject: &str, msg_id: &str, payload: Bytes) -> Result<Published, BusError> {
        self.publish_with_headers(subject, msg_id, async_nats::HeaderMap::new(), payload).await
    }

    /// [`Bus::publish`] with more headers of the caller's (such as
    /// [`trace::TX_TRACE_HEADER`]).
    pub async fn publish_with_headers(
        &self,
        subject: &str,
        msg_id: &str,
        mut headers: async_nats::HeaderMap,
        payload: Bytes,
    ) -> Result<Published, BusError> {
        headers.insert("Nats-Msg-Id", msg_id);
        trace::inject_current(&mut headers);
        let err = |reason: String| BusError::Publish { subject: subject.to_string(), reason };
        let ack = self
            .js
            .publish_with_headers(subject.to_string(), headers, payload)
            .await
            .map_err(|e| err(e.to_string()))?
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(Published { stream: ack.stream, sequence: ack.sequence, duplicate: ack.duplicate })
    }

    /// Publishes on core NATS (at most once) with the current trace context.
    pub async fn publish_core(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        let mut headers = async_nats::HeaderMap::new();
        trace::inject_current(&mut headers);
        self.client
            .publish_with_headers(subject.to_string(), headers, payload)
            .await
            .map_err(|e| BusError::Core(format!("publish {subject}: {e}")))
    }

    /// Sends a request on core NATS and waits for the reply.
    pub async fn request(&self, subject: &str, payload: Bytes) -> Result<async_nats::Message, BusError> {
        let mut headers = async_nats::HeaderMap::new();
        trace::inject_current(&mut headers);
        self.client
            .request_with_headers(subject.to_string(), headers, payload)
            .await
            .map_err(|e| BusError::Core(format!("request {subject}: {e}")))
    }

    /// Flushes pending core publishes.
    pub async fn flush(&self) -> Result<(), BusError> {
        self.client.flush().await.map_err(|e| BusError::Core(format!("flush: {e}")))
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}
