//! Encoding of [`Message`]s into data-plane frames: record batches as Arrow IPC stream
//! messages (the schema once per channel, then one message per batch), control signals as
//! protobuf fields.

use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use sluice_core::{Barrier, Message};
use sluice_proto::data_frame::Kind;
use sluice_proto::{CheckpointBarrier, DataFrame, EndOfInput, Idle};

use crate::error::TaskError;

/// Encodes one channel's messages; the Arrow schema is sent with the first batch only.
#[derive(Default)]
pub struct FrameEncoder {
    writer: Option<(SchemaRef, StreamWriter<Vec<u8>>)>,
}

impl FrameEncoder {
    /// Encodes `message` as a frame.
    pub fn encode(&mut self, message: Message) -> Result<DataFrame, TaskError> {
        let kind = match message {
            Message::Data(batch) => Kind::Ipc(self.encode_batch(&batch)?),
            Message::Watermark(w) => Kind::Watermark(w),
            Message::Barrier(b) => Kind::Barrier(CheckpointBarrier {
                checkpoint_id: b.checkpoint_id,
                timestamp_ms: b.timestamp_ms,
                last_completed: b.last_completed,
            }),
            Message::EndOfInput => Kind::EndOfInput(EndOfInput {}),
            Message::Idle => Kind::Idle(Idle {}),
            Message::SplitsAssigned(_) => {
                return Err(TaskError::Operator(sluice_core::OperatorError::InvalidPlan(
                    "a split announcement must not leave its task".into(),
                )))
            }
        };
        Ok(DataFrame { kind: Some(kind) })
    }

    fn encode_batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TaskError> {
        let writer = match &mut self.writer {
            Some((schema, w)) if *schema == batch.schema() => w,
            slot => {
                // First batch, or a schema change: start a new IPC stream on this channel.
                let writer = StreamWriter::try_new(Vec::new(), &batch.schema()).map_err(TaskError::ipc)?;
                &mut slot.insert((batch.schema(), writer)).1
            }
        };
        writer.write(batch).map_err(TaskError::ipc)?;
        Ok(std::mem::take(writer.get_mut()))
    }
}

/// Decodes one channel's frames back into messages.
#[derive(Default)]
pub struct FrameDecoder {
    decoder: StreamDecoder,
}

impl FrameDecoder {
    /// Decodes a frame; `None` for an empty frame.
    pub fn decode(&mut self, frame: DataFrame) -> Result<Option<Message>, TaskError> {
        Ok(match frame.kind {
            Some(Kind::Ipc(bytes)) => {
                let mut buffer = Buffer::from(bytes);
                let mut batch = None;
                while !buffer.is_empty() {
                    if let Some(b) = self.decoder.decode(&mut buffer).map_err(TaskError::ipc)? {
                        batch = Some(b);
                    }
                }
                // Every IPC frame carries exactly one whole batch (after the schema on the first).
                let batch = batch.ok_or_else(|| TaskError::Ipc("a data frame held no complete record batch".into()))?;
                Some(Message::Data(batch))
            }
            Some(Kind::Watermark(w)) => Some(Message::Watermark(w)),
            Some(Kind::Barrier(b)) => Some(Message::Barrier(Barrier {
                checkpoint_id: b.checkpoint_id,
                timestamp_ms: b.timestamp_ms,
                last_completed: b.last_completed,
            })),
            Some(Kind::EndOfInput(_)) => Some(Message::EndOfInput),
            Some(Kind::Idle(_)) => Some(Message::Idle),
            None => None,
        })
    }
}

/// Size of a frame on the wire (payload bytes; framing overhead excluded).
pub fn frame_len(frame: &DataFrame) -> usize {
    prost::Message::encoded_len(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(n: i64) -> RecordBatch {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("s", DataType::Utf8, true)]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("v{i}")))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn messages_round_trip_and_schema_is_sent_once() {
        let mut enc = FrameEncoder::default();
        let mut dec = FrameDecoder::default();
        let first = enc.encode(Message::Data(batch(10))).unwrap();
        let second = enc.encode(Message::Data(batch(10))).unwrap();
        assert!(frame_len(&second) < frame_len(&first), "the second frame carries no schema");
        for frame in [first, second] {
            match dec.decode(frame).unwrap() {
                Some(Message::Data(b)) => assert_eq!(b, batch(10)),
                other => panic!("expected data, got {other:?}"),
            }
        }
        let barrier = Barrier { checkpoint_id: 7, timestamp_ms: 1, last_completed: 6 };
        match dec.decode(enc.encode(Message::Barrier(barrier)).unwrap()).unwrap() {
            Some(Message::Barrier(b)) => assert_eq!(b, barrier),
            other => panic!("expected a barrier, got {other:?}"),
        }
        assert!(matches!(dec.decode(enc.encode(Message::EndOfInput).unwrap()).unwrap(), Some(Message::EndOfInput)));
        assert!(matches!(dec.decode(enc.encode(Message::Idle).unwrap()).unwrap(), Some(Message::Idle)));
    }

    #[test]
    fn corrupt_frames_are_errors() {
        let mut dec = FrameDecoder::default();
        let frame = DataFrame { kind: Some(Kind::Ipc(vec![0xff; 64])) };
        assert!(dec.decode(frame).is_err());
    }
}
