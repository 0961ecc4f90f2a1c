//! Rows in the result log's encoding, written as they are converted: each row is the `rows`
//! field of a `RowBatch`, so that any run of consecutive rows is itself a valid `RowBatch`.
//! Writing the bytes straight away spares a page its `Row` and `Value` objects (an allocation
//! for every string and decimal, and a second walk over them to encode them).

use flinkbroker_proto as proto;
use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// The field of `RowBatch` that holds its rows.
const ROW_BATCH_ROWS: u32 = 1;

/// The fields of `Value.kind`, one per kind of value.
pub(super) mod value_field {
    pub(in super::super) const NULL: u32 = 1;
    pub(in super::super) const BOOL: u32 = 2;
    pub(in super::super) const INT: u32 = 3;
    pub(in super::super) const DOUBLE: u32 = 4;
    pub(in super::super) const DECIMAL: u32 = 5;
    pub(in super::super) const STRING: u32 = 6;
    pub(in super::super) const DATE: u32 = 8;
    pub(in super::super) const TIME: u32 = 9;
    pub(in super::super) const TIMESTAMP: u32 = 10;
    pub(in super::super) const INSTANT: u32 = 11;
}

/// Rows encoded one after another as the `rows` field of a `RowBatch`, and where each ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedRows {
    data: Vec<u8>,
    /// The end of each row in `data`, in order.
    ends: Vec<usize>,
}

impl EncodedRows {
    /// No rows, with room for about `bytes` of encoded rows and `rows` rows.
    pub fn with_capacity(bytes: usize, rows: usize) -> EncodedRows {
        EncodedRows {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(rows),
        }
    }

    /// Encodes `rows` as prost encodes them in a `RowBatch`.
    pub fn from_rows(rows: &[proto::Row]) -> EncodedRows {
        let mut encoded = EncodedRows::default();
        for row in rows {
            encoded.push(row);
        }
        encoded
    }

    /// Appends one row.
    pub fn push(&mut self, row: &proto::Row) {
        prost::encoding::message::encode(ROW_BATCH_ROWS, row, &mut self.data);
        self.ends.push(self.data.len());
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoded rows: a valid encoding of a `RowBatch` holding them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Keeps the first `rows` rows.
    pub fn truncate(&mut self, rows: usize) {
        if rows < self.ends.len() {
            self.ends.truncate(rows);
            self.data.truncate(self.ends.last().copied().unwrap_or(0));
        }
    }

    /// Splits the rows into runs of consecutive rows, each ending with the row that takes it
    /// to `max_bytes` or more (the last run may be shorter): (rows, bytes) per run, each bytes a
    /// valid encoding of a `RowBatch`. One run keeps the buffer as it is, without a copy.
    pub fn into_runs(self, max_bytes: usize) -> Vec<(u64, Vec<u8>)> {
        let mut runs = Vec::new();
        let (mut start, mut first) = (0usize, 0usize);
        for (index, &end) in self.ends.iter().enumerate() {
            let last = index + 1 == self.ends.len();
            if end - start >= max_bytes && !last {
                runs.push(((index + 1 - first) as u64, self.data[start..end].to_vec()));
                (start, first) = (end, index + 1);
            }
        }
        if first < self.ends.len() {
            let rows = (self.ends.len() - first) as u64;
            let rest = if start == 0 {
                self.data
            } else {
                self.data[start..].to_vec()
            };
            runs.push((rows, rest));
        }
        runs
    }

    /// Decodes the rows again.
    pub fn decode(&self) -> Result<Vec<proto::Row>, prost::DecodeError> {
        proto::RowBatch::decode(self.data.as_slice()).map(|batch| batch.rows)
    }

    /// Starts a row, with its kind when it is known already (else
    /// [`insert_kind`](Self::insert_kind) adds it); the caller writes its values with
    /// [`value_field`](Self::value_field), and [`end_row`](Self::end_row) ends it.
    pub(super) fn begin_row(&mut self, kind: Option<proto::RowKind>) -> usize {
        let start = open_len(ROW_BATCH_ROWS, &mut self.data);
        if let Some(kind) = kind {
            put_kind(kind, &mut self.data);
        }
        start
    }

    /// Adds the kind of the row begun at `start`, read after its values: before them, where
    /// prost writes it.
    pub(super) fn insert_kind(&mut self, start: usize, kind: proto::RowKind) {
        let mut field = Vec::with_capacity(2);
        put_kind(kind, &mut field);
        self.data.splice(start..start, field);
    }

    /// Starts a value of the row begun at `row`; its writer writes the `Value`'s fields.
    pub(super) fn value_field(&mut self) -> ValueWriter<'_> {
        let start = open_len(2, &mut self.data);
        ValueWriter {
            out: &mut self.data,
            start,
        }
    }

    /// Ends the row begun at `start`.
    pub(super) fn end_row(&mut self, start: usize) {
        close_len(start, &mut self.data);
        self.ends.push(self.data.len());
    }
}

/// Writes `Row.kind`, unless it is the default (as prost does).
fn put_kind(kind: proto::RowKind, out: &mut Vec<u8>) {
    let kind = kind as i32;
    if kind != 0 {
        encode_key(1, WireType::Varint, out);
        encode_varint(kind as u64, out);
    }
}

