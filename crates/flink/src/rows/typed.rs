//! Values read by their JSON type as the page is parsed, for the columns whose JSON the parser
//! reads exactly as the per-column plan would (strings, booleans, dates and times): the value
//! is encoded from what the parser read, without taking its raw text first and reading it a
//! second time. Anything else (a number where a string is due, a string where a boolean is) is
//! refused, and the page goes to the per-row path, whose outcome is the reference. Numbers stay
//! with their raw text: the parser reads `-0` and `-0.0` alike, which an integer column tells
//! apart.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

use super::encoded::value_field::{BOOL, DATE, INSTANT, STRING, TIME, TIMESTAMP};
use super::encoded::{EncodedRows, ValueWriter};
use super::temporal::{parse_date, parse_time, parse_timestamp};
use super::value::ValuePlan;

/// Whether values of `plan` are read by their JSON type.
pub(super) fn reads_typed(plan: ValuePlan) -> bool {
    matches!(
        plan,
        ValuePlan::String
            | ValuePlan::Boolean
            | ValuePlan::Timestamp
            | ValuePlan::Instant
            | ValuePlan::Date
            | ValuePlan::Time
    )
}

/// Reads one value of a column whose plan [`reads_typed`], and encodes it into `out`.
pub(super) struct TypedValue<'o> {
    pub(super) plan: ValuePlan,
    pub(super) out: &'o mut EncodedRows,
}

impl<'de> DeserializeSeed<'de> for TypedValue<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// The failure that sends a page to the per-row path; its text is never shown.
fn refused<E: de::Error>() -> E {
    E::custom("the value is left to the per-row path")
}

impl TypedValue<'_> {
    fn writer(&mut self) -> ValueWriter<'_> {
        self.out.value_field()
    }

    /// A string, unescaped.
    fn string<E: de::Error>(mut self, s: &str) -> Result<(), E> {
        match self.plan {
            ValuePlan::String => self.writer().bytes(STRING, s.as_bytes()),
            ValuePlan::Timestamp | ValuePlan::Instant => {
                let zoned = self.plan == ValuePlan::Instant;
                let (seconds, nanos) = parse_timestamp(s, zoned).ok_or_else(refused::<E>)?;
                let tag = if zoned { INSTANT } else { TIMESTAMP };
                self.writer().timestamp(tag, seconds, nanos);
            }
            ValuePlan::Date => {
                let days = parse_date(s).ok_or_else(refused::<E>)?;
                self.writer().varint(DATE, i64::from(days) as u64);
            }
            ValuePlan::Time => {
                let nanos = parse_time(s).ok_or_else(refused::<E>)?;
                self.writer().varint(TIME, nanos as u64);
            }
            _ => return Err(refused()),
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for TypedValue<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.writer().null();
        Ok(())
    }

    fn visit_bool<E: de::Error>(mut self, value: bool) -> Result<(), E> {
        if self.plan != ValuePlan::Boolean {
            return Err(refused());
        }
        self.writer().varint(BOOL, u64::from(value));
        Ok(())
    }

    // A string with escapes comes here unescaped, as the plan reads it.
    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.string(value)
    }
}
