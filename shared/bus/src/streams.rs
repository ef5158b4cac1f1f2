//! Idempotent JetStream setup: every service declares the streams and durable
//! consumers it needs at start-up; declaring again is harmless, and a changed
//! declaration updates the stream in place.

use crate::{Bus, BusError, subjects};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use std::time::Duration;

/// What a stream should look like.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Stream name.
    pub name: &'static str,
    /// Subjects it captures.
    pub subjects: Vec<String>,
    /// How long messages are kept (0 = forever).
    pub max_age: Duration,
    /// Window in which a repeated `Nats-Msg-Id` is dropped.
    pub duplicate_window: Duration,
    /// Replicas (1 on a single server, 3 in a cluster).
    pub replicas: usize,
    /// Messages kept per subject (-1: all; 1: the stream is a key-value map).
    pub max_per_subject: i64,
    /// Whether readers may fetch a message by subject with a direct get
    /// (`$JS.API.DIRECT.GET`), answered without the JetStream API's queue
    /// and without wrapping the message in JSON.
    pub allow_direct: bool,
}

impl StreamSpec {
    /// TXS: submitted transactions; dedup on the tx hash for 2 hours.
    pub fn txs() -> Self {
        StreamSpec {
            name: subjects::STREAM_TXS,
            subjects: vec![subjects::TX_ALL.into()],
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(2 * 3600),
            replicas: 1,
            max_per_subject: -1,
            allow_direct: false,
        }
    }

    /// BLOCKS: committed blocks, kept forever (the chain).
    pub fn blocks() -> Self {
        StreamSpec {
            name: subjects::STREAM_BLOCKS,
            subjects: vec![subjects::BLOCK_COMMITTED.into()],
            max_age: Duration::ZERO,
            duplicate_window: Duration::from_secs(2 * 3600),
            replicas: 1,
            max_per_subject: -1,
            allow_direct: false,
        }
    }

    /// ALERTS: glucose alerts for the notifier.
    pub fn alerts() -> Self {
        StreamSpec {
            name: subjects::STREAM_ALERTS,
            subjects: vec![subjects::ALERT_ALL.into()],
            max_age: Duration::from_secs(30 * 24 * 3600),
            duplicate_window: Duration::from_secs(24 * 3600),
            replicas: 1,
            max_per_subject: -1,
            allow_direct: false,
        }
    }

    /// REMINDERS: clinical reminders for the notifier.
    pub fn reminders() -> Self {
        StreamSpec {
            name: subjects::STREAM_REMINDERS,
            subjects: vec![subjects::REMINDER_ALL.into()],
            max_age: Duration::from_secs(30 * 24 * 3600),
            duplicate_window: Duration::from_secs(24 * 3600),
            replicas: 1,
            max_per_subject: -1,
            allow_direct: false,
        }
    }

    /// VAULT: the record vault's sealed rows (wrapped data keys, sealed
    /// records, erasure tombstones, epochs), one message per subject, kept
    /// until an erasure purges them: replicas of every vault that holders
    /// without the key-encryption key cannot read (ADR 0016).
    pub fn vault() -> Self {
        StreamSpec {
            name: subjects::STREAM_VAULT,
            subjects: vec![subjects::VAULT_ALL.into()],
            max_age: Duration::ZERO,
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
            max_per_subject: 1,
            allow_direct: true,
        }
    }

    /// All four streams.
    pub fn all() -> Vec<Self> {
        vec![Self::txs(), Self::blocks(), Self::alerts(), Self::reminders()]
    }

    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.to_string(),
            subjects: self.subjects.clone(),
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            discard: DiscardPolicy::Old,
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            num_replicas: self.replicas,
            max_messages_per_subject: self.max_per_subject,
            allow_direct: self.allow_direct,
            ..Default::default()
        }
    }
}

/// What a durable pull consumer should look like.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable name (one per service instance group, e.g. `ledger`).
    pub durable: String,
    /// Only messages on this subject (empty: all of the stream).
    pub filter_subject: String,
    /// Time the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Deliveries before the server gives up on a message (-1: never).
    pub max_deliver: i64,
    /// When the consumer is first created, start at the next new message
    /// instead of the stream's first (a service that acts on live events,
    /// not on history; once created, the durable keeps its position).
    pub from_new: bool,
}

impl ConsumerSpec {
    /// A durable consumer with defaults: all subjects, 30 s ack wait, unlimited redelivery.
    pub fn durable(name: &str) -> Self {
        ConsumerSpec {
            durable: name.to_string(),
            filter_subject: String::new(),
            ack_wait: Duration::from_secs(30),
            max_deliver: -1,
            from_new: false,
        }
    }
}

impl Bus {
    /// Creates the stream, or updates it when its settings differ (where
    /// this user may; otherwise the difference is logged).
    pub async fn ensure_stream(&self, spec: &StreamSpec) -> Result<stream::Stream, BusError> {
        let err = |reason: String| BusError::Setup { name: spec.name.to_string(), reason };
        let wanted = spec.config();
        let mut s = self.jetstream().get_or_create_stream(wanted.clone()).await.map_err(|e| err(e.to_string()))?;
        let have = s.info().await.map_err(|e| err(e.to_string()))?.config.clone();
        if have.subjects != wanted.subjects
            || have.max_age != wanted.max_age
            || have.duplicate_window != wanted.duplicate_window
            || have.num_replicas != wanted.num_replicas
            || have.max_messages_per_subject != wanted.max_messages_per_subject
            || have.allow_direct != wanted.allow_direct
        {
            // Only the operator may change a stream (NATS permissions): a
            // service finding other settings says so and works with the stream as it is.
            match self.jetstream().update_stream(wanted).await {
                Ok(_) => {
                    tracing::info!(stream = spec.name, "stream settings updated");
                    s = self.jetstream().get_stream(spec.name).await.map_err(|e| err(e.to_string()))?;
                }
                Err(e) => tracing::warn!(
                    stream = spec.name,
                    error = %e,
                    "the stream's settings differ from this version's; an operator must update them"
                ),
            }
        }
        Ok(s)
    }