/// Writes the fields of one `Value` (exactly one of its `kind`), as prost encodes them.
pub(super) struct ValueWriter<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl ValueWriter<'_> {
    /// A varint field: bools, integers, dates, times, the null marker.
    pub(super) fn varint(self, tag: u32, value: u64) {
        encode_key(tag, WireType::Varint, self.out);
        encode_varint(value, self.out);
        close_len(self.start, self.out);
    }

    /// SQL NULL.
    pub(super) fn null(self) {
        self.varint(value_field::NULL, proto::NullValue::NullValue as u64);
    }

    /// A double.
    pub(super) fn double(self, tag: u32, value: f64) {
        encode_key(tag, WireType::SixtyFourBit, self.out);
        self.out.extend_from_slice(&value.to_le_bytes());
        close_len(self.start, self.out);
    }

    /// A string or bytes field.
    pub(super) fn bytes(self, tag: u32, value: &[u8]) {
        encode_key(tag, WireType::LengthDelimited, self.out);
        encode_varint(value.len() as u64, self.out);
        self.out.extend_from_slice(value);
        close_len(self.start, self.out);
    }

    /// A `google.protobuf.Timestamp` field.
    pub(super) fn timestamp(self, tag: u32, seconds: i64, nanos: i32) {
        let start = open_len(tag, self.out);
        if seconds != 0 {
            encode_key(1, WireType::Varint, self.out);
            encode_varint(seconds as u64, self.out);
        }
        if nanos != 0 {
            encode_key(2, WireType::Varint, self.out);
            encode_varint(nanos as u64, self.out);
        }
        close_len(start, self.out);
        close_len(self.start, self.out);
    }

    /// A value converted as a whole (composite values), encoded by prost.
    pub(super) fn message(self, value: &proto::Value) {
        value.encode_raw(self.out);
        close_len(self.start, self.out);
    }
}

/// Starts a length-delimited field: its key, and one byte for its length (most values and
/// rows are shorter than 128 bytes); returns where its content starts.
fn open_len(tag: u32, out: &mut Vec<u8>) -> usize {
    encode_key(tag, WireType::LengthDelimited, out);
    out.push(0);
    out.len()
}

/// Ends a field begun with [`open_len`]: writes the length of its content before it, moving
/// the content along when the length takes more than the byte kept for it.
fn close_len(start: usize, out: &mut Vec<u8>) {
    let len = out.len() - start;
    let width = encoded_len_varint(len as u64);
    if width > 1 {
        out.resize(out.len() + width - 1, 0);
        out.copy_within(start..start + len, start + width - 1);
    }
    let mut slot = &mut out[start - 1..start - 1 + width];
    encode_varint(len as u64, &mut slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    use flinkbroker_proto::value::Kind;

    fn row(values: Vec<Kind>) -> proto::Row {
        proto::Row {
            kind: proto::RowKind::Insert as i32,
            values: values
                .into_iter()
                .map(|kind| proto::Value { kind: Some(kind) })
                .collect(),
        }
    }

    #[test]
    fn long_values_and_rows_move_behind_their_lengths() {
        for len in [0, 1, 100, 127, 128, 200, 16_383, 16_384, 70_000] {
            let text = "x".repeat(len);
            let expected = row(vec![Kind::StringValue(text.clone()), Kind::IntValue(-1)]);
            let mut written = EncodedRows::default();
            let start = written.begin_row(Some(proto::RowKind::Insert));
            written.value_field().bytes(6, text.as_bytes());
            written.value_field().varint(3, -1i64 as u64);
            written.end_row(start);
            assert_eq!(written, EncodedRows::from_rows(&[expected]), "{len}");
        }
    }

    #[test]
    fn runs_end_with_the_row_that_reaches_the_limit() {
        let rows: Vec<proto::Row> = (0..10)
            .map(|i| row(vec![Kind::StringValue("y".repeat(10 * i))]))
            .collect();
        let encoded = EncodedRows::from_rows(&rows);
        let runs = encoded.clone().into_runs(100);
        assert!(runs.len() > 1);
        assert_eq!(runs.iter().map(|(n, _)| n).sum::<u64>(), 10);
        let mut decoded = Vec::new();
        for (count, bytes) in &runs[..runs.len() - 1] {
            assert!(bytes.len() >= 100);
            let batch = match proto::RowBatch::decode(bytes.as_slice()) {
                Ok(b) => b.rows,
                Err(e) => panic!("{e}"),
            };
            assert_eq!(batch.len() as u64, *count);
            decoded.extend(batch);
        }
        if let Some((_, bytes)) = runs.last() {
            decoded.extend(
                proto::RowBatch::decode(bytes.as_slice())
                    .map_or_else(|e| panic!("{e}"), |b| b.rows),
            );
        }
        assert_eq!(decoded, rows);
        assert_eq!(encoded.into_runs(usize::MAX).len(), 1);
    }

    #[test]
    fn truncation_keeps_whole_rows() {
        let rows: Vec<proto::Row> = (0..5).map(|i| row(vec![Kind::IntValue(i)])).collect();
        let mut encoded = EncodedRows::from_rows(&rows);
        encoded.truncate(7);
        assert_eq!(encoded.len(), 5);
        encoded.truncate(2);
        assert_eq!(encoded, EncodedRows::from_rows(&rows[..2]));
        encoded.truncate(0);
        assert!(encoded.is_empty() && encoded.as_bytes().is_empty());
    }
}
