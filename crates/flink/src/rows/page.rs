//! Reads a result page and converts its rows in one pass: each value is converted from its
//! raw text in the body as it is read, by a plan decided once per column, and written in the
//! result log's encoding at once, with no intermediate `RowData` nor `Row`. A page this pass
//! does not take is left to the per-row path.

use std::fmt;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

use super::encoded::EncodedRows;
use super::typed::{TypedValue, reads_typed};
use super::value::{ValuePlan, encode_planned};
use super::{ConvertedPage, row_kind_to_proto};
use crate::sql_gateway::wire::{FetchResultsBody, ResultsBody};
use crate::sql_gateway::{ColumnInfo, LogicalTypeJson, RowKindJson};

/// Reads and converts a page in one pass, or returns None for
/// [`convert_page`](super::convert_page) to take the per-row path: whenever a value does not
/// convert, the rows come before their columns, or the JSON has a shape other than the
/// gateway's (the per-row path then decides).
pub(super) fn convert_page_in_one_pass(body: &[u8]) -> Option<ConvertedPage> {
    // Checking the whole body once lets the parser take every string and raw value as text
    // without checking each again; a body that is not UTF-8 is left to the per-row path.
    let body = std::str::from_utf8(body).ok()?;
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let page = deserializer
        .deserialize_map(PageVisitor {
            body_len: body.len(),
        })
        .ok()?;
    deserializer.end().ok()?;
    Some(page)
}

/// The keys of a page, of its `results` and of its rows; each object reads its own and
/// skips the others, as serde's derived readers of `FetchResultsBody`, `ResultsBody` and
/// `RowData` do.
enum PageKey {
    ResultType,
    IsQueryResult,
    JobId,
    ResultKind,
    Results,
    NextResultUri,
    Columns,
    RowFormat,
    Data,
    Kind,
    Fields,
    Other,
}

impl<'de> Deserialize<'de> for PageKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PageKeyVisitor;

        impl Visitor<'_> for PageKeyVisitor {
            type Value = PageKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<PageKey, E> {
                Ok(match name {
                    "resultType" => PageKey::ResultType,
                    "isQueryResult" => PageKey::IsQueryResult,
                    "jobID" => PageKey::JobId,
                    "resultKind" => PageKey::ResultKind,
                    "results" => PageKey::Results,
                    "nextResultUri" => PageKey::NextResultUri,
                    "columns" => PageKey::Columns,
                    "rowFormat" => PageKey::RowFormat,
                    "data" => PageKey::Data,
                    "kind" => PageKey::Kind,
                    "fields" => PageKey::Fields,
                    _ => PageKey::Other,
                })
            }
        }

        deserializer.deserialize_identifier(PageKeyVisitor)
    }
}

/// Fails on a second occurrence of a field, as serde's derived readers do.
fn first_occurrence<T, E: de::Error>(slot: &Option<T>, name: &'static str) -> Result<(), E> {
    match slot {
        Some(_) => Err(E::duplicate_field(name)),
        None => Ok(()),
    }
}

/// The failure that sends a page to the per-row path; its text is never shown.
fn not_in_one_pass<E: de::Error>() -> E {
    E::custom("the page is read row by row")
}

/// Reads a page: the fields of `FetchResultsBody`, with `results` read by [`ResultsSeed`].
struct PageVisitor {
    body_len: usize,
}

