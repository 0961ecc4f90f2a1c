//! Helpers shared by the unit tests of the row conversion.

use flinkbroker_proto::{self as proto, value::Kind};
use serde_json::value::RawValue;

use super::RowError;
use super::value::{convert_json, value};
use crate::sql_gateway::LogicalTypeJson;

/// A recorded page with one row holding a value of each type the broker converts.
pub(super) const ALL_TYPES_PAGE: &str =
    include_str!("../../../../tests/fixtures/gateway-bodies/fetch-all-types-row.json");

pub(super) fn ty(json: &str) -> LogicalTypeJson {
    match serde_json::from_str(json) {
        Ok(t) => t,
        Err(e) => panic!("bad type {json}: {e}"),
    }
}

fn raw(json: &str) -> Box<RawValue> {
    match RawValue::from_string(json.to_owned()) {
        Ok(r) => r,
        Err(e) => panic!("bad json {json}: {e}"),
    }
}

/// Converts one raw JSON value of type `t`. Errors name the value `value` (with the path
/// inside it, e.g. `value[1].x`); `convert_row` names the column instead.
fn convert_value(raw: &RawValue, t: &LogicalTypeJson) -> Result<proto::Value, RowError> {
    convert_json(raw.get(), t).map_err(|e| e.into_row_error("value"))
}

pub(super) fn convert(json: &str, t: &str) -> Result<proto::Value, RowError> {
    convert_value(&raw(json), &ty(t))
}

pub(super) fn kind(json: &str, t: &str) -> Kind {
    match convert(json, t) {
        Ok(proto::Value { kind: Some(k) }) => k,
        other => panic!("{json} as {t}: {other:?}"),
    }
}

pub(super) fn ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos }
}

pub(super) fn int(v: i64) -> proto::Value {
    value(Kind::IntValue(v))
}

pub(super) fn string(v: &str) -> proto::Value {
    value(Kind::StringValue(v.to_owned()))
}
