// The Upgrade dialog of a running SQL job: the new revision's script in a SQL editor, the line
// diff of the running script against it, where and how the running revision's savepoint is
// written, and UpgradeJob, which opens the new revision's page.

import { basicSetup, EditorView } from "codemirror";
import { type Change, diffLines } from "diff";
import { type Job, RuntimeMode, SavepointFormat } from "./gen/flinkbroker/v1/broker_pb";
import { broker, describe, needsSignIn, report } from "./api";
import { fill, h, parsePairs } from "./dom";
import { sqlLanguage } from "./editor";

/** Unchanged lines shown on each side of a change; longer unchanged runs are folded. */
const CONTEXT = 3;
/** How long the diff may take; scripts that differ more than that show no line diff. */
const DIFF_TIMEOUT_MS = 500;

/**
 * The script the job runs: its statements (the broker records them without their terminating
 * semicolons), each ended by one, a line each.
 */
function jobScript(job: Job): string {
  return job.statements.map((s) => `${s.sql};\n`).join("");
}

type DiffRow =
  | { kind: "added" | "removed" | "same"; text: string; oldLine?: number; newLine?: number }
  | { kind: "folded"; count: number };

function textLines(value: string): string[] {
  const lines = value.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** One row per changed line, with the unchanged lines around each change. */
function diffRows(changes: Change[]): DiffRow[] {
  const rows: DiffRow[] = [];
  let oldLine = 1;
  let newLine = 1;
  changes.forEach((change, at) => {
    const lines = textLines(change.value);
    if (change.added) {
      for (const text of lines) rows.push({ kind: "added", text, newLine: newLine++ });
    } else if (change.removed) {
      for (const text of lines) rows.push({ kind: "removed", text, oldLine: oldLine++ });
    } else {
      const head = at === 0 ? 0 : CONTEXT;
      const tail = at === changes.length - 1 ? 0 : CONTEXT;
      const folded = lines.length - head - tail;
      lines.forEach((text, i) => {
        if (folded > 1 && i >= head && i < lines.length - tail) {
          if (i === head) rows.push({ kind: "folded", count: folded });
        } else {
          rows.push({ kind: "same", text, oldLine, newLine });
        }
        oldLine++;
        newLine++;
      });
    }
  });
  return rows;
}

function diffRow(row: DiffRow): HTMLElement {
  if (row.kind === "folded") {
    return h("div", { class: "diff-folded" }, `⋯ ${row.count} unchanged lines`);
  }
  const sign = row.kind === "added" ? "+" : row.kind === "removed" ? "-" : " ";
  return h(
    "div",
    { class: `diff-line diff-${row.kind}` },
    h("span", { class: "diff-number" }, row.oldLine ? String(row.oldLine) : ""),
    h("span", { class: "diff-number" }, row.newLine ? String(row.newLine) : ""),
    h("span", { class: "diff-sign" }, sign),
    h("span", { class: "diff-text" }, row.text),
  );
}

/** Shows the line diff of `running` against `edited` in `target`, and its counts in `summary`. */
function showDiff(target: HTMLElement, summary: HTMLElement, running: string, edited: string): void {
  // A missing newline at the end is no change of the script.
  const ended = (text: string) => (text === "" || text.endsWith("\n") ? text : `${text}\n`);
  const changes = diffLines(ended(running), ended(edited), { timeout: DIFF_TIMEOUT_MS });
  if (!changes) {
    summary.textContent = "The scripts differ in too many lines to show their changes.";
    fill(target);
    return;
  }
  const added = changes.filter((c) => c.added).reduce((n, c) => n + c.count, 0);
  const removed = changes.filter((c) => c.removed).reduce((n, c) => n + c.count, 0);
  summary.textContent =
    added || removed
      ? `${added} line${added === 1 ? "" : "s"} added, ${removed} removed`
      : "No changes: the new revision runs the same script.";
  summary.dataset.added = String(added);
  summary.dataset.removed = String(removed);
  fill(target, added || removed ? diffRows(changes).map(diffRow) : []);
}

/** An idempotency key for one upgrade, so that a repeated Upgrade returns the same revision. */
function upgradeRequestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-upgrade-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Opens the Upgrade dialog of a running SQL job over `host`; a submitted upgrade opens the new
 * revision's page. The dialog closes when the page is left (`signal`).
 */
export function openUpgradeDialog(
  host: HTMLElement,
  job: Job,
  signal: AbortSignal,
  onSignIn: () => void,
): void {
  const running = jobScript(job);
  const requestId = upgradeRequestId();
  const diff = h("div", { id: "upgrade-diff", class: "diff" });
  const diffSummary = h("p", { id: "upgrade-diff-summary", class: "status" });
  const view = new EditorView({
    doc: running,
    extensions: [
      basicSetup,
      sqlLanguage(),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) showDiff(diff, diffSummary, running, update.state.doc.toString());
      }),
    ],
  });
  const directory = h("input", {
    id: "upgrade-directory",
    placeholder: "file:///savepoints (empty: the cluster's savepoint directory)",
    "aria-label": "Savepoint directory",
  });
  const format = h(
    "select",
    { id: "upgrade-format", "aria-label": "Savepoint format" },
    h("option", { value: "canonical" }, "Canonical"),
    h("option", { value: "native" }, "Native"),
  );
  const allowNonRestored = h("input", { id: "upgrade-allow-non-restored", type: "checkbox" });
  const validateFirst = h("input", { id: "upgrade-validate", type: "checkbox", checked: true });
  const properties = h("textarea", {
    id: "upgrade-properties",
    rows: 3,
    placeholder: "parallelism.default=2",
    "aria-label": "Properties of the new revision, one key=value per line",
  });
  const message = h("p", { id: "upgrade-error", class: "error", role: "alert" });
  const cancel = h("button", { id: "upgrade-cancel", type: "button" }, "Cancel");
  const submit = h("button", { id: "upgrade-submit", class: "primary", type: "button" }, "Upgrade");

  const dialog = h(
    "dialog",
    { id: "upgrade-dialog", class: "upgrade", "aria-labelledby": "upgrade-title" },
    h("h2", { id: "upgrade-title" }, "Upgrade job ", h("span", { class: "mono" }, job.id)),
    h(
      "p",
      { class: "status" },
      `Revision ${job.revision} stops with a savepoint; a new revision runs this script in ` +
        "streaming mode, restoring from it. If the new revision fails to start, " +
        `revision ${job.revision}'s script runs again from the same savepoint.`,
    ),
    h("div", { class: "editor" }, view.dom),
    h(
      "div",
      { class: "controls" },
      h("label", { class: "grow" }, "Savepoint directory ", directory),
      h("label", {}, "Format ", format),
    ),
    h(
      "div",
      { class: "controls" },
      h("label", {}, allowNonRestored, " Allow non-restored state"),
      h("label", {}, validateFirst, " Validate the script before stopping the running revision"),
    ),
    h(
      "details",
      {},
      h("summary", {}, "Properties"),
      h(
        "p",
        { class: "status" },
        "Session properties of the new revision; those the running revision was submitted with are not carried over.",
      ),
      properties,
    ),
    h("h3", {}, "Changes"),
    diffSummary,
    diff,
    message,
    h("div", { class: "controls actions" }, cancel, submit),
  );
  showDiff(diff, diffSummary, running, running);

  const leave = () => dialog.close();
  signal.addEventListener("abort", leave, { once: true });
  dialog.addEventListener("close", () => {
    signal.removeEventListener("abort", leave);
    view.destroy();
    dialog.remove();
  });
  cancel.addEventListener("click", () => dialog.close());

  submit.addEventListener("click", async () => {
    message.textContent = "";
    let request;
    try {
      request = {
        jobId: job.id,
        revision: {
          case: "sql" as const,
          value: {
            script: view.state.doc.toString(),
            // UpgradeJob carries the state of streaming jobs.
            runtimeMode: RuntimeMode.STREAMING,
            properties: parsePairs(properties.value, "properties"),
            validateFirst: validateFirst.checked,
          },
        },
        savepointDirectory: directory.value.trim(),
        savepointFormat:
          format.value === "native" ? SavepointFormat.NATIVE : SavepointFormat.CANONICAL,
        allowNonRestoredState: allowNonRestored.checked,
        requestId,
      };
    } catch (error) {
      message.textContent = describe(error);
      return;
    }
    submit.disabled = true;
    try {
      const revision = await broker.upgradeJob(request);
      dialog.close();
      window.location.hash = `#/jobs/${revision.id}`;
    } catch (error) {
      if (needsSignIn(error)) dialog.close();
      report(error, message, onSignIn);
    } finally {
      submit.disabled = false;
    }
  });

  host.append(dialog);
  dialog.showModal();
  view.focus();
}
