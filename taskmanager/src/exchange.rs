//! The data exchange between task managers. A producer task's channel to a remote consumer
//! is registered here under its [`ChannelKey`]; the consumer's task manager opens it with
//! `OpenChannel` and reads frames. Frames are produced only as fast as HTTP/2 flow control
//! lets them out, so a slow consumer fills the producer's bounded channel and the producer
//! waits: backpressure end to end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use sluice_core::Message;
use sluice_proto::auth::AttachToken;
use sluice_proto::data_exchange_client::DataExchangeClient;
use sluice_proto::data_exchange_server::DataExchange;
use sluice_proto::{DataFrame, OpenChannelRequest};
use tokio::sync::{mpsc, Notify};
use tonic::{Request, Response, Status};

use crate::deploy::RemoteInput;
use crate::ipc::{frame_len, FrameDecoder, FrameEncoder};
use crate::metrics::TaskMetrics;

/// How long a consumer waits for its producer to be deployed before giving up.
const PRODUCER_WAIT: Duration = Duration::from_secs(30);

/// Identifies one channel: one producer subtask to one consumer subtask of one job attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    /// Job id.
    pub job_id: String,
    /// Job attempt.
    pub attempt: u32,
    /// Producer vertex and subtask.
    pub producer: (u32, u32),
    /// Consumer vertex and subtask.
    pub consumer: (u32, u32),
}

impl ChannelKey {
    fn from_request(r: &OpenChannelRequest) -> Self {
        ChannelKey {
            job_id: r.job_id.clone(),
            attempt: r.attempt,
            producer: (r.producer_vertex, r.producer_subtask),
            consumer: (r.consumer_vertex, r.consumer_subtask),
        }
    }

    fn to_request(&self) -> OpenChannelRequest {
        OpenChannelRequest {
            job_id: self.job_id.clone(),
            attempt: self.attempt,
            producer_vertex: self.producer.0,
            producer_subtask: self.producer.1,
            consumer_vertex: self.consumer.0,
            consumer_subtask: self.consumer.1,
        }
    }
}

struct Registered {
    rx: mpsc::Receiver<Message>,
    metrics: Arc<TaskMetrics>,
}

/// Producer-side channels waiting for their remote consumers.
#[derive(Default)]
pub struct ExchangeRegistry {
    channels: Mutex<HashMap<ChannelKey, Registered>>,
    registered: Notify,
}

impl ExchangeRegistry {
    /// Offers the receiving end of a producer's channel to the remote consumer.
    pub fn register(&self, key: ChannelKey, rx: mpsc::Receiver<Message>, metrics: Arc<TaskMetrics>) {
        self.lock().insert(key, Registered { rx, metrics });
        self.registered.notify_waiters();
    }

    /// Drops the channels of a job's attempts up to `through` (on cancel or failure),
    /// releasing blocked producers.
    pub fn remove_job(&self, job_id: &str, through: u32) {
        self.lock().retain(|k, _| k.job_id != job_id || k.attempt > through);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKey, Registered>> {
        self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn take(&self, key: &ChannelKey) -> Option<Registered> {
        let deadline = tokio::time::Instant::now() + PRODUCER_WAIT;
        loop {
            let notified = self.registered.notified();
            if let Some(found) = self.lock().remove(key) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// The `DataExchange` gRPC service of a task manager.
pub struct DataExchangeService {
    registry: Arc<ExchangeRegistry>,
}

impl DataExchangeService {
    /// Serves channels from `registry`.
    pub fn new(registry: Arc<ExchangeRegistry>) -> Self {
        DataExchangeService { registry }
    }
}

#[tonic::async_trait]
impl DataExchange for DataExchangeService {
    type OpenChannelStream = BoxStream<'static, Result<DataFrame, Status>>;

    async fn open_channel(
        &self,
        request: Request<OpenChannelRequest>,
    ) -> Result<Response<Self::OpenChannelStream>, Status> {
        let key = ChannelKey::from_request(request.get_ref());
        let Some(Registered { rx, metrics }) = self.registry.take(&key).await else {
            return Err(Status::not_found(format!(
                "no channel from subtask {} of vertex {} to subtask {} of vertex {} (job {} attempt {})",
                key.producer.1, key.producer.0, key.consumer.1, key.consumer.0, key.job_id, key.attempt
            )));
        };
        let frames = stream::unfold((rx, FrameEncoder::default(), false), move |(mut rx, mut encoder, done)| {
            let metrics = metrics.clone();
            async move {
                if done {
                    return None;
                }
                let message = rx.recv().await?;
                let end = matches!(message, Message::EndOfInput);
                let rows = match &message {
                    Message::Data(batch) => batch.num_rows(),
                    _ => 0,
                };
                let frame = encoder.encode(message).map_err(|e| Status::internal(e.to_string()));
                if let Ok(f) = &frame {
                    metrics.add_remote(frame_len(f), rows);
                }
                Some((frame, (rx, encoder, end)))
            }
        });
        Ok(Response::new(frames.boxed()))
    }
}

/// Reads a remote producer's channel into a local one until end of input. On failure the
/// local sender is dropped, so the consuming task sees its input close and fails.
pub async fn read_remote(input: RemoteInput, token: AttachToken) {
    if let Err(message) = pump(&input, token).await {
        tracing::warn!(peer = %input.address, key = ?input.key, %message, "remote input failed");
    }
}

async fn pump(input: &RemoteInput, token: AttachToken) -> Result<(), String> {
    let RemoteInput { address, key, tx, metrics } = input;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .initial_stream_window_size(crate::STREAM_WINDOW)
        .initial_connection_window_size(crate::CONNECTION_WINDOW)
        .tcp_nodelay(true);
    let mut attempts = 0;
    let channel = loop {
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) if attempts < 20 => {
                attempts += 1;
                tracing::debug!(peer = %address, error = %e, "retrying data connection");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(format!("cannot connect: {e}")),
        }
    };
    let mut client = DataExchangeClient::new(token.wrap(channel)).max_decoding_message_size(crate::MAX_FRAME_BYTES);
    let mut frames = client.open_channel(key.to_request()).await.map_err(|s| s.message().to_string())?.into_inner();
    let mut decoder = FrameDecoder::default();
    loop {
        let frame = frames.message().await.map_err(|s| s.message().to_string())?;
        let Some(frame) = frame else {
            return Err("the producer closed the channel before its end".into());
        };
        metrics.add_bytes_in(frame_len(&frame));
        if let Some(message) = decoder.decode(frame).map_err(|e| e.to_string())? {
            let end = matches!(message, Message::EndOfInput);
            if tx.send(message).await.is_err() {
                return Ok(()); // the consumer is gone (canceled); nothing to report
            }
            if end {
                return Ok(());
            }
        }
    }
}
