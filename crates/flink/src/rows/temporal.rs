//! DATE, TIME and TIMESTAMP values from the ISO-8601 text the gateway writes: a date as days
//! since 1970-01-01, a time as nanoseconds since midnight, a timestamp (a wall clock read as
//! UTC) or an instant as seconds and nanoseconds since 1970-01-01T00:00:00Z.

use chrono::NaiveDate;

/// Nanoseconds in a second.
pub(super) const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Seconds in a day (the epoch counts no leap seconds).
const SECONDS_PER_DAY: i64 = 86_400;

/// Days in 400 years of the Gregorian calendar, which repeats with that period.
const DAYS_PER_400_YEARS: i64 = 146_097;

/// Days since 1970-01-01 of a proleptic Gregorian date (year 0 is 1 BC, year -1 is 2 BC), or
/// None when the year has no such month and day.
///
/// chrono reads the calendar, but its dates end at years -262,143 and 262,142, and the text
/// may name any year of up to 9 digits (the range of Java's `LocalDate`, which Flink writes).
/// As the calendar repeats every 400 years, chrono reads the date moved into years 0 to 399 by
/// whole cycles, whose days are added back: the count chrono gives wherever it has the date.
fn epoch_days(year: i64, month: u32, day: u32) -> Option<i64> {
    let cycles = year.div_euclid(400);
    let year_of_cycle = i32::try_from(year.rem_euclid(400)).ok()?;
    let date = NaiveDate::from_ymd_opt(year_of_cycle, month, day)?;
    Some(cycles * DAYS_PER_400_YEARS + i64::from(date.to_epoch_days()))
}

/// Parses exactly `n` ASCII digits.
fn fixed_digits(s: &str, n: usize) -> Option<u32> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `[+-]YYYY-MM-DD` → days since the epoch.
fn parse_date_days(s: &str) -> Option<i64> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mut parts = unsigned.splitn(3, '-');
    let year_text = parts.next()?;
    if year_text.len() < 4 || year_text.len() > 9 || !year_text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let year: i64 = year_text.parse().ok()?;
    let year = if negative { -year } else { year };
    let month = fixed_digits(parts.next()?, 2)?;
    let day = fixed_digits(parts.next()?, 2)?;
    epoch_days(year, month, day)
}

/// `[+-]YYYY-MM-DD` → days since the epoch, when they fit a DATE value.
pub(super) fn parse_date(s: &str) -> Option<i32> {
    i32::try_from(parse_date_days(s)?).ok()
}

