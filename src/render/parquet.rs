//! Parquet export (schema: docs/parquet.md): one row per item, the JSONL's
//! fields as typed columns and the message's JSON text, with the capture's
//! id on every row so that many hosts' files union into one table. Rows go
//! out in batches into zstd-compressed row groups: memory stays flat. The
//! batches are encoded, compressed and written on a second thread.

use super::offload::Offload;
use super::{CaptureId, WallClock};
use crate::query::{CopyInfo, Direction, Flow, Item, Kind, Peer, SessionSummary, Sink, Transport};
use arrow_array::builder::{
    BooleanBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampNanosecondBuilder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::Arc;
use std::thread::Scope;

/// Rows per batch handed to the writer, and per row group: small enough to
/// keep memory flat, large enough for the engines to read well.
const BATCH_ROWS: usize = 8192;
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// zstd level 1: at 3 the file is 1.5% smaller and the export 2% slower;
/// the negative levels are no faster and make larger files (BENCHMARKS.md).
const ZSTD_LEVEL: i32 = 1;

/// The columns whose values repeat.
const DICTIONARY: [&str; 33] = [
    "capture_id",
    "type",
    "method",
    "subject",
    "tool",
    "direction",
    "session",
    "session_client_pid",
    "session_client_comm",
    "session_server_pid",
    "session_server_comm",
    "transport",
    "fd_kind",
    "ino",
    "peer_ino",
    "from_pid",
    "from_comm",
    "to_pid",
    "to_comm",
    "tcp_from",
    "tcp_to",
    "http_connection",
    "http_client",
    "http_server",
    "http_host",
    "http_method",
    "http_path",
    "http_status",
    "http_session_id",
    "http_protocol_version",
    "error_code",
    "error_message",
    "flag_reason",
];

/// The Parquet sink; its writer runs on a thread of the caller's scope.
pub struct Parquet<'scope> {
    writer: Offload<'scope, RecordBatch>,
    schema: SchemaRef,
    columns: Columns,
    clock: WallClock,
    capture_id: String,
}

impl<'scope> Parquet<'scope> {
    pub fn new<'env, W: Write + Send + 'scope>(
        scope: &'scope Scope<'scope, 'env>,
        out: W,
        clock: WallClock,
        capture: &CaptureId,
    ) -> io::Result<Self> {
        let mut columns = Columns::default();
        let schema = Arc::new(Schema::new(
            columns
                .finish()
                .iter()
                .map(|(name, nullable, array)| {
                    Field::new(*name, array.data_type().clone(), *nullable)
                })
                .collect::<Vec<_>>(),
        ));
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(ZSTD_LEVEL).map_err(io::Error::other)?,
            ))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("mcpspy {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new("mcpspy.capture.id".to_string(), capture.id.clone()),
                KeyValue::new(
                    "mcpspy.capture.id_derived".to_string(),
                    capture.derived.to_string(),
                ),
            ]));
        // A dictionary only where values repeat (names, processes,
        // endpoints): for nearly unique ones it is built only to be dropped.
        props = props.set_dictionary_enabled(false);
        for name in DICTIONARY {
            props = props.set_column_dictionary_enabled(ColumnPath::from(name), true);
        }
        // Statistics of whole messages help no reader.
        props = props
            .set_column_statistics_enabled(ColumnPath::from("message"), EnabledStatistics::None);
        let mut file = Some(
            ArrowWriter::try_new(out, Arc::clone(&schema), Some(props.build()))
                .map_err(io::Error::other)?,
        );
        let writer = Offload::start(scope, move |batch: Option<RecordBatch>| {
            match (batch, file.as_mut()) {
                (Some(batch), Some(w)) => w.write(&batch).map_err(io::Error::other),
                (None, Some(_)) => match file.take() {
                    Some(w) => w.into_inner().map_err(io::Error::other)?.flush(),
                    None => Ok(()),
                },
                (_, None) => Err(io::Error::other("the Parquet file is already closed")),
            }
        })?;
        Ok(Parquet {
            writer,
            schema,
            columns,
            clock,
            capture_id: capture.id.clone(),
        })
    }

    fn write_batch(&mut self) -> io::Result<()> {
        if self.columns.rows == 0 {
            return Ok(());
        }
        let arrays = self
            .columns
            .finish()
            .into_iter()
            .map(|(_, _, a)| a)
            .collect();
        let batch =
            RecordBatch::try_new(Arc::clone(&self.schema), arrays).map_err(io::Error::other)?;
        self.writer.send(batch)
    }
}

