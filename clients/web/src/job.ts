// A job's page: its state live through WatchJob, its state history, its statements with their
// errors, cancel, savepoints, the revision it is of its lineage and the upgrade that made it,
// Upgrade (a running SQL job), and the results of a query statement, as its changelog or as its
// table.

import {
  ClaimMode,
  type Job,
  JobKind,
  JobState,
  type Restore,
  Savepoint_Kind,
  Savepoint_State,
  SavepointFormat,
  type StatementStatus,
  StatementState,
  type Upgrade,
} from "./gen/flinkbroker/v1/broker_pb";
import { broker, report, wasAborted } from "./api";
import { fill, h, labelText, when } from "./dom";
import { ResultsTable, ViewToggle } from "./results";
import {
  badgeClass,
  isTerminal,
  jobKind,
  jobState,
  statementState,
  upgradeInProgress,
  upgradeKind,
  upgradeStep,
} from "./states";
import { openUpgradeDialog } from "./upgrade";

/** How often the page reads a job whose upgrade goes on after the job ended. */
const UPGRADE_POLL_MS = 1000;

function field(name: string, value: Node | string, id?: string): HTMLElement[] {
  return [h("dt", {}, name), h("dd", { id }, value)];
}

function statementRow(s: StatementStatus): HTMLTableRowElement {
  const state = statementState(s.state);
  return h(
    "tr",
    { "data-statement": s.index },
    h("td", {}, String(s.index + 1)),
    h("td", {}, h("pre", { class: "sql" }, s.sql)),
    h("td", {}, h("span", { class: badgeClass(state) }, state)),
    h("td", { class: "mono" }, s.flinkJobId || "—"),
    h("td", {}, s.resultLog ? String(s.resultLog.rowsLogged) : "—"),
    h("td", {}, s.error ? h("pre", { class: "error statement-error" }, s.error) : ""),
  );
}

function started(s: StatementStatus): boolean {
  return s.state === StatementState.RUNNING || s.state === StatementState.FINISHED;
}

function jobLink(id: string, linkId: string): HTMLAnchorElement {
  return h("a", { href: `#/jobs/${encodeURIComponent(id)}`, class: "mono", id: linkId }, id);
}

/** "revision 2 of lineage ID", the lineage linked to the list of its revisions. */
function revisionText(job: Job): HTMLElement {
  return h(
    "span",
    { id: "revision" },
    `revision ${job.revision} of lineage `,
    h(
      "a",
      { href: `#/jobs?lineage=${encodeURIComponent(job.lineageId)}`, class: "mono", id: "lineage" },
      job.lineageId,
    ),
  );
}

function savepointFormat(format: SavepointFormat): string {
  return format === SavepointFormat.NATIVE ? "native" : "canonical";
}

function restoreText(restore: Restore): string {
  const options = [
    `claim mode ${restore.claimMode === ClaimMode.CLAIM ? "CLAIM" : "NO_CLAIM"}`,
    restore.allowNonRestoredState ? "non-restored state allowed" : "",
  ].filter(Boolean);
  return `${restore.savepointPath} (${options.join(", ")})`;
}

/** The upgrade (or rollback) that made a revision, and the savepoints of its lineage. */
function upgradeFields(upgrade: Upgrade, chain: string[]): HTMLElement[] {
  const step = upgradeStep(upgrade.step);
  return [
    field("Kind", upgradeKind(upgrade.kind), "upgrade-kind"),
    field("Step", h("span", { class: badgeClass(step), id: "upgrade-step" }, step)),
    upgrade.note ? field("Note", upgrade.note, "upgrade-note") : [],
    field("Previous revision", jobLink(upgrade.previousJobId, "previous-revision")),
    upgrade.rollbackJobId
      ? field("Rollback revision", jobLink(upgrade.rollbackJobId, "rollback-revision"))
      : [],
    field(
      "Savepoint written to",
      `${upgrade.savepointDirectory || "the cluster's savepoint directory"}, ${savepointFormat(upgrade.savepointFormat)}`,
    ),
    field(
      "Savepoint chain",
      chain.length
        ? h("ol", { id: "savepoint-chain", class: "chain mono" }, chain.map((path) => h("li", {}, path)))
        : "none yet",
    ),
  ].flat();
}