/// `HH:MM[:SS[.fffffffff]]` → nanoseconds since midnight.
pub(super) fn parse_time(s: &str) -> Option<i64> {
    let (clock, fraction) = match s.find('.') {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let mut parts = clock.split(':');
    let hour = fixed_digits(parts.next()?, 2)?;
    let minute = fixed_digits(parts.next()?, 2)?;
    let second = match parts.next() {
        Some(text) => fixed_digits(text, 2)?,
        None if fraction.is_none() => 0,
        None => return None,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut nanos = 0i64;
    if let Some(fraction) = fraction {
        if fraction.is_empty()
            || fraction.len() > 9
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        nanos = fraction.parse::<i64>().ok()? * 10i64.pow(9 - fraction.len() as u32);
    }
    Some(
        (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * NANOS_PER_SECOND
            + nanos,
    )
}

/// `YYYY-MM-DD(T| )HH:MM[:SS[.f]]` with, when `zoned`, an optional `Z` or `±HH[:MM]` suffix
/// (none means UTC) → seconds and nanoseconds since the epoch.
pub(super) fn parse_timestamp(s: &str, zoned: bool) -> Option<(i64, i32)> {
    if !zoned && let Some(parsed) = parse_fixed_timestamp(s.as_bytes()) {
        return Some(parsed);
    }
    parse_timestamp_in_any_form(s, zoned)
}

/// [`parse_timestamp`] without the shortcut for the gateway's usual form.
fn parse_timestamp_in_any_form(s: &str, zoned: bool) -> Option<(i64, i32)> {
    let separator = s.find(['T', ' '])?;
    let (date, rest) = (&s[..separator], &s[separator + 1..]);
    let (clock, offset_seconds) = if zoned { split_zone(rest)? } else { (rest, 0) };
    let days = parse_date_days(date)?;
    let nanos_of_day = parse_time(clock)?;
    let seconds = days * SECONDS_PER_DAY + nanos_of_day / NANOS_PER_SECOND - offset_seconds;
    let nanos = i32::try_from(nanos_of_day % NANOS_PER_SECOND).ok()?;
    Some((seconds, nanos))
}

/// Reads the form the gateway writes, `YYYY-MM-DD(T| )HH:MM:SS[.f]` (1 to 9 fraction
/// digits), at its fixed positions. Returns None for any other text, which is then read by
/// [`parse_timestamp_in_any_form`]; both read this form to the same instant.
fn parse_fixed_timestamp(s: &[u8]) -> Option<(i64, i32)> {
    if s.len() < 19
        || s[4] != b'-'
        || s[7] != b'-'
        || (s[10] != b'T' && s[10] != b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let number = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let year = number(&s[0..4])?;
    let month = number(&s[5..7])?;
    let day = number(&s[8..10])?;
    let hour = number(&s[11..13])?;
    let minute = number(&s[14..16])?;
    let second = number(&s[17..19])?;
    let nanos = match &s[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            number(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = epoch_days(i64::from(year), month, day)?;
    let seconds_of_day = i64::from(hour * 3600 + minute * 60 + second);
    let seconds = days * SECONDS_PER_DAY + seconds_of_day;
    Some((seconds, i32::try_from(nanos).ok()?))
}

/// Splits a time-of-day from its zone suffix; returns the zone's offset in seconds.
fn split_zone(s: &str) -> Option<(&str, i64)> {
    if let Some(clock) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((clock, 0));
    }
    let Some(at) = s.rfind(['+', '-']) else {
        return Some((s, 0));
    };
    let (clock, zone) = (&s[..at], &s[at..]);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    let (hours, minutes, seconds) = match digits.len() {
        2 => (fixed_digits(&digits, 2)?, 0, 0),
        4 => (
            fixed_digits(&digits[..2], 2)?,
            fixed_digits(&digits[2..], 2)?,
            0,
        ),
        6 => (
            fixed_digits(&digits[..2], 2)?,
            fixed_digits(&digits[2..4], 2)?,
            fixed_digits(&digits[4..], 2)?,
        ),
        _ => return None,
    };
    if hours > 18 || minutes > 59 || seconds > 59 {
        return None;
    }
    let offset = i64::from(hours) * 3600 + i64::from(minutes) * 60 + i64::from(seconds);
    Some((clock, sign * offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    use flinkbroker_proto::value::Kind;

    use super::super::test_support::{convert, kind, ts};

    #[test]
    fn dates_times_and_timestamps_at_the_edges() {
        let date = r#"{"type":"DATE","nullable":false}"#;
        assert_eq!(kind("\"1970-01-01\"", date), Kind::DateValue(0));
        assert_eq!(kind("\"1969-12-31\"", date), Kind::DateValue(-1));
        assert_eq!(kind("\"2000-02-29\"", date), Kind::DateValue(11_016));
        assert_eq!(kind("\"0001-01-01\"", date), Kind::DateValue(-719_162));
        assert_eq!(kind("\"9999-12-31\"", date), Kind::DateValue(2_932_896));

        let time = r#"{"type":"TIME_WITHOUT_TIME_ZONE","nullable":false,"precision":9}"#;
        assert_eq!(kind("\"00:00:00\"", time), Kind::TimeValue(0));
        assert_eq!(
            kind("\"23:59:59.999999999\"", time),
            Kind::TimeValue(86_400 * NANOS_PER_SECOND - 1)
        );
        assert_eq!(
            kind("\"12:30:00.5\"", time),
            Kind::TimeValue(45_000_500_000_000)
        );

        let timestamp = r#"{"type":"TIMESTAMP_WITHOUT_TIME_ZONE","nullable":true,"precision":3}"#;
        assert_eq!(
            kind("\"2026-11-23T21:36:51.68\"", timestamp),
            Kind::TimestampValue(ts(1_795_469_811, 680_000_000))
        );
        assert_eq!(
            kind("\"1969-12-31T23:59:59.5\"", timestamp),
            Kind::TimestampValue(ts(-1, 500_000_000))
        );
        assert_eq!(
            kind("\"2024-01-02 03:04:05\"", timestamp),
            Kind::TimestampValue(ts(1_704_164_645, 0))
        );

        let ltz = r#"{"type":"TIMESTAMP_WITH_LOCAL_TIME_ZONE","nullable":true,"precision":6}"#;
        assert_eq!(
            kind("\"2026-11-23T21:43:20.53Z\"", ltz),
            Kind::InstantValue(ts(1_795_470_200, 530_000_000))
        );
        assert_eq!(
            kind("\"1970-01-01T01:00:00+01:00\"", ltz),
            Kind::InstantValue(ts(0, 0))
        );
        assert_eq!(
            kind("\"1970-01-01T00:00:00.000000001-00:30\"", ltz),
            Kind::InstantValue(ts(1800, 1))
        );
    }

    #[test]
    fn gateway_timestamps_read_at_fixed_positions_as_in_any_form() {
        let texts = [
            "2026-11-23T21:36:51.681",
            "2026-11-23T21:36:51.68",
            "2026-11-23T21:36:51",
            "2026-11-23 21:36:51.123456789",
            "1969-12-31T23:59:59.999",
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59.999999999",
            "2000-02-29T12:00:00",
            "1900-02-29T12:00:00",
            "2024-04-31T00:00:00",
            "2024-13-01T00:00:00",
            "2024-00-01T00:00:00",
            "2024-01-00T00:00:00",
            "2024-01-02T24:00:00",
            "2024-01-02T23:60:00",
            "2024-01-02T23:59:60",
            "2024-01-02T03:04:05.",
            "2024-01-02T03:04:05.1234567891",
            "2024-01-02T03:04:05.12a",
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04",
            "2024-01-02X03:04:05",
            "+2024-01-02T03:04:05",
            "12024-01-02T03:04:05",
            "2024-1-02T03:04:05.000",
            "2024-01-02T03:04:05.0",
            "2024-01-02T3:04:05.00",
            "２024-01-02T03:04:05",
        ];
        for text in texts {
            match parse_fixed_timestamp(text.as_bytes()) {
                Some(parsed) => {
                    assert_eq!(
                        Some(parsed),
                        parse_timestamp_in_any_form(text, false),
                        "{text}"
                    )
                }
                None => assert_eq!(
                    parse_timestamp(text, false),
                    parse_timestamp_in_any_form(text, false),
                    "{text}"
                ),
            }
        }
        assert_eq!(
            parse_fixed_timestamp(b"2026-11-23T21:36:51.681"),
            Some((1_795_469_811, 681_000_000))
        );
        assert_eq!(parse_fixed_timestamp(b"2024-01-02T03:04"), None);
    }

    #[test]
    fn dates_beyond_the_years_chrono_holds_repeat_every_400_years() {
        let date = r#"{"type":"DATE","nullable":false}"#;
        // The first and the last day a DATE value holds, far beyond chrono's years.
        assert_eq!(kind("\"+5881580-07-11\"", date), Kind::DateValue(i32::MAX));
        assert_eq!(kind("\"-5877641-06-23\"", date), Kind::DateValue(i32::MIN));
        assert!(convert("\"+5881580-07-12\"", date).is_err());
        assert!(convert("\"-5877641-06-22\"", date).is_err());
        assert_eq!(parse_date_days("262143-01-01"), Some(95_026_237));
        assert_eq!(parse_date_days("-262144-12-31"), Some(-96_465_293));
        assert_eq!(parse_date_days("+100000-02-29"), Some(35_804_781));
        assert_eq!(parse_date_days("+100100-02-29"), None);
        // Timestamps reach the 9-digit years of Java's LocalDate.
        assert_eq!(
            parse_timestamp("+999999999-12-31T00:00:00", false),
            Some((31_556_889_832_694_400, 0))
        );
        assert_eq!(
            parse_timestamp("-999999999-01-01T00:00:00", false),
            Some((-31_557_014_135_596_800, 0))
        );
    }

    /// The cases of `tests/fixtures/value-text.json` (the text the CLI and the web console
    /// print for a value) whose text is a date, a time, a timestamp or an instant read back to
    /// their value, years 0 and -1 included.
    #[test]
    fn printed_dates_and_times_read_back_to_their_values() {
        let fixture: serde_json::Value = match serde_json::from_str(include_str!(
            "../../../../tests/fixtures/value-text.json"
        )) {
            Ok(fixture) => fixture,
            Err(e) => panic!("value-text.json: {e}"),
        };
        let Some(cases) = fixture["cases"].as_array() else {
            panic!("value-text.json has no cases");
        };
        let mut read = 0;
        for case in cases {
            let (Some(ty), Some(value), Some(text)) = (
                case["type"].as_str(),
                case["value"].as_str(),
                case["text"].as_str(),
            ) else {
                panic!("case {case}");
            };
            let parsed = match ty {
                "date" if !text.ends_with(" days") => parse_date(text).map(|d| d.to_string()),
                "time" if !text.ends_with(" ns") => parse_time(text).map(|n| n.to_string()),
                "timestamp" => parse_timestamp(text, false).map(|(s, n)| format!("{s}:{n}")),
                "instant" => parse_timestamp(text, true).map(|(s, n)| format!("{s}:{n}")),
                _ => continue,
            };
            assert_eq!(parsed.as_deref(), Some(value), "{ty} {text}");
            read += 1;
        }
        assert!(read >= 10, "only {read} cases read");
    }
}