impl Sink for Parquet<'_> {
    fn item(&mut self, item: &Item<'_>, _text_len: u64) -> io::Result<Flow> {
        let wall = self
            .clock
            .utc(item.ts_ns)
            .and_then(|t| t.timestamp_nanos_opt());
        self.columns.push(item, wall, &self.capture_id);
        if self.columns.rows >= BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _sessions: &[SessionSummary]) -> io::Result<()> {
        self.write_batch()?;
        self.writer.finish()
    }
}

/// The builders of one batch, one per column.
#[derive(Default)]
struct Columns {
    rows: usize,
    capture_id: StringBuilder,
    n: UInt64Builder,
    timestamp: Timestamp,
    ts_ns: UInt64Builder,
    kind: StringBuilder,
    method: StringBuilder,
    subject: StringBuilder,
    tool: StringBuilder,
    id: StringBuilder,
    direction: StringBuilder,
    session: UInt64Builder,
    session_client_pid: UInt32Builder,
    session_client_comm: StringBuilder,
    session_server_pid: UInt32Builder,
    session_server_comm: StringBuilder,
    transport: StringBuilder,
    fd_kind: StringBuilder,
    ino: UInt64Builder,
    peer_ino: UInt64Builder,
    tls: BooleanBuilder,
    from_pid: UInt32Builder,
    from_comm: StringBuilder,
    to_pid: UInt32Builder,
    to_comm: StringBuilder,
    tcp_from: StringBuilder,
    tcp_to: StringBuilder,
    http_connection: UInt64Builder,
    http_client: StringBuilder,
    http_server: StringBuilder,
    http_host: StringBuilder,
    http_is_request: BooleanBuilder,
    http_method: StringBuilder,
    http_path: StringBuilder,
    http_status: UInt16Builder,
    http_session_id: StringBuilder,
    http_protocol_version: StringBuilder,
    http_sse: BooleanBuilder,
    request_n: UInt64Builder,
    latency_ns: UInt64Builder,
    tool_error: BooleanBuilder,
    error_code: Int64Builder,
    error_message: StringBuilder,
    size_bytes: UInt64Builder,
    truncated: BooleanBuilder,
    batch_index: UInt32Builder,
    batch_size: UInt32Builder,
    copies_differ: BooleanBuilder,
    interleaved: BooleanBuilder,
    flag_reason: StringBuilder,
    flag_detail: StringBuilder,
    flag_stream_bytes: UInt64Builder,
    writer: CopyColumns,
    reader: CopyColumns,
    message: StringBuilder,
}

/// Timestamps in UTC, nanoseconds.
struct Timestamp(TimestampNanosecondBuilder);

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp(TimestampNanosecondBuilder::new().with_timezone("UTC"))
    }
}

/// One side's copy of the message: where it is in the capture.
#[derive(Default)]
struct CopyColumns {
    pid: UInt32Builder,
    fd: UInt32Builder,
    offset: UInt64Builder,
    end: UInt64Builder,
    ts_ns: UInt64Builder,
    seqs: ListBuilder<UInt64Builder>,
}

impl CopyColumns {
    fn push(&mut self, c: Option<&CopyInfo<'_>>) {
        self.pid.append_option(c.map(|c| c.stream.tgid));
        self.fd.append_option(c.map(|c| c.fd));
        self.offset.append_option(c.map(|c| c.start));
        self.end.append_option(c.map(|c| c.end));
        self.ts_ns.append_option(c.map(|c| c.last_ts));
        // Never null: an empty list when the copy was not captured.
        self.seqs.values().append_slice(c.map_or(&[], |c| c.seqs));
        self.seqs.append(true);
    }