impl<'de> Visitor<'de> for PageVisitor {
    type Value = ConvertedPage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a result page")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConvertedPage, A::Error> {
        let mut result_type = None;
        let mut is_query_result = None;
        let mut job_id = None;
        let mut result_kind = None;
        let mut results = None;
        let mut next_result_uri = None;
        while let Some(key) = map.next_key::<PageKey>()? {
            match key {
                PageKey::ResultType => {
                    first_occurrence(&result_type, "resultType")?;
                    result_type = Some(map.next_value()?);
                }
                PageKey::IsQueryResult => {
                    first_occurrence(&is_query_result, "isQueryResult")?;
                    is_query_result = Some(map.next_value()?);
                }
                PageKey::JobId => {
                    first_occurrence(&job_id, "jobID")?;
                    job_id = Some(map.next_value()?);
                }
                PageKey::ResultKind => {
                    first_occurrence(&result_kind, "resultKind")?;
                    result_kind = Some(map.next_value()?);
                }
                PageKey::Results => {
                    first_occurrence(&results, "results")?;
                    results = Some(map.next_value_seed(ResultsSeed {
                        body_len: self.body_len,
                    })?);
                }
                PageKey::NextResultUri => {
                    first_occurrence(&next_result_uri, "nextResultUri")?;
                    next_result_uri = Some(map.next_value()?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let result_type = result_type.ok_or_else(|| de::Error::missing_field("resultType"))?;
        let (results, rows) = match results.flatten() {
            Some((results, rows)) => (Some(results), rows),
            None => (None, EncodedRows::default()),
        };
        Ok(ConvertedPage {
            body: FetchResultsBody {
                result_type,
                is_query_result: is_query_result.flatten(),
                job_id: job_id.flatten(),
                result_kind: result_kind.flatten(),
                results,
                next_result_uri: next_result_uri.flatten(),
            },
            rows,
        })
    }
}

/// Reads the optional `results` of a page: its columns, then its rows converted by them.
struct ResultsSeed {
    body_len: usize,
}

impl<'de> DeserializeSeed<'de> for ResultsSeed {
    type Value = Option<(ResultsBody, EncodedRows)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed {
    type Value = Option<(ResultsBody, EncodedRows)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the results of a page")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut columns: Option<Vec<ColumnInfo>> = None;
        let mut row_format = None;
        let mut rows = None;
        while let Some(key) = map.next_key::<PageKey>()? {
            match key {
                PageKey::Columns => {
                    first_occurrence(&columns, "columns")?;
                    columns = Some(map.next_value()?);
                }
                PageKey::RowFormat => {
                    first_occurrence(&row_format, "rowFormat")?;
                    row_format = Some(map.next_value()?);
                }
                PageKey::Data => {
                    first_occurrence(&rows, "data")?;
                    // The gateway writes the columns first; rows that come before them are
                    // left to the per-row path.
                    let columns = columns.as_deref().ok_or_else(not_in_one_pass)?;
                    let plans: Vec<ColumnPlan<'_>> = columns
                        .iter()
                        .map(|c| ColumnPlan {
                            plan: ValuePlan::of(&c.logical_type),
                            logical_type: &c.logical_type,
                        })
                        .collect();
                    rows = Some(map.next_value_seed(RowsSeed {
                        columns: &plans,
                        bytes: self.body_len,
                        rows: self.body_len / min_row_len(plans.len()),
                    })?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let results = ResultsBody {
            columns: columns.unwrap_or_default(),
            row_format: row_format.flatten(),
            data: Vec::new(),
        };
        Ok(Some((results, rows.unwrap_or_default())))
    }
}

/// A column's type and how its values are read.
struct ColumnPlan<'a> {
    plan: ValuePlan,
    logical_type: &'a LogicalTypeJson,
}

/// Reads the `data` of a page into encoded rows.
struct RowsSeed<'a> {
    columns: &'a [ColumnPlan<'a>],
    /// About the encoded rows' length: the page's (the encoding is usually shorter than the
    /// JSON), so that the page's largest buffer is seldom grown and copied.
    bytes: usize,
    /// At least the number of rows, from the length of the page.
    rows: usize,
}

/// The length of the shortest row with `columns` fields and the comma before it
/// (`,{"kind":"INSERT","fields":[1,1]}` with two).
fn min_row_len(columns: usize) -> usize {
    r#",{"kind":"INSERT","fields":[]}"#.len() + (2 * columns).saturating_sub(1)
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = EncodedRows;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = EncodedRows;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = EncodedRows::with_capacity(self.bytes, self.rows);
        let mut scratch = String::new();
        while seq
            .next_element_seed(RowSeed {
                columns: self.columns,
                out: &mut rows,
                scratch: &mut scratch,
            })?
            .is_some()
        {}
        Ok(rows)
    }
}

/// Reads one row, `{"kind": ..., "fields": [...]}`, encoding its fields as they are read.
struct RowSeed<'a, 'o> {
    columns: &'a [ColumnPlan<'a>],
    out: &'o mut EncodedRows,
    /// A buffer for values' text on their way into `out`.
    scratch: &'o mut String,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind: Option<RowKindJson> = None;
        // Where the row begins in the output, once its fields were read.
        let mut row = None;
        while let Some(key) = map.next_key::<PageKey>()? {
            match key {
                PageKey::Kind => {
                    first_occurrence(&kind, "kind")?;
                    let read: RowKindJson = map.next_value()?;
                    kind = Some(read);
                    // The kind comes first in the encoding (and in the gateway's JSON).
                    if let Some(row) = row {
                        self.out.insert_kind(row, row_kind_to_proto(read));
                    }
                }
                PageKey::Fields => {
                    first_occurrence(&row, "fields")?;
                    row = Some(self.out.begin_row(kind.map(row_kind_to_proto)));
                    map.next_value_seed(FieldsSeed {
                        columns: self.columns,
                        out: &mut *self.out,
                        scratch: &mut *self.scratch,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if kind.is_none() {
            return Err(de::Error::missing_field("kind"));
        }
        let row = row.ok_or_else(|| de::Error::missing_field("fields"))?;
        self.out.end_row(row);
        Ok(())
    }
}

/// Reads the fields of a row, one per column, each from its raw text in the page.
struct FieldsSeed<'a, 'o> {
    columns: &'a [ColumnPlan<'a>],
    out: &'o mut EncodedRows,
    scratch: &'o mut String,
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the fields of a row")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        for column in self.columns {
            if reads_typed(column.plan) {
                seq.next_element_seed(TypedValue {
                    plan: column.plan,
                    out: &mut *self.out,
                })?
                .ok_or_else(not_in_one_pass)?;
                continue;
            }
            let raw: &'de RawValue = seq.next_element()?.ok_or_else(not_in_one_pass)?;
            encode_planned(
                raw.get(),
                column.plan,
                column.logical_type,
                self.out.value_field(),
                self.scratch,
            )
            .map_err(|_| not_in_one_pass::<A::Error>())?;
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(not_in_one_pass());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use flinkbroker_proto as proto;
    use flinkbroker_proto::value::Kind;
    use proptest::prelude::*;

    use super::super::test_support::{ALL_TYPES_PAGE, int, string, ts};
    use super::super::value::{null_value, value};
    use super::super::{PageError, RowError, convert_page, convert_page_row_by_row};
    use crate::sql_gateway::ResultType;

    /// The page without its rows, as JSON: `FetchResultsBody` has no `PartialEq`.
    fn envelope(page: &ConvertedPage) -> serde_json::Value {
        match serde_json::to_value(&page.body) {
            Ok(v) => v,
            Err(e) => panic!("envelope: {e}"),
        }
    }

    /// The page's rows, decoded from their encoding.
    fn decoded(page: &ConvertedPage) -> Vec<proto::Row> {
        match page.rows.decode() {
            Ok(rows) => rows,
            Err(e) => panic!("the encoded rows do not decode: {e}"),
        }
    }

    /// Converts `body` in one pass, insisting that the pass takes it, and checks that the
    /// rows and the envelope are those of the per-row path.
    fn one_pass(body: &str) -> ConvertedPage {
        let Some(page) = convert_page_in_one_pass(body.as_bytes()) else {
            panic!("not converted in one pass: {body}");
        };
        let row_by_row = match convert_page_row_by_row(body.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("row by row: {e}: {body}"),
        };
        // Byte for byte, as prost encodes the rows of the per-row path (NaN included).
        assert_eq!(page.rows, row_by_row.rows, "{body}");
        assert_eq!(envelope(&page), envelope(&row_by_row), "{body}");
        assert!(page.body.results.as_ref().is_none_or(|r| r.data.is_empty()));
        page
    }

    /// Checks that `convert_page` has the outcome of the per-row path, and returns it.
    fn same_outcome(body: &[u8]) -> Result<ConvertedPage, PageError> {
        let page = convert_page(body);
        let row_by_row = convert_page_row_by_row(body);
        match (&page, &row_by_row) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.rows, b.rows);
                assert_eq!(envelope(a), envelope(b));
            }
            (a, b) => assert_eq!(a.as_ref().err(), b.as_ref().err()),
        }
        page
    }

    fn page_json(columns: &str, data: &str) -> String {
        format!(
            r#"{{"resultType":"PAYLOAD","isQueryResult":true,"jobID":"4640ecdc7e20e94c52dec6542497020d","resultKind":"SUCCESS_WITH_CONTENT","results":{{"columns":{columns},"rowFormat":"JSON","data":[{data}]}},"nextResultUri":"/v2/sessions/s/operations/o/result/2?rowFormat=JSON"}}"#
        )
    }

    const MIXED_COLUMNS: &str = r#"[{"name":"id","logicalType":{"type":"BIGINT","nullable":true},"comment":null},{"name":"name","logicalType":{"type":"VARCHAR","nullable":true,"length":2147483647},"comment":null},{"name":"price","logicalType":{"type":"DECIMAL","nullable":true,"precision":10,"scale":2},"comment":null},{"name":"ts","logicalType":{"type":"TIMESTAMP_WITHOUT_TIME_ZONE","nullable":true,"precision":3},"comment":null},{"name":"flag","logicalType":{"type":"BOOLEAN","nullable":true},"comment":null}]"#;

    #[test]
    fn mixed_pages_convert_in_one_pass_as_row_by_row() {
        let data = [
            r#"{"kind":"INSERT","fields":[1,"a35eab",12345678.9,"2026-11-23T21:36:51.681",true]}"#,
            r#"{"kind":"UPDATE_BEFORE","fields":[-9223372036854775808,"say \"hi\"\\ \u00e9\n\t",-0.05,"2026-11-23T21:36:51",false]}"#,
            r#"{"kind":"UPDATE_AFTER","fields":[null,null,null,null,null]}"#,
            r#"{"fields":[9223372036854775807,"",1E+2,"1969-12-31 23:59:59.123456789",true],"kind":"DELETE"}"#,
            r#"{"kind":"INSERT","fields":[-0,"\ud83d\ude00 x",0,"2024-02-29T00:00:00.5",false],"extra":{"ignored":[1]}}"#,
            r#"{"kind":"INSERT","fields":["7","日本語",-1.5E-1,"2024-01-02T03:04",true]}"#,
        ]
        .join(",");
        let page = one_pass(&page_json(MIXED_COLUMNS, &data));
        assert_eq!(page.rows.len(), 6);
        let kinds: Vec<i32> = decoded(&page).iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                proto::RowKind::Insert,
                proto::RowKind::UpdateBefore,
                proto::RowKind::UpdateAfter,
                proto::RowKind::Delete,
                proto::RowKind::Insert,
                proto::RowKind::Insert,
            ]
            .map(|k| k as i32)
        );
        assert_eq!(
            decoded(&page)[0].values,
            vec![
                int(1),
                string("a35eab"),
                value(Kind::DecimalValue("12345678.90".to_owned())),
                value(Kind::TimestampValue(ts(1_795_469_811, 681_000_000))),
                value(Kind::BoolValue(true)),
            ]
        );
        assert_eq!(decoded(&page)[1].values[1], string("say \"hi\"\\ é\n\t"));
        assert_eq!(
            decoded(&page)[1].values[2],
            value(Kind::DecimalValue("-0.05".to_owned()))
        );
        assert!(decoded(&page)[2].values.iter().all(|v| *v == null_value()));
        assert_eq!(
            decoded(&page)[3].values[3],
            value(Kind::TimestampValue(ts(-1, 123_456_789)))
        );
        assert_eq!(decoded(&page)[4].values[0], int(0));
        assert_eq!(decoded(&page)[4].values[1], string("😀 x"));
        assert_eq!(decoded(&page)[5].values[0], int(7));
        let results = page.body.results.unwrap_or_default();
        assert_eq!(results.columns.len(), 5);
        assert_eq!(results.row_format.as_deref(), Some("JSON"));
        assert!(results.data.is_empty());
        assert_eq!(
            page.body.job_id.as_deref(),
            Some("4640ecdc7e20e94c52dec6542497020d")
        );
    }

