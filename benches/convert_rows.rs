//! Rows/s of turning a SQL Gateway result page (the JSON body of `GET …/result/<token>`) into
//! rows in the result log's encoding, on one thread: the per-row path (the page parsed into
//! `FetchResultsBody`, then `rows::convert_row` for each row, then the rows encoded) next to
//! `rows::convert_page`, which writes the encoding as it reads, their ratio, and whether the
//! one-pass path reaches 1 M rows/s. Both paths are checked to give the same bytes before
//! they are timed; rates are rows per second of this thread's CPU time.
//!
//! The page has 1000 rows (the stand-in's page size) of the columns `id BIGINT, name STRING,
//! price DECIMAL(10, 2), ts TIMESTAMP(3), flag BOOLEAN`, written as the gateway writes them:
//! decimals stripped of trailing zeros, timestamps in ISO form stripped of trailing fraction
//! zeros, a few NULLs and a few strings with escapes.
//!
//! Run with `cargo bench --bench convert_rows` (`BENCH_SECONDS` sets the time per path).

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use flinkbroker_flink::rows::{self, EncodedRows};
use flinkbroker_flink::sql_gateway::wire::FetchResultsBody;
use flinkbroker_proto as proto;

const ROWS_PER_PAGE: u64 = 1000;
const TARGET_ROWS_PER_SECOND: f64 = 1_000_000.0;

const COLUMNS: &str = r#"[{"name":"id","logicalType":{"type":"BIGINT","nullable":true},"comment":null},{"name":"name","logicalType":{"type":"VARCHAR","nullable":true,"length":2147483647},"comment":null},{"name":"price","logicalType":{"type":"DECIMAL","nullable":true,"precision":10,"scale":2},"comment":null},{"name":"ts","logicalType":{"type":"TIMESTAMP_WITHOUT_TIME_ZONE","nullable":true,"precision":3},"comment":null},{"name":"flag","logicalType":{"type":"BOOLEAN","nullable":true},"comment":null}]"#;

/// A deterministic pseudo-random sequence (splitmix64).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True once in `n` draws.
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

/// A DECIMAL as Flink's JSON row format writes it: trailing zeros stripped, plain notation.
fn json_decimal(unscaled: i64, scale: u32) -> String {
    if unscaled == 0 {
        return "0".to_owned();
    }
    let (mut unscaled, mut scale) = (unscaled, scale);
    while scale > 0 && unscaled % 10 == 0 {
        unscaled /= 10;
        scale -= 1;
    }
    let sign = if unscaled < 0 { "-" } else { "" };
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    if scale == 0 {
        format!("{sign}{digits}")
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
    }
}

