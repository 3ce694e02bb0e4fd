//! The `print` sink: writes each row to standard output (or error) as Flink does,
//! `+I[v1, v2, ...]`, prefixed by `print-identifier` and the subtask number when parallel.
//!
//! With checkpoints, rows are held until the checkpoint that covers them completes (and are
//! part of that checkpoint), so a restored job prints each row once. Standard output
//! cannot be rolled back: a crash between printing a checkpoint's rows and the next
//! checkpoint can still print those rows again.

use std::io::Write;

use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;

use sluice_core::changelog::{self, ChangelogBatch};
use sluice_core::options::Options;
use sluice_core::state::{put_bytes, Reader};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};

/// Parsed `print` options.
#[derive(Debug, Clone)]
pub struct PrintConfig {
    identifier: Option<String>,
    standard_error: bool,
}

impl PrintConfig {
    /// Reads `print-identifier` and `standard-error`.
    pub fn parse(options: &mut Options<'_>) -> Result<Self> {
        Ok(PrintConfig {
            identifier: options.get("print-identifier").map(str::to_string),
            standard_error: options.bool("standard-error")?.unwrap_or(false),
        })
    }
}

/// A running print sink.
pub struct PrintSink {
    config: PrintConfig,
    prefix: String,
    checkpointing: bool,
    /// Rows since the last barrier (checkpointing only).
    staged: String,
    /// Rows of checkpoints not yet completed: (checkpoint, text).
    pending: Vec<(u64, String)>,
}

impl PrintSink {
    /// A sink printing with `config`.
    pub fn new(config: PrintConfig) -> Self {
        PrintSink { config, prefix: String::new(), checkpointing: false, staged: String::new(), pending: Vec::new() }
    }

    fn write(&self, text: &str) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let result = if self.config.standard_error {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            std::io::stdout().lock().write_all(text.as_bytes())
        };
        result.map_err(|source| OperatorError::Io { action: "cannot write to", path: "standard output".into(), source })
    }
}

/// Formats every row of `batch` as Flink's `+I[...]`.
pub fn format_rows(batch: &RecordBatch) -> Result<Vec<String>> {
    let options = FormatOptions::default().with_null("null");
    let ChangelogBatch { rows, kinds } = changelog::split(batch)?;
    let formatters = rows
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| OperatorError::arrow("cannot format rows", e))?;
    Ok(kinds
        .iter()
        .enumerate()
        .map(|(row, kind)| {
            let values: Vec<String> = formatters.iter().map(|f| f.value(row).to_string()).collect();
            format!("{}[{}]", kind.short_string(), values.join(", "))
        })
        .collect())
}

#[async_trait]
impl Operator for PrintSink {
    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.prefix = match (&self.config.identifier, ctx.parallelism > 1) {
            (Some(id), true) => format!("{id}:{}> ", ctx.subtask + 1),
            (Some(id), false) => format!("{id}> "),
            (None, true) => format!("{}> ", ctx.subtask + 1),
            (None, false) => String::new(),
        };
        self.checkpointing = ctx.checkpointing;
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        let mut text = String::new();
        for row in format_rows(&batch)? {
            text.push_str(&self.prefix);
            text.push_str(&row);
            text.push('\n');
        }
        if self.checkpointing {
            self.staged.push_str(&text);
            Ok(())
        } else {
            self.write(&text)
        }
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        // Rows of the restored checkpoint were not printed before the failure: print them.
        for entry in init.entries() {
            let mut r = Reader::new(entry, "print");
            let _checkpoint = r.u64()?;
            self.write(&r.string()?)?;
        }
        Ok(())
    }

    async fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        if !self.staged.is_empty() {
            self.pending.push((checkpoint_id, std::mem::take(&mut self.staged)));
        }
        let entries = self
            .pending
            .iter()
            .map(|(id, text)| {
                let mut e = id.to_le_bytes().to_vec();
                put_bytes(&mut e, text.as_bytes());
                e
            })
            .collect();
        Ok(OperatorState::split(entries))
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(|(id, _)| *id <= checkpoint_id);
        self.pending = waiting;
        for (_, text) in ready {
            self.write(&text)?;
        }
        Ok(())
    }
}

/// The `print` connector.
pub struct Print;

impl crate::registry::Connector for Print {
    fn name(&self) -> &'static str {
        "print"
    }

    fn roles(&self) -> &'static [crate::Role] {
        &[crate::Role::Sink]
    }

    fn sink(
        &self,
        _spec: &sluice_proto::ConnectorSpec,
        options: &mut Options<'_>,
        _schema: arrow::datatypes::SchemaRef,
    ) -> Result<Box<dyn crate::registry::SinkFactory>> {
        Ok(Box::new(PrintConfig::parse(options)?))
    }
}

impl crate::registry::SinkFactory for PrintConfig {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>) -> Box<dyn Operator> {
        Box::new(PrintSink::new(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn rows_look_like_flink() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("x"), Some("y")])),
                Arc::new(Float64Array::from(vec![Some(0.5), None])),
            ],
        )
        .unwrap();
        assert_eq!(format_rows(&batch).unwrap(), vec!["+I[1, x, 0.5]", "+I[null, y, null]"]);
    }

    #[test]
    fn updating_rows_show_their_kind_and_hide_the_kind_column() {
        use sluice_core::changelog::RowKind;
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int32, false),
        ]));
        let rows = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec!["a", "a", "a", "a"])), Arc::new(Int32Array::from(vec![1, 1, 2, 2]))],
        )
        .unwrap();
        let kinds = [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete];
        let batch = changelog::join(&rows, &kinds).unwrap();
        assert_eq!(format_rows(&batch).unwrap(), vec!["+I[a, 1]", "-U[a, 1]", "+U[a, 2]", "-D[a, 2]"]);
    }
}