    #[test]
    fn nested_types_convert_in_one_pass_as_row_by_row() {
        let all_types = one_pass(ALL_TYPES_PAGE);
        assert_eq!(all_types.rows.len(), 1);
        assert_eq!(decoded(&all_types)[0].values.len(), 15);

        let columns = r#"[
            {"name":"a","logicalType":{"type":"ARRAY","nullable":true,"elementType":{"type":"ROW","nullable":true,"fields":[{"name":"x","fieldType":{"type":"INTEGER","nullable":true}},{"name":"y","fieldType":{"type":"ARRAY","nullable":true,"elementType":{"type":"VARCHAR","nullable":true,"length":5}}}]}}},
            {"name":"m","logicalType":{"type":"MAP","nullable":true,"keyType":{"type":"VARCHAR","nullable":true,"length":5},"valueType":{"type":"ARRAY","nullable":true,"elementType":{"type":"DECIMAL","nullable":true,"precision":5,"scale":1}}}},
            {"name":"s","logicalType":{"type":"MULTISET","nullable":true,"elementType":{"type":"VARCHAR","nullable":true,"length":3}}},
            {"name":"b","logicalType":{"type":"VARBINARY","nullable":true,"length":2147483647}},
            {"name":"d","logicalType":{"type":"DATE","nullable":true}},
            {"name":"t","logicalType":{"type":"TIME_WITHOUT_TIME_ZONE","nullable":true,"precision":3}},
            {"name":"z","logicalType":{"type":"TIMESTAMP_WITH_LOCAL_TIME_ZONE","nullable":true,"precision":3}},
            {"name":"f","logicalType":{"type":"DOUBLE","nullable":true}}
        ]"#;
        let data = r#"
            {"kind":"INSERT","fields":[
                [{"x":1,"y":["p","q\"r"]},null,{"y":[null],"x":null}],
                {"k\u00e9y":[1.5,null],"":[]},
                {"x":2,"y\ny":1},
                "yv4=",
                "2024-01-02",
                "03:04:05.5",
                "2026-11-23T21:43:20.53Z",
                "NaN"]},
            {"kind":"DELETE","fields":[[],{},{},"",null,null,"1970-01-01T01:00:00+01:00",-1.0E-10]}
        "#;
        let page = one_pass(&page_json(columns, data));
        assert_eq!(page.rows.len(), 2);
        assert_eq!(
            decoded(&page)[0].values[0],
            value(Kind::ArrayValue(proto::ArrayValue {
                elements: vec![
                    value(Kind::RowValue(proto::RowValue {
                        fields: vec![
                            int(1),
                            value(Kind::ArrayValue(proto::ArrayValue {
                                elements: vec![string("p"), string("q\"r")]
                            }))
                        ]
                    })),
                    null_value(),
                    value(Kind::RowValue(proto::RowValue {
                        fields: vec![
                            null_value(),
                            value(Kind::ArrayValue(proto::ArrayValue {
                                elements: vec![null_value()]
                            }))
                        ]
                    })),
                ]
            }))
        );
        assert_eq!(
            decoded(&page)[0].values[1],
            value(Kind::MapValue(proto::MapValue {
                entries: vec![
                    proto::MapEntry {
                        key: Some(string("kéy")),
                        value: Some(value(Kind::ArrayValue(proto::ArrayValue {
                            elements: vec![
                                value(Kind::DecimalValue("1.5".to_owned())),
                                null_value()
                            ]
                        })))
                    },
                    proto::MapEntry {
                        key: Some(string("")),
                        value: Some(value(Kind::ArrayValue(proto::ArrayValue {
                            elements: vec![]
                        })))
                    },
                ]
            }))
        );
        assert_eq!(
            decoded(&page)[1].values[6],
            value(Kind::InstantValue(ts(0, 0)))
        );
    }

    #[test]
    fn recorded_pages_convert_in_one_pass() {
        let pages = [
            include_str!("../../../../tests/fixtures/gateway-bodies/fetch-all-types-columns.json"),
            include_str!("../../../../tests/fixtures/gateway-bodies/fetch-all-types-eos.json"),
            include_str!("../../../../tests/fixtures/gateway-bodies/fetch-all-types-row.json"),
            include_str!("../../../../tests/fixtures/gateway-bodies/fetch-datagen.json"),
            include_str!("../../../../tests/fixtures/gateway-bodies/fetch-ddl-ok.json"),
            include_str!("../../../../tests/fixtures/gateway-bodies/fetch-insert-job-id.json"),
            include_str!("../../../../tests/fixtures/gateway-bodies/fetch-not-ready.json"),
            include_str!(
                "../../../../tests/fixtures/gateway-bodies/fetch-streaming-aggregation.json"
            ),
            include_str!("../../../../tests/fixtures/gateway-bodies/fetch-v1-payload.json"),
        ];
        for body in pages {
            let page = one_pass(body);
            let expected: FetchResultsBody = match serde_json::from_str(body) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            let expected_rows = expected.results.map(|r| r.data.len()).unwrap_or(0);
            assert_eq!(page.rows.len(), expected_rows);
        }
        let not_ready = one_pass(include_str!(
            "../../../../tests/fixtures/gateway-bodies/fetch-not-ready.json"
        ));
        assert_eq!(not_ready.body.result_type, ResultType::NotReady);
        assert!(not_ready.body.results.is_none());
    }

    #[test]
    fn pages_the_one_pass_leaves_get_the_per_row_outcome() {
        let row = |fields: &str| format!(r#"{{"kind":"INSERT","fields":[{fields}]}}"#);
        let good = row(r#"1,"a",1.5,"2024-01-02T03:04:05",true"#);

        // A value that does not fit its column: the error of convert_row, naming the column.
        let bad_value = page_json(
            MIXED_COLUMNS,
            &format!("{good},{}", row(r#"2,"b","x",null,true"#)),
        );
        assert!(convert_page_in_one_pass(bad_value.as_bytes()).is_none());
        assert_eq!(
            same_outcome(bad_value.as_bytes()).err(),
            Some(PageError::Row(RowError::InvalidValue {
                column: "price".to_owned(),
                expected: "a DECIMAL number".to_owned(),
                got: "\"x\"".to_owned(),
            }))
        );
        let bad_timestamp = page_json(MIXED_COLUMNS, &row(r#"2,"b",1,"2024-02-30T00:00:00",true"#));
        assert!(matches!(
            same_outcome(bad_timestamp.as_bytes()),
            Err(PageError::Row(RowError::InvalidValue { ref column, .. })) if column == "ts"
        ));

        // Too few or too many fields.
        for fields in [r#"1,"a",1.5,null"#, r#"1,"a",1.5,null,true,7"#] {
            let body = page_json(MIXED_COLUMNS, &format!("{good},{}", row(fields)));
            assert!(convert_page_in_one_pass(body.as_bytes()).is_none());
            assert!(matches!(
                same_outcome(body.as_bytes()),
                Err(PageError::Row(RowError::FieldCount { columns: 5, .. }))
            ));
        }

        // Shapes the gateway does not write but serde reads: the per-row path converts them.
        let data_first = format!(
            r#"{{"resultType":"PAYLOAD","results":{{"data":[{good}],"columns":{MIXED_COLUMNS}}}}}"#
        );
        let row_as_array = page_json(MIXED_COLUMNS, r#"["DELETE",[1,"a",1.5,null,true]]"#);
        for body in [data_first, row_as_array] {
            assert!(
                convert_page_in_one_pass(body.as_bytes()).is_none(),
                "{body}"
            );
            match same_outcome(body.as_bytes()) {
                Ok(page) => assert_eq!(page.rows.len(), 1, "{body}"),
                Err(e) => panic!("{body}: {e}"),
            }
        }

        // Bytes that are not UTF-8 where serde never reads them as text.
        let mut latin1 = page_json(MIXED_COLUMNS, &good).into_bytes();
        latin1.splice(1..1, b"\"note\":\"caf\xe9\",".iter().copied());
        assert!(convert_page_in_one_pass(&latin1).is_none());
        assert!(same_outcome(&latin1).is_ok());

        // Bodies that are no page.
        for body in [
            "",
            "[]",
            r#"{"results":null}"#,
            r#"{"resultType":"PAYLOAD"} x"#,
            r#"{"resultType":"PAYLOAD","resultType":"EOS"}"#,
            r#"{"resultType":"PAYLOAD","results":{"columns":[],"data":[{"kind":"INSERT","kind":"DELETE","fields":[]}]}}"#,
            r#"{"resultType":"PAYLOAD","results":{"columns":[],"data":[{"kind":"INSERT","fields":[]},]}}"#,
            r#"{"resultType":"PAYLOAD","results":{"columns":[],"data":null}}"#,
        ] {
            assert!(
                convert_page_in_one_pass(body.as_bytes()).is_none(),
                "{body}"
            );
            assert!(
                matches!(same_outcome(body.as_bytes()), Err(PageError::Body(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn pages_without_rows_or_columns_convert_in_one_pass() {
        one_pass(&page_json(
            MIXED_COLUMNS,
            r#"{"kind":{"INSERT":null},"fields":[1,"a",1.5,null,true]}"#,
        ));
        for body in [
            r#"{"resultType":"EOS"}"#,
            r#"{"resultType":"PAYLOAD","results":null}"#,
            r#"{"resultType":"PAYLOAD","results":{}}"#,
            r#"{"resultType":"PAYLOAD","results":{"columns":[],"data":[{"kind":"INSERT","fields":[]}]}}"#,
            r#" { "resultType" : "PAYLOAD" , "results" : { "columns" : [ ] , "data" : [ ] } } "#,
        ] {
            one_pass(body);
        }
    }

    /// Column types, each with JSON texts of values that fit it.
    const COLUMN_TYPES: &[(&str, &[&str])] = &[
        (
            r#"{"type":"BIGINT","nullable":true}"#,
            &[
                "0",
                "-0",
                "7",
                "-9223372036854775808",
                "9223372036854775807",
                "\"12\"",
            ],
        ),
        (
            r#"{"type":"INTEGER","nullable":false}"#,
            &["1", "-959493302"],
        ),
        (
            r#"{"type":"VARCHAR","nullable":true,"length":2147483647}"#,
            &[
                "\"\"",
                "\"a35eab\"",
                r#""a\"b\\c\u00e9\n""#,
                r#""\ud83d\ude00""#,
                "\"日本\"",
                r#""\/""#,
            ],
        ),
        (
            r#"{"type":"DECIMAL","nullable":true,"precision":10,"scale":2}"#,
            &[
                "0",
                "-0",
                "1.5",
                "-0.05",
                "1E+2",
                "12345678.9",
                "\"3.14\"",
                "1.2500",
            ],
        ),
        (
            r#"{"type":"TIMESTAMP_WITHOUT_TIME_ZONE","nullable":true,"precision":3}"#,
            &[
                "\"2026-11-23T21:36:51.681\"",
                "\"2026-11-23 21:36:51\"",
                "\"1969-12-31T23:59:59.5\"",
                "\"2024-01-02T03:04\"",
            ],
        ),
        (
            r#"{"type":"TIMESTAMP_WITH_LOCAL_TIME_ZONE","nullable":true,"precision":3}"#,
            &[
                "\"2026-11-23T21:43:20.53Z\"",
                "\"1970-01-01T01:00:00+01:00\"",
            ],
        ),
        (r#"{"type":"BOOLEAN","nullable":true}"#, &["true", "false"]),
        (
            r#"{"type":"DOUBLE","nullable":true}"#,
            &["1.5", "-1.0E-10", "\"NaN\"", "\"-Infinity\"", "3"],
        ),
        (
            r#"{"type":"DATE","nullable":true}"#,
            &["\"2024-01-02\"", "\"0001-01-01\""],
        ),
        (
            r#"{"type":"TIME_WITHOUT_TIME_ZONE","nullable":true,"precision":3}"#,
            &["\"03:04:05.5\"", "\"23:59\""],
        ),
        (
            r#"{"type":"VARBINARY","nullable":true,"length":2147483647}"#,
            &["\"yv4=\"", "\"\""],
        ),
        (
            r#"{"type":"ARRAY","nullable":true,"elementType":{"type":"INTEGER","nullable":true}}"#,
            &["[]", "[1,null,3]", "[ 1 , 2 ]"],
        ),
        (
            r#"{"type":"MAP","nullable":true,"keyType":{"type":"VARCHAR","nullable":true,"length":5},"valueType":{"type":"INTEGER","nullable":true}}"#,
            &[
                "{}",
                r#"{"k":1,"\u00e9":null}"#,
                r#"[{"key":"a","value":2},["b",3]]"#,
            ],
        ),
        (
            r#"{"type":"ROW","nullable":true,"fields":[{"name":"x","fieldType":{"type":"INTEGER","nullable":true}},{"name":"y","fieldType":{"type":"VARCHAR","nullable":true,"length":1}}]}"#,
            &[r#"{"x":1,"y":"z"}"#, r#"{"y":"z"}"#, r#"[2,"w"]"#],
        ),
        (r#"{"type":"RAW","nullable":true}"#, &[]),
        (r#"{"type":"NULL","nullable":true}"#, &[]),
    ];

    /// JSON texts (and a few that are not JSON) that a value is sometimes replaced with.
    const ANY_TEXTS: &[&str] = &[
        "null",
        "1.5",
        "9223372036854775808",
        "1e400",
        "\"1\\u0032\"",
        "true",
        "\"x\"",
        "\"2024-02-30T00:00:00\"",
        "[1,\"x\"]",
        "{\"k\":\"v\"}",
        "[1,]",
        "tru",
        "\"\\x\"",
    ];

    const ROW_KINDS: &[&str] = &[
        "INSERT",
        "UPDATE_BEFORE",
        "UPDATE_AFTER",
        "DELETE",
        "UPSERT",
    ];

    /// A page of generated columns and rows. Most values fit their column; now and then one
    /// is replaced by any text, a row gets a field too many, or its kind is unknown.
    fn generated_page() -> impl Strategy<Value = String> {
        let cell = (
            any::<usize>(),
            prop::bool::weighted(0.02),
            0..ANY_TEXTS.len(),
        );
        let row = (
            prop::bool::weighted(0.99),
            0..ROW_KINDS.len(),
            prop::collection::vec(cell, 7),
            prop::bool::weighted(0.01),
        );
        (
            prop::collection::vec(0..COLUMN_TYPES.len(), 0..7),
            prop::collection::vec(row, 0..8),
        )
            .prop_map(|(types, rows)| {
                let columns: Vec<String> = types
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| {
                        format!(
                            r#"{{"name":"c{i}","logicalType":{},"comment":null}}"#,
                            COLUMN_TYPES[t].0
                        )
                    })
                    .collect();
                let data: Vec<String> = rows
                    .iter()
                    .map(|(known_kind, kind, cells, extra_field)| {
                        let width = types.len() + usize::from(*extra_field);
                        let fields: Vec<&str> = cells[..width]
                            .iter()
                            .enumerate()
                            .map(|(i, &(pick, replaced, any))| {
                                let fitting = types.get(i).map_or(&[][..], |&t| COLUMN_TYPES[t].1);
                                if replaced || fitting.is_empty() {
                                    ANY_TEXTS[any]
                                } else {
                                    fitting[pick % fitting.len()]
                                }
                            })
                            .collect();
                        let kind = if *known_kind {
                            ROW_KINDS[*kind % 4]
                        } else {
                            ROW_KINDS[4]
                        };
                        format!(r#"{{"kind":"{kind}","fields":[{}]}}"#, fields.join(","))
                    })
                    .collect();
                page_json(&format!("[{}]", columns.join(",")), &data.join(","))
            })
    }

    proptest::proptest! {
        // A fixed seed: the same pages on every run.
        #![proptest_config(proptest::test_runner::Config {
            cases: 2048,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0f11_4b50_4e05),
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn generated_pages_convert_as_row_by_row(body in generated_page()) {
            let _ = same_outcome(body.as_bytes());
        }

        #[test]
        fn generated_pages_of_fitting_values_convert_in_one_pass(body in generated_page()) {
            if convert_page_row_by_row(body.as_bytes()).is_ok() {
                one_pass(&body);
            }
        }
    }
}