export function jobView(
  root: HTMLElement,
  jobId: string,
  signal: AbortSignal,
  onSignIn: () => void,
): void {
  const summary = h("dl", { class: "summary" });
  const history = h("tbody");
  const statements = h("tbody");
  const message = h("p", { class: "error", role: "alert", id: "job-error" });
  const cancel = h("button", { id: "cancel", class: "danger", hidden: true }, "Cancel job");
  const savepoint = h("button", { id: "savepoint", hidden: true }, "Savepoint");
  const upgrade = h("button", { id: "upgrade", hidden: true }, "Upgrade");
  const upgradeSummary = h("dl", { class: "summary", id: "upgrade-summary" });
  const upgradeSection = h("section", { hidden: true }, h("h2", {}, "Upgrade"), upgradeSummary);
  const savepoints = h("tbody");
  const savepointsSection = h(
    "section",
    { hidden: true },
    h("h2", {}, "Savepoints"),
    h(
      "table",
      { id: "savepoints", class: "grid" },
      h(
        "thead",
        {},
        h("tr", {}, ["Taken", "Statement", "Kind", "State", "Location"].map((c) => h("th", {}, c))),
      ),
      savepoints,
    ),
  );
  const picker = h("select", { id: "statement-picker", "aria-label": "Query statement" });
  const show = h("button", { id: "show-results" }, "Show results");
  // Switching the view reads the shown statement's results again in the other view.
  const resultsView = new ViewToggle(() => {
    if (results) openResults(results.index);
  });
  const statementsSection = h(
    "section",
    {},
    h("h2", {}, "Statements"),
    h(
      "table",
      { id: "statements", class: "grid" },
      h("thead", {}, h("tr", {}, ["#", "SQL", "State", "Flink job", "Rows logged", "Error"].map((c) => h("th", {}, c)))),
      statements,
    ),
  );
  const resultsArea = h("div");
  const resultsSection = h(
    "section",
    { hidden: true },
    h("h2", {}, "Results"),
    h("div", { class: "controls" }, h("label", {}, "Statement ", picker), show, resultsView.element),
    resultsArea,
  );
  const output = h("pre", { class: "output", id: "submitter-output" });
  const outputSection = h(
    "section",
    { hidden: true },
    h("h2", {}, "Submitter output"),
    h("p", { class: "status" }, "The end of what `flink run` printed."),
    output,
  );
  let results: { index: number; controller: AbortController } | undefined;
  let latest: Job | undefined;

  function openResults(index: number): void {
    results?.controller.abort();
    const controller = new AbortController();
    signal.addEventListener("abort", () => controller.abort(), { once: true });
    results = { index, controller };
    picker.value = String(index);
    const table = new ResultsTable(jobId, index, resultsView.view, controller.signal, onSignIn);
    fill(resultsArea, table.element);
    void table.run();
  }

  function render(job: Job): void {
    latest = job;
    const state = jobState(job.state);
    fill(
      summary,
      field("State", h("span", { class: badgeClass(state), id: "job-state" }, state)),
      job.stateReason ? field("Reason", h("span", { id: "state-reason" }, job.stateReason)) : [],
      field("Kind", jobKind(job.kind)),
      field("Tenant", `${job.tenant} (${job.principal || "—"})`),
      field("Revision", revisionText(job)),
      job.flinkJobId ? field("Flink job", job.flinkJobId) : [],
      field("Created", when(job.createTime)),
      field("Ended", when(job.endTime)),
      Object.keys(job.labels).length
        ? field("Labels", labelText(job.labels))
        : [],
      job.savepointPath ? field("Savepoint", job.savepointPath) : [],
      job.restore ? field("Restored from", restoreText(job.restore), "restored-from") : [],
    );
    upgradeSection.hidden = !job.upgrade;
    fill(upgradeSummary, job.upgrade ? upgradeFields(job.upgrade, job.savepointChain) : []);
    fill(
      history,
      job.history.map((t) => {
        const name = jobState(t.state);
        return h(
          "tr",
          {},
          h("td", {}, when(t.time)),
          h("td", {}, h("span", { class: badgeClass(name) }, name)),
          h("td", {}, t.reason),
        );
      }),
    );
    fill(statements, job.statements.map(statementRow));
    statementsSection.hidden = job.kind === JobKind.PYTHON && job.statements.length === 0;
    output.textContent = job.submitterOutput;
    outputSection.hidden = !job.submitterOutput;
    cancel.hidden = isTerminal(job.state);
    savepoint.hidden = job.state !== JobState.RUNNING;
    // A revision whose own upgrade goes on is upgraded once that is done.
    upgrade.hidden =
      job.kind !== JobKind.SQL ||
      job.state !== JobState.RUNNING ||
      (job.upgrade !== undefined && upgradeInProgress(job.upgrade.step));
    fill(
      savepoints,
      job.savepoints.map((s) =>
        h(
          "tr",
          {},
          h("td", {}, when(s.createTime)),
          h("td", {}, s.statementIndex === undefined ? "—" : String(s.statementIndex + 1)),
          h("td", {}, Savepoint_Kind[s.kind] ?? ""),
          h("td", {}, Savepoint_State[s.state] ?? ""),
          h("td", { class: "mono" }, s.location || s.error),
        ),
      ),
    );
    savepointsSection.hidden = job.savepoints.length === 0;

    const queries = job.statements.filter((s) => s.isQuery);
    resultsSection.hidden = job.kind !== JobKind.SQL || queries.length === 0;
    const chosen = picker.value;
    fill(
      picker,
      queries.map((s) =>
        h("option", { value: String(s.index) }, `#${s.index + 1}: ${s.sql.slice(0, 60)}`),
      ),
    );
    if (chosen) picker.value = chosen;
    // The last query's results open by themselves once it has started, as the CLI prints them.
    const last = queries.at(-1);
    if (!results && last && started(last)) openResults(last.index);
  }

  show.addEventListener("click", () => {
    if (picker.value) openResults(Number(picker.value));
  });
  cancel.addEventListener("click", async () => {
    if (!latest || !window.confirm(`Cancel job ${jobId}?`)) return;
    cancel.disabled = true;
    try {
      render(await broker.cancelJob({ jobId }));
    } catch (error) {
      report(error, message, onSignIn);
    } finally {
      cancel.disabled = false;
    }
  });

  savepoint.addEventListener("click", async () => {
    const directory = window.prompt(
      "Write the savepoint to (empty: the cluster's savepoint directory)",
      "",
    );
    if (directory === null) return;
    savepoint.disabled = true;
    message.textContent = "";
    try {
      render(await broker.triggerSavepoint({ jobId, directory: directory.trim() }));
    } catch (error) {
      report(error, message, onSignIn, "Savepoint: ");
    } finally {
      savepoint.disabled = false;
    }
  });

  upgrade.addEventListener("click", () => {
    if (!latest) return;
    message.textContent = "";
    openUpgradeDialog(root, latest, signal, onSignIn);
  });

  fill(
    root,
    h("h1", {}, "Job ", h("span", { class: "mono", id: "job-id" }, jobId)),
    message,
    h("div", { class: "controls" }, upgrade, savepoint, cancel),
    summary,
    upgradeSection,
    statementsSection,
    savepointsSection,
    resultsSection,
    outputSection,
    h("h2", {}, "State history"),
    h(
      "table",
      { id: "history", class: "grid" },
      h("thead", {}, h("tr", {}, ["Time", "State", "Reason"].map((c) => h("th", {}, c)))),
      history,
    ),
  );

  void (async () => {
    try {
      // WatchJob sends the job as it is now, then each change until the job ends.
      for await (const job of broker.watchJob({ jobId }, { signal })) {
        render(job);
      }
      // A revision that failed to start ends before its upgrade does (the rollback is recorded
      // after it): read it until the upgrade ends too.
      while (latest?.upgrade && upgradeInProgress(latest.upgrade.step)) {
        await new Promise((done) => setTimeout(done, UPGRADE_POLL_MS));
        if (signal.aborted) return;
        render(await broker.getJob({ jobId }, { signal }));
      }
    } catch (error) {
      if (wasAborted(error)) return;
      report(error, message, onSignIn, "Live updates stopped: ");
    }
  })();
}