    fn finish(&mut self, names: [&'static str; 6]) -> [(&'static str, bool, ArrayRef); 6] {
        [
            (names[0], true, Arc::new(self.pid.finish())),
            (names[1], true, Arc::new(self.fd.finish())),
            (names[2], true, Arc::new(self.offset.finish())),
            (names[3], true, Arc::new(self.end.finish())),
            (names[4], true, Arc::new(self.ts_ns.finish())),
            (names[5], false, Arc::new(self.seqs.finish())),
        ]
    }
}

fn pid(p: Option<Peer>) -> Option<u32> {
    p.map(|p| p.pid)
}

fn comm(p: &Option<Peer>) -> Option<Cow<'_, str>> {
    p.as_ref().map(Peer::comm)
}

impl Columns {
    fn push(&mut self, item: &Item<'_>, wall_ns: Option<i64>, capture_id: &str) {
        self.rows += 1;
        self.capture_id.append_value(capture_id);
        self.n.append_value(item.n);
        self.timestamp.0.append_option(wall_ns);
        self.ts_ns.append_value(item.ts_ns);
        let (kind, id) = match &item.kind {
            Kind::Request { id, .. } => ("request", Some(id.get())),
            Kind::Notification { .. } => ("notification", None),
            Kind::Response { id, .. } => ("response", Some(id.get())),
            Kind::Error { id, .. } => ("error", id.map(|i| i.get())),
            Kind::Flagged(_) => ("flagged", None),
        };
        self.kind.append_value(kind);
        let method = item.kind.method();
        self.method.append_option(method);
        self.subject.append_option(item.kind.subject());
        self.tool
            .append_option(item.kind.subject().filter(|_| method == Some("tools/call")));
        self.id.append_option(id);
        self.direction
            .append_option(item.direction.map(|d| match d {
                Direction::ClientToServer => "client->server",
                Direction::ServerToClient => "server->client",
            }));
        let s = item.session;
        self.session.append_option(s.map(|s| s.id));
        self.session_client_pid
            .append_option(pid(s.and_then(|s| s.client)));
        self.session_client_comm
            .append_option(comm(&s.and_then(|s| s.client)));
        self.session_server_pid
            .append_option(pid(s.and_then(|s| s.server)));
        self.session_server_comm
            .append_option(comm(&s.and_then(|s| s.server)));
        self.transport(item);
        self.from_pid.append_option(pid(item.from));
        self.from_comm.append_option(comm(&item.from));
        self.to_pid.append_option(pid(item.to));
        self.to_comm.append_option(comm(&item.to));
        self.http(item);
        self.outcome(&item.kind);
        self.size_bytes.append_value(item.text.len() as u64);
        self.truncated.append_value(item.truncated);
        self.batch_index
            .append_option(item.batch.map(|b| b.index as u32));
        self.batch_size
            .append_option(item.batch.map(|b| b.len as u32));
        self.copies_differ.append_value(item.copies_differ);
        self.interleaved.append_value(item.interleaved);
        let flag = match &item.kind {
            Kind::Flagged(f) => Some(f),
            _ => None,
        };
        self.flag_reason
            .append_option(flag.map(|f| f.reason.code()));
        self.flag_detail
            .append_option(flag.map(|f| f.detail.as_str()));
        self.flag_stream_bytes.append_option(flag.map(|f| f.len));
        self.writer.push(item.writer.as_ref());
        self.reader.push(item.reader.as_ref());
        // Decoded messages are UTF-8; only damage may not be.
        match simdutf8::basic::from_utf8(item.text) {
            Ok(text) => self.message.append_value(text),
            Err(_) => self
                .message
                .append_value(String::from_utf8_lossy(item.text)),
        }
    }

