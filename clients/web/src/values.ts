// Result values as text, the way the CLI prints them: NULL for SQL NULL, DECIMAL exactly,
// bytes as x'hex', dates and times in ISO 8601, nested values in SQL-like brackets.

import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { RowKind, type Value } from "./gen/flinkbroker/v1/broker_pb";

const NANOS_PER_SECOND = 1_000_000_000n;

function pad(n: number | bigint, width = 2): string {
  return n.toString().padStart(width, "0");
}

/** Fractional seconds with 0, 3, 6 or 9 digits, as many as the value needs. */
function fraction(nanos: number): string {
  if (nanos === 0) return "";
  const digits = pad(nanos, 9);
  if (nanos % 1_000_000 === 0) return `.${digits.slice(0, 3)}`;
  if (nanos % 1_000 === 0) return `.${digits.slice(0, 6)}`;
  return `.${digits}`;
}

const NANOS_PER_DAY = 86_400n * NANOS_PER_SECOND;

/** A year as chrono's `%Y` writes it: four digits at least, a sign before year 0. */
function year(y: number): string {
  return y < 0 ? `-${pad(-y, 4)}` : pad(y, 4);
}

/** The calendar day of a Date (UTC), or undefined when the Date is out of range. */
function day(at: Date): string | undefined {
  if (Number.isNaN(at.getTime())) return undefined;
  return `${year(at.getUTCFullYear())}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}`;
}

/** A date: days since 1970-01-01. */
export function date(days: number): string {
  return day(new Date(days * 86_400_000)) ?? `${days} days`;
}

/** A time of day: nanoseconds since midnight (outside one day, the count itself). */
export function time(nanos: bigint): string {
  if (nanos < 0n || nanos >= NANOS_PER_DAY) return `${nanos} ns`;
  const seconds = Number(nanos / NANOS_PER_SECOND);
  const rest = Number(nanos % NANOS_PER_SECOND);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return `${pad(h)}:${pad(m)}:${pad(seconds % 60)}${fraction(rest)}`;
}

/** A timestamp; `zoned` (an instant) adds `Z`, otherwise it is the wall-clock time. */
export function timestamp(t: Timestamp, zoned: boolean): string {
  const at = new Date(Number(t.seconds) * 1000);
  const calendar = day(at);
  if (calendar === undefined || t.nanos < 0 || t.nanos >= 1e9) return `${t.seconds}s`;
  const clock = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}`;
  return zoned
    ? `${calendar}T${clock}${fraction(t.nanos)}Z`
    : `${calendar} ${clock}${fraction(t.nanos)}`;
}

/**
 * A double as Rust's `f64` Display writes it (the CLI's text): the shortest digits that read
 * back as the same number, never in exponent notation; `inf`, `-inf`, `NaN`, `-0`.
 */
export function double(d: number): string {
  if (Number.isNaN(d)) return "NaN";
  if (!Number.isFinite(d)) return d > 0 ? "inf" : "-inf";
  if (Object.is(d, -0)) return "-0";
  const shortest = String(d);
  const exponent = shortest.indexOf("e");
  if (exponent < 0) return shortest;
  const sign = shortest.startsWith("-") ? "-" : "";
  const mantissa = shortest.slice(sign.length, exponent);
  const power = Number(shortest.slice(exponent + 1));
  const [whole = "", part = ""] = mantissa.split(".");
  const digits = whole + part;
  const point = whole.length + power;
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A value as text; `undefined` (a missing value) reads as NULL. */
export function text(value: Value | undefined): string {
  const kind = value?.kind;
  switch (kind?.case) {
    case undefined:
    case "nullValue":
      return "NULL";
    case "boolValue":
    case "intValue":
      return String(kind.value);
    case "doubleValue":
      return double(kind.value);
    case "decimalValue":
    case "stringValue":
      return kind.value;
    case "bytesValue":
      return `x'${hex(kind.value)}'`;
    case "dateValue":
      return date(kind.value);
    case "timeValue":
      return time(kind.value);
    case "timestampValue":
      return timestamp(kind.value, false);
    case "instantValue":
      return timestamp(kind.value, true);
    case "arrayValue":
      return `[${kind.value.elements.map(text).join(", ")}]`;
    case "mapValue":
      return `{${kind.value.entries.map((e) => `${text(e.key)}=${text(e.value)}`).join(", ")}}`;
    case "rowValue":
      return `(${kind.value.fields.map(text).join(", ")})`;
  }
}

/** Whether a value is SQL NULL. */
export function isNull(value: Value | undefined): boolean {
  return value?.kind.case === undefined || value.kind.case === "nullValue";
}

/** Flink's short name of a row kind: +I, -U, +U, -D. */
export function rowKind(kind: RowKind): string {
  switch (kind) {
    case RowKind.UPDATE_BEFORE:
      return "-U";
    case RowKind.UPDATE_AFTER:
      return "+U";
    case RowKind.DELETE:
      return "-D";
    default:
      return "+I";
  }
}

/**
 * A CSV field for a spreadsheet: text that a spreadsheet would take for a formula (starting
 * with =, +, -, @, a tab or a carriage return) is prefixed with an apostrophe, which
 * spreadsheets show as text. Numbers are left as they are.
 */
export function csvText(field: string): string {
  return /^[=+\-@\t\r]/.test(field) ? `'${field}` : field;
}

/** One CSV record (RFC 4180): fields quoted when they hold a comma, quote or line break. */
export function csvRecord(fields: string[]): string {
  return fields
    .map((f) => (/[",\r\n]/.test(f) ? `"${f.replaceAll('"', '""')}"` : f))
    .join(",");
}
