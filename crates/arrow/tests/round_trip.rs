//! Every Flink type the type fixtures of the gateway do not hold, written as Arrow IPC and read
//! back value by value (the fixtures' types go through the broker in `tests/it/arrow_results.rs`).

use flinkbroker_arrow::{Encoder, ROW_KIND_COLUMN, read_stream, rows};
use flinkbroker_proto as proto;
use proto::value::Kind;

fn t(root: &str, nullable: bool) -> proto::LogicalType {
    proto::LogicalType {
        type_root: root.into(),
        nullable,
        sql: root.into(),
        ..proto::LogicalType::default()
    }
}

fn with_precision(root: &str, precision: i32) -> proto::LogicalType {
    proto::LogicalType {
        precision: Some(precision),
        ..t(root, true)
    }
}

fn v(kind: Kind) -> proto::Value {
    proto::Value { kind: Some(kind) }
}

fn null() -> proto::Value {
    v(Kind::NullValue(proto::NullValue::NullValue as i32))
}

fn ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos }
}

fn column(name: &str, t: proto::LogicalType) -> proto::Column {
    proto::Column {
        name: name.into(),
        r#type: Some(t),
    }
}

#[test]
fn every_type_round_trips_through_arrow_ipc() {
    let row_type = proto::LogicalType {
        fields: vec![
            proto::RowField {
                name: "id".into(),
                r#type: Some(t("BIGINT", false)),
            },
            proto::RowField {
                name: "tags".into(),
                r#type: Some(proto::LogicalType {
                    element_type: Some(Box::new(t("VARCHAR", true))),
                    ..t("ARRAY", true)
                }),
            },
        ],
        ..t("ROW", true)
    };
    let schema = proto::ResultSchema {
        columns: vec![
            column("tiny", t("TINYINT", true)),
            column("small", t("SMALLINT", true)),
            column("float", t("FLOAT", true)),
            column("text", t("VARCHAR", true)),
            column("blob", t("VARBINARY", true)),
            column("ts9", with_precision("TIMESTAMP_WITHOUT_TIME_ZONE", 9)),
            column("ltz6", with_precision("TIMESTAMP_WITH_LOCAL_TIME_ZONE", 6)),
            column("ts0", with_precision("TIMESTAMP_WITHOUT_TIME_ZONE", 0)),
            column("months", t("INTERVAL_YEAR_MONTH", true)),
            column("millis", t("INTERVAL_DAY_TIME", true)),
            column(
                "dec",
                proto::LogicalType {
                    precision: Some(38),
                    scale: Some(10),
                    ..t("DECIMAL", true)
                },
            ),
            column(
                "bag",
                proto::LogicalType {
                    element_type: Some(Box::new(t("VARCHAR", true))),
                    ..t("MULTISET", true)
                },
            ),
            column(
                "nested",
                proto::LogicalType {
                    element_type: Some(Box::new(row_type)),
                    ..t("ARRAY", true)
                },
            ),
            column(
                "scores",
                proto::LogicalType {
                    key_type: Some(Box::new(t("VARCHAR", false))),
                    value_type: Some(Box::new(t("DOUBLE", true))),
                    ..t("MAP", true)
                },
            ),
            column("nothing", t("NULL", true)),
        ],
        arrow_schema: Vec::new(),
    };
    let full = proto::Row {
        kind: proto::RowKind::UpdateAfter as i32,
        values: vec![
            v(Kind::IntValue(-128)),
            v(Kind::IntValue(32_767)),
            // A FLOAT reads back as the ROWS encoding has it: 1.1, not 1.100000023841858.
            v(Kind::DoubleValue(1.1)),
            v(Kind::StringValue("héllo ✓".into())),
            v(Kind::BytesValue(vec![0, 255, 7])),
            v(Kind::TimestampValue(ts(1_700_000_000, 123_456_789))),
            v(Kind::InstantValue(ts(-86_400, 999_999_000))),
            // Year 9999, a millisecond unit holds it.
            v(Kind::TimestampValue(ts(253_402_300_799, 0))),
            v(Kind::IntValue(-14)),
            v(Kind::IntValue(90_061_001)),
            v(Kind::DecimalValue(
                "-1234567890123456789012345678.0123456789".into(),
            )),
            v(Kind::MapValue(proto::MapValue {
                entries: vec![proto::MapEntry {
                    key: Some(v(Kind::StringValue("a".into()))),
                    value: Some(v(Kind::IntValue(3))),
                }],
            })),
            v(Kind::ArrayValue(proto::ArrayValue {
                elements: vec![
                    v(Kind::RowValue(proto::RowValue {
                        fields: vec![
                            v(Kind::IntValue(1)),
                            v(Kind::ArrayValue(proto::ArrayValue {
                                elements: vec![v(Kind::StringValue("x".into())), null()],
                            })),
                        ],
                    })),
                    null(),
                ],
            })),
            v(Kind::MapValue(proto::MapValue {
                entries: vec![
                    proto::MapEntry {
                        key: Some(v(Kind::StringValue("k1".into()))),
                        value: Some(v(Kind::DoubleValue(-0.25))),
                    },
                    proto::MapEntry {
                        key: Some(v(Kind::StringValue("k2".into()))),
                        value: Some(null()),
                    },
                ],
            })),
            null(),
        ],
    };
    let empty = proto::Row {
        kind: proto::RowKind::Delete as i32,
        values: (0..schema.columns.len()).map(|_| null()).collect(),
    };
    let written = [full.clone(), empty, full];

    let mut encoder = Encoder::new(&schema, true).expect("every type maps");
    let mut stream = encoder.schema_message().expect("schema");
    stream.extend(encoder.batch_message(&written[..2]).expect("batch"));
    stream.extend(encoder.batch_message(&written[2..]).expect("batch"));
    let (arrow_schema, batches) = read_stream(&stream).expect("an ipc stream");
    assert_eq!(arrow_schema.field(0).name(), ROW_KIND_COLUMN);
    assert_eq!(batches.len(), 2);
    let read: Vec<proto::Row> = batches
        .iter()
        .flat_map(|batch| rows(batch, &schema).expect("rows"))
        .collect();
    for (index, (want, got)) in written.iter().zip(&read).enumerate() {
        assert_eq!(got.kind, want.kind, "row {index}");
        for ((column, want), got) in schema.columns.iter().zip(&want.values).zip(&got.values) {
            assert_eq!(got, want, "row {index}, column {}", column.name);
        }
    }
}