    fn transport(&mut self, item: &Item<'_>) {
        let t = item.transport;
        self.transport
            .append_option(t.as_ref().map(Transport::family));
        let (fd_kind, ino, peer_ino) = match t {
            Some(Transport::Pipe { ino }) => (Some("pipe"), Some(ino), None),
            Some(Transport::Unix { ino, peer_ino }) => (Some("unix"), Some(ino), Some(peer_ino)),
            Some(Transport::Other { ino }) => (None, Some(ino), None),
            _ => (None, None, None),
        };
        self.fd_kind.append_option(fd_kind);
        self.ino.append_option(ino);
        self.peer_ino.append_option(peer_ino);
        let meta = item.http.and_then(|h| h.meta);
        let (tls, ends) = match t {
            Some(Transport::Tcp { tls, from, to }) => (Some(tls), Some((from, to))),
            Some(Transport::Http {
                tls,
                client: Some(c),
                server: Some(s),
            }) => (
                Some(tls),
                meta.map(|m| if m.is_request { (c, s) } else { (s, c) }),
            ),
            Some(Transport::Http { tls, .. }) => (Some(tls), None),
            _ => (None, None),
        };
        self.tls.append_option(tls);
        self.tcp_from
            .append_option(ends.map(|(f, _)| f.to_string()));
        self.tcp_to.append_option(ends.map(|(_, t)| t.to_string()));
    }

    fn http(&mut self, item: &Item<'_>) {
        let (client, server) = match item.transport {
            Some(Transport::Http { client, server, .. }) => (client, server),
            _ => (None, None),
        };
        let m = item.http.and_then(|h| h.meta);
        self.http_connection
            .append_option(item.http.map(|h| h.connection));
        self.http_client
            .append_option(client.map(|a| a.to_string()));
        self.http_server
            .append_option(server.map(|a| a.to_string()));
        self.http_host
            .append_option(m.and_then(|m| m.host.as_deref()));
        self.http_is_request.append_option(m.map(|m| m.is_request));
        self.http_method
            .append_option(m.and_then(|m| m.method.as_deref()));
        self.http_path
            .append_option(m.and_then(|m| m.path.as_deref()));
        self.http_status.append_option(m.and_then(|m| m.status));
        self.http_session_id
            .append_option(m.and_then(|m| m.session_id.as_deref()));
        self.http_protocol_version
            .append_option(m.and_then(|m| m.protocol_version.as_deref()));
        self.http_sse.append_option(m.map(|m| m.sse));
    }

    fn outcome(&mut self, kind: &Kind<'_>) {
        let refers_to = kind.linked().or(kind.answers());
        self.request_n.append_option(refers_to.map(|r| r.n));
        self.latency_ns.append_option(kind.latency_ns());
        self.tool_error.append_value(matches!(
            kind,
            Kind::Response {
                tool_error: true,
                ..
            }
        ));
        let (code, message) = match kind {
            Kind::Error { code, message, .. } => (*code, message.as_deref()),
            _ => (None, None),
        };
        self.error_code.append_option(code);
        self.error_message.append_option(message);
    }

