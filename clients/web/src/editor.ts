// The SQL editor: a CodeMirror 6 editor with Flink SQL highlighting, the runtime mode,
// properties and labels; Validate, which checks the script without running it (the planner's
// errors as lint markers at their line and column, each statement's plan in a panel); and Run,
// which submits the script and opens the job's page.

import { sql, StandardSQL } from "@codemirror/lang-sql";
import { type Diagnostic, lintGutter, setDiagnostics } from "@codemirror/lint";
import { basicSetup, EditorView } from "codemirror";
import {
  RuntimeMode,
  type ScriptPosition,
  StatementValidation_Verdict as Verdict,
  type ValidateSqlResponse,
} from "./gen/flinkbroker/v1/broker_pb";
import { broker, describe, report } from "./api";
import { fill, h, parsePairs } from "./dom";

const EXAMPLE = `-- Flink SQL: statements separated by semicolons; the last query's rows are shown.
CREATE TABLE clicks (user_id INT, url STRING) WITH (
  'connector' = 'datagen', 'number-of-rows' = '20',
  'fields.user_id.min' = '1', 'fields.user_id.max' = '5'
);
SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id;
`;

// The editor outlives the view so that going to a job and back keeps the script (in memory
// only: nothing but the token is kept in the browser).
let editor: EditorView | undefined;

/** Flink SQL highlighting and completion, as every SQL editor of the console has them. */
export function sqlLanguage() {
  return sql({ dialect: StandardSQL, upperCaseKeywords: true });
}

function sqlEditor(): EditorView {
  if (!editor) {
    editor = new EditorView({
      doc: EXAMPLE,
      extensions: [basicSetup, sqlLanguage(), lintGutter()],
    });
  }
  return editor;
}

/** The document offset of a 1-based script position, kept inside the document. */
function offset(view: EditorView, position: ScriptPosition): number {
  const doc = view.state.doc;
  const line = doc.line(Math.min(Math.max(position.line, 1), doc.lines));
  return Math.min(line.from + Math.max(position.column, 1) - 1, line.to);
}

/** The planner's errors as diagnostics, from the error's start to its end (or the word). */
function diagnostics(view: EditorView, checked: ValidateSqlResponse): Diagnostic[] {
  return checked.statements
    .filter((s) => s.verdict === Verdict.INVALID)
    .map((s) => {
      const at = s.errorStart ?? s.start;
      const from = at ? offset(view, at) : 0;
      let to = s.errorEnd ? offset(view, s.errorEnd) + 1 : view.state.doc.lineAt(from).to;
      if (to <= from) to = Math.min(from + 1, view.state.doc.length);
      return {
        from,
        to,
        severity: "error" as const,
        message: `Statement ${s.index + 1}: ${s.error}`,
      };
    });
}

export function editorView(root: HTMLElement, onSignIn: () => void): void {
  const view = sqlEditor();
  const mode = h(
    "select",
    { id: "mode", "aria-label": "Runtime mode" },
    h("option", { value: "streaming" }, "Streaming"),
    h("option", { value: "batch" }, "Batch"),
  );
  const properties = h("textarea", {
    id: "properties",
    rows: 3,
    placeholder: "table.exec.resource.default-parallelism=2",
    "aria-label": "Properties, one key=value per line",
  });
  const labels = h("input", {
    id: "labels",
    placeholder: "team=recs, run=nightly",
    "aria-label": "Labels, key=value separated by commas",
  });
  const message = h("p", { id: "submit-error", class: "error", role: "alert" });
  const run = h("button", { id: "run", class: "primary" }, "Run");
  const validate = h("button", { id: "validate" }, "Validate");
  const verdict = h("p", { id: "validation", class: "status", role: "status" });
  const plans = h("div", { id: "plans" });
  const plansSection = h(
    "details",
    { id: "plans-panel", hidden: true },
    h("summary", {}, "Plans"),
    plans,
  );

  validate.addEventListener("click", async () => {
    message.textContent = "";
    verdict.textContent = "";
    let request;
    try {
      request = {
        script: view.state.doc.toString(),
        runtimeMode: mode.value === "batch" ? RuntimeMode.BATCH : RuntimeMode.STREAMING,
        properties: parsePairs(properties.value, "properties"),
      };
    } catch (error) {
      message.textContent = describe(error);
      return;
    }
    validate.disabled = true;
    try {
      const checked = await broker.validateSql(request);
      const found = diagnostics(view, checked);
      view.dispatch(setDiagnostics(view.state, found));
      const unchecked = checked.statements.filter((s) => s.verdict === Verdict.NOT_CHECKED);
      verdict.textContent = checked.valid
        ? `Valid: ${checked.statements.length} statements` +
          (unchecked.length ? `, ${unchecked.length} not checked (${unchecked[0].note})` : "")
        : `${found.length} invalid statement${found.length === 1 ? "" : "s"}: ${found[0]?.message ?? ""}`;
      verdict.className = checked.valid ? "status" : "status error";
      const planned = checked.statements.filter((s) => s.plan);
      fill(
        plans,
        planned.map((s) =>
          h(
            "div",
            { class: "plan", "data-statement": s.index },
            h("h3", {}, `Statement ${s.index + 1}: ${s.sql.split("\n")[0].slice(0, 80)}`),
            h("pre", { class: "sql" }, s.plan),
          ),
        ),
      );
      plansSection.hidden = planned.length === 0;
    } catch (error) {
      report(error, message, onSignIn);
    } finally {
      validate.disabled = false;
    }
  });

  run.addEventListener("click", async () => {
    message.textContent = "";
    let request;
    try {
      request = {
        script: view.state.doc.toString(),
        runtimeMode: mode.value === "batch" ? RuntimeMode.BATCH : RuntimeMode.STREAMING,
        properties: parsePairs(properties.value, "properties"),
        labels: parsePairs(labels.value, "labels"),
      };
    } catch (error) {
      message.textContent = describe(error);
      return;
    }
    run.disabled = true;
    try {
      const job = await broker.submitSql(request);
      window.location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      report(error, message, onSignIn);
    } finally {
      run.disabled = false;
    }
  });

  fill(
    root,
    h("h1", {}, "SQL"),
    h("div", { class: "editor" }, view.dom),
    h(
      "div",
      { class: "controls" },
      h("label", {}, "Mode ", mode),
      h("label", { class: "grow" }, "Labels ", labels),
      validate,
      run,
    ),
    h("details", {}, h("summary", {}, "Properties"), properties),
    verdict,
    message,
    plansSection,
  );
  view.focus();
}
