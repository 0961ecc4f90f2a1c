//! DECIMAL values as exact plain text: the gateway writes a normalised number that may lose
//! trailing zeros or use an exponent (`1.5` for 1.50, `1E+2` for 100); the broker writes it
//! back with the column's scale, digit for digit, never through a float.

/// The largest decimal exponent accepted; Flink's DECIMAL has at most 38 digits.
const MAX_DECIMAL_EXPONENT: i64 = 400;

/// Writes a decimal number as exact plain text with `scale` fraction digits: `1.5` with
/// scale 2 is `1.50`, `1E+2` is `100.00`, `-0` is `0.00`. Fraction digits beyond the scale
/// are dropped only when they are zeros; the text is never rounded.
pub(super) fn decimal_text(number: &str, scale: Option<usize>) -> Option<String> {
    let mut out = String::new();
    write_decimal(number, scale, &mut out)?;
    Some(out)
}

/// [`decimal_text`] appended to `out` (which is left as it was when the number is not a
/// decimal), so that a caller converting many values can reuse one buffer.
pub(super) fn write_decimal(number: &str, scale: Option<usize>, out: &mut String) -> Option<()> {
    let (negative, unsigned) = match number.as_bytes().first()? {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    if exponent.abs() > MAX_DECIMAL_EXPONENT {
        return None;
    }
    let (int_digits, frac_digits) = match mantissa.find('.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, ""),
    };
    if int_digits.is_empty() && frac_digits.is_empty()
        || !int_digits.bytes().all(|b| b.is_ascii_digit())
        || !frac_digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }

    // Fast path: plain notation without redundant leading zeros and at most `scale` fraction
    // digits (the usual shape, since Flink strips trailing zeros): copy and pad.
    if exponent == 0
        && scale.is_none_or(|s| frac_digits.len() <= s)
        && !int_digits.is_empty()
        && (int_digits.len() == 1 || !int_digits.starts_with('0'))
        && (!negative
            || int_digits
                .bytes()
                .chain(frac_digits.bytes())
                .any(|b| b != b'0'))
    {
        let fraction_len = scale.unwrap_or(frac_digits.len());
        out.reserve(int_digits.len() + fraction_len + 2);
        if negative {
            out.push('-');
        }
        out.push_str(int_digits);
        if fraction_len > 0 {
            out.push('.');
            out.push_str(frac_digits);
            out.extend(std::iter::repeat_n('0', fraction_len - frac_digits.len()));
        }
        return Some(());
    }

    // All digits, and where the decimal point falls among them.
    let digits: Vec<u8> = int_digits.bytes().chain(frac_digits.bytes()).collect();
    let point = int_digits.len() as i64 + exponent;
    let digit_at = |i: i64| -> u8 {
        if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            b'0'
        }
    };
    let mut integer_part: String = (0..point.max(0)).map(|i| digit_at(i) as char).collect();
    let trimmed = integer_part.trim_start_matches('0').len();
    integer_part.drain(..integer_part.len() - trimmed);
    if integer_part.is_empty() {
        integer_part.push('0');
    }
    let frac_len = (digits.len() as i64 - point).max(0);
    let mut fraction: String = (point..point + frac_len)
        .map(|i| digit_at(i) as char)
        .collect();
    if let Some(scale) = scale {
        if fraction.len() > scale && fraction[scale..].bytes().all(|b| b == b'0') {
            fraction.truncate(scale);
        }
        while fraction.len() < scale {
            fraction.push('0');
        }
    }
    let is_zero = integer_part == "0" && fraction.bytes().all(|b| b == b'0');
    out.reserve(integer_part.len() + fraction.len() + 2);
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(&integer_part);
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(&fraction);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use flinkbroker_proto::value::Kind;

    use super::super::test_support::kind;

    fn decimal(json: &str, precision: i32, scale: i32) -> String {
        let t = format!(
            r#"{{"type":"DECIMAL","nullable":false,"precision":{precision},"scale":{scale}}}"#
        );
        match kind(json, &t) {
            Kind::DecimalValue(s) => s,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn decimals_are_exact_and_padded_to_the_scale() {
        assert_eq!(decimal("1.5", 10, 2), "1.50");
        assert_eq!(decimal("1.50", 10, 2), "1.50");
        assert_eq!(decimal("0", 10, 2), "0.00");
        assert_eq!(decimal("-0", 10, 2), "0.00");
        assert_eq!(decimal("-1.5", 10, 2), "-1.50");
        assert_eq!(decimal("1E+2", 10, 2), "100.00");
        assert_eq!(decimal("1.5E+3", 10, 2), "1500.00");
        assert_eq!(decimal("-1.23E+5", 10, 0), "-123000");
        assert_eq!(decimal("1E-8", 10, 8), "0.00000001");
        assert_eq!(decimal("-2.5E-7", 12, 9), "-0.000000250");
        assert_eq!(decimal("12", 5, 0), "12");
        assert_eq!(decimal("0.1", 5, 3), "0.100");
        assert_eq!(decimal("\"3.14\"", 5, 2), "3.14");
        // Trailing zeros beyond the scale are dropped; other digits are never rounded away.
        assert_eq!(decimal("1.2500", 10, 2), "1.25");
        assert_eq!(decimal("1.255", 10, 2), "1.255");
    }

    #[test]
    fn decimals_with_38_digits_stay_exact() {
        assert_eq!(
            decimal("12345678901234567890.123456789012345678", 38, 18),
            "12345678901234567890.123456789012345678"
        );
        assert_eq!(
            decimal("-99999999999999999999.999999999999999999", 38, 18),
            "-99999999999999999999.999999999999999999"
        );
        assert_eq!(
            decimal("1.234567890123456789E+19", 38, 18),
            "12345678901234567890.000000000000000000"
        );
        assert_eq!(decimal("1E-18", 38, 18), "0.000000000000000001");
        assert_eq!(
            decimal("99999999999999999999999999999999999999", 38, 0),
            "99999999999999999999999999999999999999"
        );
    }
}
