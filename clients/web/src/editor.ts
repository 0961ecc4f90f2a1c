// The SQL editor: a CodeMirror 6 editor with Flink SQL highlighting, the runtime mode,
// properties and labels, and Run, which submits the script and opens the job's page.

import { sql, StandardSQL } from "@codemirror/lang-sql";
import { basicSetup, EditorView } from "codemirror";
import { RuntimeMode } from "./gen/flinkbroker/v1/broker_pb";
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

function sqlEditor(): EditorView {
  if (!editor) {
    editor = new EditorView({
      doc: EXAMPLE,
      extensions: [basicSetup, sql({ dialect: StandardSQL, upperCaseKeywords: true })],
    });
  }
  return editor;
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
      run,
    ),
    h("details", {}, h("summary", {}, "Properties"), properties),
    message,
  );
  view.focus();
}