    /// Creates all four GlucoChain streams (idempotent).
    pub async fn ensure_all_streams(&self) -> Result<(), BusError> {
        for spec in StreamSpec::all() {
            self.ensure_stream(&spec).await?;
        }
        Ok(())
    }

    /// Creates (or reuses) a durable pull consumer with explicit acks on `stream`.
    pub async fn ensure_consumer(
        &self,
        stream: &stream::Stream,
        spec: &ConsumerSpec,
    ) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>, BusError> {
        let config = pull::Config {
            durable_name: Some(spec.durable.clone()),
            filter_subject: spec.filter_subject.clone(),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: if spec.from_new { DeliverPolicy::New } else { DeliverPolicy::All },
            ack_wait: spec.ack_wait,
            max_deliver: spec.max_deliver,
            ..Default::default()
        };
        stream
            .get_or_create_consumer(&spec.durable, config)
            .await
            .map_err(|e| BusError::Setup { name: spec.durable.clone(), reason: e.to_string() })
    }
}

/// Which consumer a [`Messages`] reads with.
#[derive(Clone)]
enum Reader {
    /// A durable consumer: the server keeps its position.
    Durable(ConsumerSpec),
    /// An ordered (ephemeral) consumer from this stream sequence on.
    Ordered { next: u64 },
}

type MessageStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<async_nats::jetstream::Message, String>> + Send>>;

/// The messages of a stream, read through NATS restarts: when the server
/// forgets the consumer (a restart, an ephemeral consumer lost), keeps
/// failing, or the message stream ends, the consumer is declared again and
/// reading goes on — a durable one from its acknowledged position, an
/// ordered one after the last message handed out. Without this, a service
/// whose consumer failed stopped (found by the fault harness: ingest exited
/// after a nats-server restart).
pub struct Messages {
    bus: Bus,
    stream: StreamSpec,
    reader: Reader,
    inner: Option<MessageStream>,
    failures: u32,
}

impl Bus {
    /// Messages of `stream` through the durable consumer `consumer`.
    pub fn durable_messages(&self, stream: StreamSpec, consumer: ConsumerSpec) -> Messages {
        Messages { bus: self.clone(), stream, reader: Reader::Durable(consumer), inner: None, failures: 0 }
    }

    /// Messages of `stream` in order from its first, through an ordered consumer.
    pub fn ordered_messages(&self, stream: StreamSpec) -> Messages {
        Messages { bus: self.clone(), stream, reader: Reader::Ordered { next: 1 }, inner: None, failures: 0 }
    }
}

/// Declares the stream and the consumer, and starts reading.
async fn open(bus: Bus, spec: StreamSpec, reader: Reader) -> Result<MessageStream, String> {
    use futures::StreamExt as _;
    let stream = bus.ensure_stream(&spec).await.map_err(|e| e.to_string())?;
    Ok(match &reader {
        Reader::Durable(consumer) => {
            let consumer = bus.ensure_consumer(&stream, consumer).await.map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())?.map(|m| m.map_err(|e| e.to_string())).boxed()
        }
        Reader::Ordered { next } => {
            let config = pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: *next },
                ..Default::default()
            };
            let consumer = stream.create_consumer(config).await.map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())?.map(|m| m.map_err(|e| e.to_string())).boxed()
        }
    })
}

impl Messages {
    fn name(&self) -> &str {
        match &self.reader {
            Reader::Durable(spec) => &spec.durable,
            Reader::Ordered { .. } => "ordered",
        }
    }

    /// The next message; waits (retrying with back-off) while NATS is away.
    pub async fn next(&mut self) -> async_nats::jetstream::Message {
        use futures::StreamExt as _;
        loop {
            let Some(inner) = self.inner.as_mut() else {
                let opening = open(self.bus.clone(), self.stream.clone(), self.reader.clone());
                match opening.await {
                    Ok(s) => self.inner = Some(s),
                    Err(e) => {
                        self.failures += 1;
                        tracing::warn!(stream = self.stream.name, consumer = self.name(), error = %e, "cannot open the consumer; retrying");
                        tokio::time::sleep(Duration::from_millis(250 * u64::from(self.failures.min(8)))).await;
                    }
                }
                continue;
            };
            match inner.next().await {
                Some(Ok(m)) => {
                    self.failures = 0;
                    if let Reader::Ordered { next } = &mut self.reader
                        && let Ok(info) = m.info()
                    {
                        *next = info.stream_sequence + 1;
                    }
                    return m;
                }
                Some(Err(e)) => {
                    self.failures += 1;
                    tracing::warn!(stream = self.stream.name, consumer = self.name(), error = %e, "consumer error");
                    if self.failures >= 3 {
                        self.reopen();
                    }
                }
                None => {
                    self.failures += 1;
                    self.reopen();
                }
            }
        }
    }

    fn reopen(&mut self) {
        tracing::warn!(stream = self.stream.name, consumer = self.name(), "consumer lost; declaring it again");
        metrics::counter!("glucochain_bus_consumer_reopened_total", "stream" => self.stream.name).increment(1);
        self.inner = None;
    }
}
