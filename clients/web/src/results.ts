// A statement's results as a table that fills live from StreamOperationResults: row kinds
// shown for changelogs, each cell typed, progress and the end of the stream said in words,
// and a download of the rows shown as CSV.

import {
  type Column,
  type Row,
  StreamEnd_Reason,
  type StreamOperationResultsResponse,
} from "./gen/flinkbroker/v1/broker_pb";
import { broker, describe, needsSignIn, wasAborted } from "./api";
import { fill, h } from "./dom";
import { csvRecord, csvText, isNull, rowKind, text } from "./values";

/** The most rows one results table holds; the broker ends the stream there. */
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

export class ResultsTable {
  readonly element: HTMLElement;
  private readonly head = h("thead");
  private readonly body = h("tbody");
  private readonly status = h("p", { class: "status", id: "results-status" });
  private readonly download = h("button", { id: "download-csv", disabled: true }, "Download CSV");
  private columns: Column[] = [];
  private readonly csv: string[] = [];
  private rows = 0;

  constructor(
    private readonly jobId: string,
    private readonly statementIndex: number,
    private readonly signal: AbortSignal,
    private readonly onSignIn: () => void,
  ) {
    this.download.addEventListener("click", () => this.saveCsv());
    this.element = h(
      "section",
      { class: "results", "data-statement": statementIndex },
      h("div", { class: "controls" }, this.status, this.download),
      h("div", { class: "scroll" }, h("table", { id: "results", class: "grid" }, this.head, this.body)),
    );
  }

  /** Streams the statement's rows into the table until the stream ends or the page leaves. */
  async run(): Promise<void> {
    this.status.textContent = "Waiting for results…";
    try {
      const stream = broker.streamOperationResults(
        { jobId: this.jobId, statementIndex: this.statementIndex, maxRows: BigInt(MAX_ROWS_SHOWN) },
        { signal: this.signal },
      );
      for await (const message of stream) {
        this.take(message);
      }
    } catch (error) {
      if (wasAborted(error)) return;
      if (needsSignIn(error)) this.onSignIn();
      this.status.textContent = `Results stopped: ${describe(error)}`;
      this.status.classList.add("error");
    }
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
            h("th", { title: "Row kind: +I insert, -U/+U update before/after, -D delete" }, "op"),
            this.columns.map((c) => h("th", { title: c.type?.sql ?? "" }, c.name)),
          ),
        );
        this.csv.push(csvRecord(["op", ...this.columns.map((c) => c.name)]));
        this.download.disabled = false;
        break;
      case "rows":
        this.body.append(...m.value.rows.map((row) => this.row(row)));
        this.status.textContent = `${this.rows} rows`;
        break;
      case "progress":
        this.status.textContent =
          `${this.rows} rows shown · ${m.value.rowsLogged} logged` +
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

  private row(row: Row): HTMLTableRowElement {
    this.rows += 1;
    const kind = rowKind(row.kind);
    const cells = row.values.map((value, i) => {
      const type = this.columns[i]?.type?.typeRoot ?? "";
      const classes = [NUMERIC.has(type) ? "num" : "", isNull(value) ? "null" : ""].join(" ").trim();
      return h("td", { "data-type": type, class: classes || undefined }, text(value));
    });
    this.csv.push(
      csvRecord([
        csvText(kind),
        ...row.values.map((value, i) =>
          NUMERIC.has(this.columns[i]?.type?.typeRoot ?? "") ? text(value) : csvText(text(value)),
        ),
      ]),
    );
    return h("tr", { "data-kind": kind }, h("td", { class: `kind kind-${kind[0] === "+" ? "add" : "retract"}` }, kind), cells);
  }

  private saveCsv(): void {
    const blob = new Blob([this.csv.join("\r\n") + "\r\n"], { type: "text/csv" });
    const link = h("a", {
      href: URL.createObjectURL(blob),
      download: `${this.jobId}-statement-${this.statementIndex + 1}.csv`,
    });
    link.click();
    URL.revokeObjectURL(link.href);
  }
}