/// `2026-11-23T21:36:51.681`, fraction stripped of trailing zeros (Java's ISO_LOCAL_DATE_TIME).
fn iso_timestamp(out: &mut String, millis_of_day: u64) {
    let seconds = millis_of_day / 1000;
    let _ = write!(
        out,
        "2026-11-23T{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    let mut fraction = millis_of_day % 1000;
    if fraction > 0 {
        let mut digits = 3;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        let _ = write!(out, ".{fraction:0digits$}");
    }
}

/// The body of one result page as the SQL Gateway sends it.
fn page_body(rows: u64) -> String {
    let mut draw = Draw(42);
    let mut data = String::with_capacity(rows as usize * 100);
    for id in 1..=rows {
        if id > 1 {
            data.push(',');
        }
        data.push_str(r#"{"kind":"INSERT","fields":["#);
        let _ = write!(data, "{id},");
        if draw.one_in(40) {
            data.push_str("null,");
        } else {
            let bits = draw.next();
            let hex: String = (0..12)
                .map(|i| char::from(b"0123456789abcdef"[(bits >> (i * 4)) as usize & 0xf]))
                .collect();
            if draw.one_in(50) {
                let _ = write!(data, r#""{}\"\u00e9\n{}","#, &hex[..6], &hex[6..]);
            } else {
                let _ = write!(data, r#""{hex}","#);
            }
        }
        if draw.one_in(40) {
            data.push_str("null,");
        } else {
            let unscaled = (draw.next() % 19_999_999_999) as i64 - 9_999_999_999;
            let _ = write!(data, "{},", json_decimal(unscaled, 2));
        }
        if draw.one_in(40) {
            data.push_str("null,");
        } else {
            data.push('"');
            iso_timestamp(&mut data, 77_811_000 + draw.next() % 1000);
            data.push_str("\",");
        }
        match draw.next() % 41 {
            0 => data.push_str("null"),
            n if n % 2 == 0 => data.push_str("true"),
            _ => data.push_str("false"),
        }
        data.push_str("]}");
    }
    format!(
        r#"{{"resultType":"PAYLOAD","isQueryResult":true,"jobID":"4640ecdc7e20e94c52dec6542497020d","resultKind":"SUCCESS_WITH_CONTENT","results":{{"columns":{COLUMNS},"rowFormat":"JSON","data":[{data}]}},"nextResultUri":"/v2/sessions/33e72d1b-2fe3-4f0c-9a0d-46506f63e313/operations/5a5b5c2d-e7f0-4482-a631-75ef66f0e883/result/2?rowFormat=JSON"}}"#
    )
}

/// The per-row path: the page parsed into its serde model, then `convert_row` for each row,
/// then the rows encoded as the result log holds them.
fn per_row(body: &[u8]) -> EncodedRows {
    let page: FetchResultsBody = serde_json::from_slice(body).expect("page parses");
    let results = page.results.expect("page has results");
    let rows: Vec<proto::Row> = results
        .data
        .iter()
        .map(|row| rows::convert_row(row, &results.columns).expect("row converts"))
        .collect();
    EncodedRows::from_rows(&rows)
}

/// The one-pass path, which writes the log's encoding as it reads.
fn one_pass(body: &[u8]) -> EncodedRows {
    rows::convert_page(body).expect("page converts").rows
}

/// The CPU time this thread has used: the machine may be shared, and the target is per core.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for clock_gettime to write.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Rows per CPU second and per wall second of `convert` over `body`, run for about `time`.
fn measure(body: &[u8], time: Duration, convert: fn(&[u8]) -> EncodedRows) -> (f64, f64) {
    let wall = Instant::now();
    let cpu = thread_cpu_time();
    let mut rows = 0u64;
    while wall.elapsed() < time {
        rows += black_box(convert(black_box(body))).len() as u64;
    }
    let cpu = (thread_cpu_time() - cpu).as_secs_f64();
    let wall = wall.elapsed().as_secs_f64();
    (rows as f64 / cpu, rows as f64 / wall)
}

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let body = page_body(ROWS_PER_PAGE);
    let body = body.as_bytes();

    let old = per_row(body);
    assert_eq!(old.len() as u64, ROWS_PER_PAGE);
    assert_eq!(one_pass(body), old, "both paths give the same bytes");

    println!(
        "page: {ROWS_PER_PAGE} rows, {} bytes; columns BIGINT, STRING, DECIMAL(10,2), TIMESTAMP(3), BOOLEAN",
        body.len()
    );
    // Alternate the paths in a few rounds and keep each one's best round, so that a burst of
    // other work on the machine does not decide the comparison.
    const ROUNDS: u32 = 4;
    let round = Duration::from_secs_f64(seconds / f64::from(ROUNDS));
    for _ in 0..50 {
        black_box(per_row(black_box(body)));
        black_box(one_pass(black_box(body)));
    }
    let (mut old_cpu, mut old_wall, mut new_cpu, mut new_wall) = (0f64, 0f64, 0f64, 0f64);
    for _ in 0..ROUNDS {
        let (cpu, wall) = measure(body, round, per_row);
        (old_cpu, old_wall) = (old_cpu.max(cpu), old_wall.max(wall));
        let (cpu, wall) = measure(body, round, one_pass);
        (new_cpu, new_wall) = (new_cpu.max(cpu), new_wall.max(wall));
    }
    println!("rows/s on one core (per CPU second; per wall second in brackets):");
    println!(
        "  old: page -> FetchResultsBody -> Row -> encoded:      {old_cpu:>10.0} ({old_wall:.0})"
    );
    println!(
        "  new: rows::convert_page, one pass:                   {new_cpu:>10.0} ({new_wall:.0})"
    );
    println!(
        "  ratio new / old:                                     {:>10.2}",
        new_cpu / old_cpu
    );
    let verdict = if new_cpu >= TARGET_ROWS_PER_SECOND {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "target {:.0} M rows/s: {verdict}",
        TARGET_ROWS_PER_SECOND / 1e6
    );
}