    /// The batch's columns, in schema order, with whether each may be null;
    /// the builders start over.
    fn finish(&mut self) -> Vec<(&'static str, bool, ArrayRef)> {
        self.rows = 0;
        let mut out: Vec<(&'static str, bool, ArrayRef)> = vec![
            ("capture_id", false, Arc::new(self.capture_id.finish())),
            ("n", false, Arc::new(self.n.finish())),
            ("timestamp", true, Arc::new(self.timestamp.0.finish())),
            ("ts_ns", false, Arc::new(self.ts_ns.finish())),
            ("type", false, Arc::new(self.kind.finish())),
            ("method", true, Arc::new(self.method.finish())),
            ("subject", true, Arc::new(self.subject.finish())),
            ("tool", true, Arc::new(self.tool.finish())),
            ("id", true, Arc::new(self.id.finish())),
            ("direction", true, Arc::new(self.direction.finish())),
            ("session", true, Arc::new(self.session.finish())),
            (
                "session_client_pid",
                true,
                Arc::new(self.session_client_pid.finish()),
            ),
            (
                "session_client_comm",
                true,
                Arc::new(self.session_client_comm.finish()),
            ),
            (
                "session_server_pid",
                true,
                Arc::new(self.session_server_pid.finish()),
            ),
            (
                "session_server_comm",
                true,
                Arc::new(self.session_server_comm.finish()),
            ),
            ("transport", true, Arc::new(self.transport.finish())),
            ("fd_kind", true, Arc::new(self.fd_kind.finish())),
            ("ino", true, Arc::new(self.ino.finish())),
            ("peer_ino", true, Arc::new(self.peer_ino.finish())),
            ("tls", true, Arc::new(self.tls.finish())),
            ("from_pid", true, Arc::new(self.from_pid.finish())),
            ("from_comm", true, Arc::new(self.from_comm.finish())),
            ("to_pid", true, Arc::new(self.to_pid.finish())),
            ("to_comm", true, Arc::new(self.to_comm.finish())),
            ("tcp_from", true, Arc::new(self.tcp_from.finish())),
            ("tcp_to", true, Arc::new(self.tcp_to.finish())),
            (
                "http_connection",
                true,
                Arc::new(self.http_connection.finish()),
            ),
            ("http_client", true, Arc::new(self.http_client.finish())),
            ("http_server", true, Arc::new(self.http_server.finish())),
            ("http_host", true, Arc::new(self.http_host.finish())),
            (
                "http_is_request",
                true,
                Arc::new(self.http_is_request.finish()),
            ),
            ("http_method", true, Arc::new(self.http_method.finish())),
            ("http_path", true, Arc::new(self.http_path.finish())),
            ("http_status", true, Arc::new(self.http_status.finish())),
            (
                "http_session_id",
                true,
                Arc::new(self.http_session_id.finish()),
            ),
            (
                "http_protocol_version",
                true,
                Arc::new(self.http_protocol_version.finish()),
            ),
            ("http_sse", true, Arc::new(self.http_sse.finish())),
            ("request_n", true, Arc::new(self.request_n.finish())),
            ("latency_ns", true, Arc::new(self.latency_ns.finish())),
            ("tool_error", false, Arc::new(self.tool_error.finish())),
            ("error_code", true, Arc::new(self.error_code.finish())),
            ("error_message", true, Arc::new(self.error_message.finish())),
            ("size_bytes", false, Arc::new(self.size_bytes.finish())),
            ("truncated", false, Arc::new(self.truncated.finish())),
            ("batch_index", true, Arc::new(self.batch_index.finish())),
            ("batch_size", true, Arc::new(self.batch_size.finish())),
            (
                "copies_differ",
                false,
                Arc::new(self.copies_differ.finish()),
            ),
            ("interleaved", false, Arc::new(self.interleaved.finish())),
            ("flag_reason", true, Arc::new(self.flag_reason.finish())),
            ("flag_detail", true, Arc::new(self.flag_detail.finish())),
            (
                "flag_stream_bytes",
                true,
                Arc::new(self.flag_stream_bytes.finish()),
            ),
        ];
        out.extend(self.writer.finish([
            "writer_pid",
            "writer_fd",
            "writer_offset",
            "writer_end",
            "writer_ts_ns",
            "writer_seqs",
        ]));
        out.extend(self.reader.finish([
            "reader_pid",
            "reader_fd",
            "reader_offset",
            "reader_end",
            "reader_ts_ns",
            "reader_seqs",
        ]));
        // The next batch's texts start with room for as much as this one's:
        // growing the buffer from nothing copies it over and over.
        let bytes = self.message.values_slice().len();
        let message = std::mem::replace(
            &mut self.message,
            StringBuilder::with_capacity(BATCH_ROWS, bytes),
        )
        .finish();
        out.push(("message", false, Arc::new(message)));
        out
    }
}