#[test]
fn values_that_do_not_fit_are_refused_naming_their_column() {
    let schema = proto::ResultSchema {
        columns: vec![column("tiny", t("TINYINT", true))],
        arrow_schema: Vec::new(),
    };
    let encoder = Encoder::new(&schema, false).expect("encoder");
    let error = encoder
        .record_batch(&[proto::Row {
            kind: 1,
            values: vec![v(Kind::IntValue(1000))],
        }])
        .expect_err("out of range");
    assert_eq!(
        error.to_string(),
        "column tiny: 1000 is out of range for TINYINT"
    );
    let raw = proto::ResultSchema {
        columns: vec![column(
            "r",
            proto::LogicalType {
                sql: "RAW('java.lang.Object', '...')".into(),
                ..t("RAW", true)
            },
        )],
        arrow_schema: Vec::new(),
    };
    let error = Encoder::new(&raw, false)
        .err()
        .expect("RAW has no arrow type");
    assert_eq!(
        error.to_string(),
        "column r: type RAW('java.lang.Object', '...') has no arrow mapping"
    );
    let nanos = proto::ResultSchema {
        columns: vec![column(
            "ts",
            with_precision("TIMESTAMP_WITHOUT_TIME_ZONE", 9),
        )],
        arrow_schema: Vec::new(),
    };
    let error = Encoder::new(&nanos, false)
        .expect("encoder")
        .record_batch(&[proto::Row {
            kind: 1,
            values: vec![v(Kind::TimestampValue(ts(253_402_300_799, 0)))],
        }])
        .expect_err("year 9999 in nanoseconds");
    assert!(
        error
            .to_string()
            .contains("does not fit a Nanosecond timestamp"),
        "{error}"
    );
}

#[test]
fn the_decoder_reads_messages_as_they_arrive() {
    let schema = proto::ResultSchema {
        columns: vec![column("n", t("BIGINT", false))],
        arrow_schema: Vec::new(),
    };
    let mut encoder = Encoder::new(&schema, false).expect("encoder");
    let mut decoder = flinkbroker_arrow::Decoder::default();
    assert!(
        decoder
            .push(&encoder.schema_message().expect("schema"))
            .expect("schema")
            .is_empty()
    );
    assert_eq!(decoder.schema().expect("schema").field(0).name(), "n");
    for n in 0..3 {
        let row = proto::Row {
            kind: 1,
            values: vec![v(Kind::IntValue(n))],
        };
        let batches = decoder
            .push(
                &encoder
                    .batch_message(std::slice::from_ref(&row))
                    .expect("batch"),
            )
            .expect("decoded");
        assert_eq!(batches.len(), 1, "each batch as it arrives");
        assert_eq!(rows(&batches[0], &schema).expect("rows"), vec![row]);
    }
}
