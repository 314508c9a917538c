//! `cinelog events export`: the log (or a filtered part of it) to a file, in log order, as
//! NDJSON envelopes, CloudEvents (structured JSON, one per line) or Parquet with typed envelope
//! columns and the payload as JSON text. Reads one batch at a time, so memory stays flat
//! however long the log.

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use cinelog_projections::Checkpoint;
use cinelog_projections::analyst::{AnalystLog, LogFilter};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The file formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Parquet,
    Cloudevents,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ndjson" => Ok(Format::Ndjson),
            "parquet" => Ok(Format::Parquet),
            "cloudevents" => Ok(Format::Cloudevents),
            other => Err(format!(
                "unknown format {other:?}: ndjson, parquet or cloudevents"
            )),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub events: u64,
    pub last_position: Option<i64>,
}

/// The Parquet schema: one row per event.
pub fn parquet_schema() -> Arc<Schema> {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("position", DataType::Int64, false),
        Field::new(
            "recorded_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("stream_type", false),
        text("stream_id", false),
        Field::new("version", DataType::Int64, false),
        text("event_type", false),
        text("schema_version", false),
        text("event_id", false),
        text("correlation_id", false),
        text("causation_id", true),
        text("actor", false),
        text("hash", false),
        text("prev_hash", false),
        text("payload", false),
    ]))
}

/// The envelope as a CloudEvent (structured mode), Cinelog's envelope fields as extensions.
pub fn cloudevent(e: &Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": e["event_id"],
        "source": format!("cinelog/{}", e["stream_type"].as_str().unwrap_or("")),
        "type": format!("cinelog.{}.{}", e["stream_type"].as_str().unwrap_or(""), e["event_type"].as_str().unwrap_or("")),
        "subject": e["stream_id"],
        "time": e["recorded_at"],
        "datacontenttype": "application/json",
        "dataschema": format!("cinelog:{}/{}", e["event_type"].as_str().unwrap_or(""), e["schema_version"].as_str().unwrap_or("")),
        "data": e["payload"],
        "position": e["position"],
        "streamversion": e["version"],
        "correlationid": e["correlation_id"],
        "causationid": e["causation_id"],
        "actor": e["actor"],
        "hash": e["hash"],
    })
}

/// Columns being filled for one Parquet row group.
struct Columns {
    position: Int64Builder,
    recorded_at: TimestampMicrosecondBuilder,
    text: Vec<StringBuilder>,
    version: Int64Builder,
}

const TEXT_FIELDS: [&str; 11] = [
    "stream_type",
    "stream_id",
    "event_type",
    "schema_version",
    "event_id",
    "correlation_id",
    "causation_id",
    "actor",
    "hash",
    "prev_hash",
    "payload",
];

impl Columns {
    fn new() -> Self {
        Columns {
            position: Int64Builder::new(),
            recorded_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            text: TEXT_FIELDS.iter().map(|_| StringBuilder::new()).collect(),
            version: Int64Builder::new(),
        }
    }

    fn push(&mut self, e: &Value) -> anyhow::Result<()> {
        self.position
            .append_value(e["position"].as_i64().unwrap_or(0));
        let at = e["recorded_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .ok_or_else(|| anyhow::anyhow!("an event without recorded_at"))?;
        self.recorded_at.append_value(at.timestamp_micros());
        self.version
            .append_value(e["version"].as_i64().unwrap_or(0));
        for (builder, name) in self.text.iter_mut().zip(TEXT_FIELDS) {
            match &e[name] {
                Value::Null => builder.append_null(),
                Value::String(s) => builder.append_value(s),
                other => builder.append_value(other.to_string()),
            }
        }
        Ok(())
    }

    fn finish(&mut self, schema: &Arc<Schema>) -> anyhow::Result<RecordBatch> {
        let mut text = self
            .text
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut next = || text.next().expect("eleven text columns");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.position.finish()),
            Arc::new(self.recorded_at.finish()),
            next(),
            next(),
            Arc::new(self.version.finish()),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
        ];
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// Where the rows go.
enum Sink {
    Lines(std::io::BufWriter<std::fs::File>, bool),
    Parquet(Box<ParquetSink>),
}

struct ParquetSink {
    writer: parquet::arrow::ArrowWriter<std::fs::File>,
    columns: Columns,
    schema: Arc<Schema>,
}

/// Rows per Parquet row group.
const ROW_GROUP: usize = 50_000;

/// Writes the events after `after` that match `filter` to `out`; `progress` is told the
/// position reached after each batch.
pub async fn export(
    log: &AnalystLog,
    filter: &LogFilter,
    format: Format,
    out: &Path,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Exported> {
    let file = std::fs::File::create(out)?;
    let mut sink = match format {
        Format::Ndjson | Format::Cloudevents => {
            Sink::Lines(std::io::BufWriter::new(file), format == Format::Cloudevents)
        }
        Format::Parquet => {
            let schema = parquet_schema();
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build();
            Sink::Parquet(Box::new(ParquetSink {
                writer: parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))?,
                columns: Columns::new(),
                schema,
            }))
        }
    };
    let mut next = Checkpoint::START;
    let mut erased = HashMap::new();
    let mut done = Exported {
        events: 0,
        last_position: None,
    };
    let mut pending = 0usize;
    loop {
        let batch = log.next_batch(next, filter, &mut erased).await?;
        for safe in &batch.events {
            let position = &safe.event.position;
            let event = &safe.to_value()?;
            match &mut sink {
                Sink::Lines(w, cloud) => {
                    if *cloud {
                        serde_json::to_writer(&mut *w, &cloudevent(event))?;
                    } else {
                        serde_json::to_writer(&mut *w, event)?;
                    }
                    w.write_all(b"\n")?;
                }
                Sink::Parquet(p) => {
                    p.columns.push(event)?;
                    pending += 1;
                    if pending >= ROW_GROUP {
                        p.writer.write(&p.columns.finish(&p.schema)?)?;
                        pending = 0;
                    }
                }
            }
            done.events += 1;
            done.last_position = Some(*position);
        }
        next = batch.next;
        progress(u64::try_from(next.position).unwrap_or(0));
        if batch.at_end {
            break;
        }
    }
    match sink {
        Sink::Lines(mut w, _) => w.flush()?,
        Sink::Parquet(mut p) => {
            if pending > 0 {
                p.writer.write(&p.columns.finish(&p.schema)?)?;
            }
            p.writer.close()?;
        }
    }
    Ok(done)
}
