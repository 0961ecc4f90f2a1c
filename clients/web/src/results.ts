// A statement's results, filling live from StreamOperationResults, in one of two views: the
// changelog (every row with its kind) or the table the changelog makes (a snapshot, then each
// change applied in place). Each cell is typed, progress and the end of the stream are said in
// words, and the rows shown download as CSV.

import { create, toBinary } from "@bufbuild/protobuf";
import {
  type Column,
  type Row,
  RowKind,
  RowSchema,
  ResultView,
  StreamEnd_Reason,
  type StreamOperationResultsResponse,
  type Value,
} from "./gen/flinkbroker/v1/broker_pb";
import { broker, describe, needsSignIn, wasAborted } from "./api";
import { fill, h } from "./dom";
import { csvRecord, csvText, isNull, rowKind, text } from "./values";

/**
 * The most rows one results table holds: the changelog's first rows (the broker ends the stream
 * there), or the rows of a table (a larger one stops its stream).
 */
export const MAX_ROWS_SHOWN = 10_000;

const NUMERIC = new Set(["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "FLOAT", "DOUBLE", "DECIMAL"]);

const END_REASONS: Record<StreamEnd_Reason, string> = {
  [StreamEnd_Reason.UNSPECIFIED]: "stream ended",
  [StreamEnd_Reason.END_OF_RESULTS]: "all results",
  [StreamEnd_Reason.ROW_LIMIT_REACHED]: `the first ${MAX_ROWS_SHOWN} rows (the console's limit)`,
  [StreamEnd_Reason.TIME_LIMIT_REACHED]: "time limit reached",
  [StreamEnd_Reason.CANCELED]: "the job was canceled",
  [StreamEnd_Reason.FAILED]: "the statement failed",
};

/** How results are shown: every row as logged with its kind, or the table they make. */
export type View = "changelog" | "table";

/** The Changelog/Table switch: two toggle buttons, one pressed, reachable by keyboard. */
export class ViewToggle {
  readonly element: HTMLElement;
  private current: View = "changelog";
  private readonly buttons: Record<View, HTMLButtonElement>;

  constructor(onChange: (view: View) => void) {
    this.buttons = {
      changelog: h(
        "button",
        { id: "view-changelog", type: "button", title: "Every row as logged, with its kind" },
        "Changelog",
      ),
      table: h(
        "button",
        { id: "view-table", type: "button", title: "The table the changelog makes, updated in place" },
        "Table",
      ),
    };
    for (const view of ["changelog", "table"] as const) {
      const button = this.buttons[view];
      button.addEventListener("click", () => {
        if (view === this.current) return;
        this.current = view;
        this.press();
        onChange(view);
      });
      // Left and right arrows move between the two, as in any segmented control.
      button.addEventListener("keydown", (event) => {
        if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
        event.preventDefault();
        this.buttons[view === "changelog" ? "table" : "changelog"].focus();
      });
    }
    this.element = h(
      "div",
      { class: "segmented", role: "group", "aria-label": "Results view", id: "results-view" },
      this.buttons.changelog,
      this.buttons.table,
    );
    this.press();
  }

  get view(): View {
    return this.current;
  }

  private press(): void {
    for (const view of ["changelog", "table"] as const) {
      this.buttons[view].setAttribute("aria-pressed", String(view === this.current));
    }
  }
}

/** A row's identity in the table: all of its values (the kind aside), as the broker keys it. */
function rowKey(values: Value[]): string {
  const bytes = toBinary(RowSchema, create(RowSchema, { values }));
  let key = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    key += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return key;
}

export class ResultsTable {
  readonly element: HTMLElement;
  private readonly head = h("thead");
  private readonly body = h("tbody");
  private readonly status = h("p", { class: "status", id: "results-status" });
  private readonly download = h("button", { id: "download-csv", disabled: true }, "Download CSV");
  private readonly stop = new AbortController();
  private columns: Column[] = [];
  /** The changelog's CSV records, gathered as rows arrive. */
  private readonly csv: string[] = [];
  /** Rows shown: changelog rows, or the rows the table holds. */
  private rows = 0;
  /** The table's rows by their values, each as many times as the table holds it. */
  private readonly held = new Map<string, HTMLTableRowElement[]>();
  /** Rows an update took away (-U), hidden, each to be refilled by the +U that follows. */
  private readonly vacated: HTMLTableRowElement[] = [];
  private asOf = 0n;
  private changes = 0;
  private snapshotDone = false;

  constructor(
    private readonly jobId: string,
    private readonly statementIndex: number,
    private readonly view: View,
    signal: AbortSignal,
    private readonly onSignIn: () => void,
  ) {
    signal.addEventListener("abort", () => this.stop.abort(), { once: true });
    this.download.addEventListener("click", () => this.saveCsv());
    this.element = h(
      "section",
      { class: "results", "data-statement": statementIndex, "data-view": view },
      h("div", { class: "controls" }, this.status, this.download),
      h("div", { class: "scroll" }, h("table", { id: "results", class: "grid" }, this.head, this.body)),
    );
  }

  /** Streams the statement's results into the table until the stream ends or the page leaves. */
  async run(): Promise<void> {
    const table = this.view === "table";
    this.status.textContent = table ? "Waiting for the table…" : "Waiting for results…";
    try {
      const stream = broker.streamOperationResults(
        table
          ? { jobId: this.jobId, statementIndex: this.statementIndex, view: ResultView.TABLE }
          : { jobId: this.jobId, statementIndex: this.statementIndex, maxRows: BigInt(MAX_ROWS_SHOWN) },
        { signal: this.stop.signal },
      );
      for await (const message of stream) {
        this.take(message);
        if (table && this.rows > MAX_ROWS_SHOWN) {
          this.stop.abort();
          this.fail(
            `The table holds more than ${MAX_ROWS_SHOWN} rows (the console's limit); its changelog shows every change`,
          );
          return;
        }
      }
    } catch (error) {
      if (wasAborted(error)) return;
      if (needsSignIn(error)) this.onSignIn();
      this.fail(`Results stopped: ${describe(error)}`);
    }
  }

  private fail(message: string): void {
    this.status.textContent = message;
    this.status.classList.add("error");
  }

  private take(message: StreamOperationResultsResponse): void {
    const m = message.message;
    switch (m.case) {
      case "schema":
        this.columns = m.value.columns;
        fill(
          this.head,
          h(
            "tr",
            {},
            this.view === "changelog"
              ? h("th", { title: "Row kind: +I insert, -U/+U update before/after, -D delete" }, "op")
              : null,
            this.columns.map((c) => h("th", { title: c.type?.sql ?? "" }, c.name)),
          ),
        );
        if (this.view === "changelog") this.csv.push(csvRecord(["op", ...this.columns.map((c) => c.name)]));
        this.download.disabled = false;
        break;
      case "snapshot":
        for (const row of m.value.rows) this.apply(row);
        this.asOf = m.value.asOfRowOffset;
        this.snapshotDone = m.value.last;
        this.status.textContent = m.value.last
          ? `${this.rows} rows as of row ${this.asOf}`
          : `${this.rows} rows of the table so far…`;
        break;
      case "rows":
        if (this.view === "table") {
          for (const row of m.value.rows) this.apply(row);
          this.changes += m.value.rows.length;
          this.status.textContent = this.tableStatus();
        } else {
          this.body.append(...m.value.rows.map((row) => this.changelogRow(row)));
          this.status.textContent = `${this.rows} rows`;
        }
        break;
      case "progress":
        this.status.textContent =
          (this.view === "table" ? this.tableStatus() : `${this.rows} rows shown`) +
          ` · ${m.value.rowsLogged} logged` +
          (m.value.flinkJobStatus ? ` · Flink job ${m.value.flinkJobStatus}` : "");
        break;
      case "end": {
        const end = m.value;
        this.status.textContent = `${this.rows} rows · ${END_REASONS[end.reason] ?? "stream ended"}`;
        if (end.error) {
          this.status.textContent += `: ${end.error}`;
          this.status.classList.add("error");
        }
        this.status.dataset.end = StreamEnd_Reason[end.reason] ?? "UNSPECIFIED";
        break;
      }
      case undefined:
        break;
    }
  }

  private tableStatus(): string {
    return this.snapshotDone
      ? `${this.rows} rows · ${this.changes} changes applied since row ${this.asOf}`
      : `${this.rows} rows`;
  }

  /** The cells of a row's values, typed. */
  private cells(values: Value[]): HTMLTableCellElement[] {
    return values.map((value, i) => {
      const type = this.columns[i]?.type?.typeRoot ?? "";
      const classes = [NUMERIC.has(type) ? "num" : "", isNull(value) ? "null" : ""].join(" ").trim();
      return h("td", { "data-type": type, class: classes || undefined }, text(value));
    });
  }

  private changelogRow(row: Row): HTMLTableRowElement {
    this.rows += 1;
    const kind = rowKind(row.kind);
    this.csv.push(
      csvRecord([
        csvText(kind),
        ...row.values.map((value, i) =>
          NUMERIC.has(this.columns[i]?.type?.typeRoot ?? "") ? text(value) : csvText(text(value)),
        ),
      ]),
    );
    return h(
      "tr",
      { "data-kind": kind },
      h("td", { class: `kind kind-${kind[0] === "+" ? "add" : "retract"}` }, kind),
      this.cells(row.values),
    );
  }

  /**
   * Applies one change to the table: +I adds a row at the end; -U and -D take away one row
   * with the same values (none when the table holds no such row); +U fills the place of the
   * row a -U before it took away, so an update stays where its row was.
   */
  private apply(row: Row): void {
    const key = rowKey(row.values);
    if (row.kind === RowKind.UPDATE_BEFORE || row.kind === RowKind.DELETE) {
      const same = this.held.get(key);
      const taken = same?.pop();
      if (!taken) return;
      if (same?.length === 0) this.held.delete(key);
      this.rows -= 1;
      if (row.kind === RowKind.UPDATE_BEFORE) {
        taken.hidden = true;
        this.vacated.push(taken);
      } else {
        taken.remove();
      }
      return;
    }
    const place = row.kind === RowKind.UPDATE_AFTER ? this.takePlace(row.values) : undefined;
    let shown: HTMLTableRowElement;
    if (place) {
      fill(place, this.cells(row.values));
      place.hidden = false;
      shown = place;
    } else {
      shown = h("tr", {}, this.cells(row.values));
      this.body.append(shown);
    }
    this.rows += 1;
    const same = this.held.get(key);
    if (same) same.push(shown);
    else this.held.set(key, [shown]);
  }

  /**
   * The place a +U fills: of the rows -U took away and no +U filled yet, the one sharing most
   * of its values (an aggregate's group key), the earliest of equals.
   */
  private takePlace(values: Value[]): HTMLTableRowElement | undefined {
    const shown = values.map(text);
    let best = -1;
    let bestShared = -1;
    this.vacated.forEach((tr, i) => {
      const shared = shown.filter((cell, c) => tr.cells[c]?.textContent === cell).length;
      if (shared > bestShared) {
        best = i;
        bestShared = shared;
      }
    });
    return best < 0 ? undefined : this.vacated.splice(best, 1)[0];
  }

  /** The table's rows as CSV records, in the order shown. */
  private tableCsv(): string[] {
    const records = [csvRecord(this.columns.map((c) => c.name))];
    for (const tr of this.body.rows) {
      if (tr.hidden) continue;
      records.push(
        csvRecord(
          Array.from(tr.cells, (td, i) =>
            NUMERIC.has(this.columns[i]?.type?.typeRoot ?? "") ? td.textContent ?? "" : csvText(td.textContent ?? ""),
          ),
        ),
      );
    }
    return records;
  }

  private saveCsv(): void {
    const records = this.view === "table" ? this.tableCsv() : this.csv;
    const blob = new Blob([records.join("\r\n") + "\r\n"], { type: "text/csv" });
    const link = h("a", {
      href: URL.createObjectURL(blob),
      download: `${this.jobId}-statement-${this.statementIndex + 1}${this.view === "table" ? "-table" : ""}.csv`,
    });
    link.click();
    URL.revokeObjectURL(link.href);
  }
}
