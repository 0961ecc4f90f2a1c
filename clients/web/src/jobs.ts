// The jobs list, filtered by state, labels and lineage, newest first, a page at a time.

import type { Job, JobState } from "./gen/flinkbroker/v1/broker_pb";
import { broker, report } from "./api";
import { fill, h, labelText, parsePairs, when } from "./dom";
import { badgeClass, JOB_STATES, jobKind, jobState } from "./states";

const PAGE_SIZE = 50;

function row(job: Job): HTMLTableRowElement {
  const state = jobState(job.state);
  return h(
    "tr",
    { "data-job-id": job.id },
    h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "mono" }, job.id)),
    h("td", {}, jobKind(job.kind)),
    h("td", {}, h("span", { class: badgeClass(state) }, state)),
    h("td", {}, labelText(job.labels)),
    h(
      "td",
      { class: "num" },
      h(
        "a",
        { href: `#/jobs?lineage=${encodeURIComponent(job.lineageId)}`, title: "Every revision of this job" },
        String(job.revision),
      ),
    ),
    h("td", {}, when(job.createTime)),
    h("td", { class: "reason" }, job.stateReason),
  );
}

export function jobsView(root: HTMLElement, query: URLSearchParams, onSignIn: () => void): void {
  const stateFilter = h(
    "select",
    { id: "state-filter", "aria-label": "State" },
    h("option", { value: "" }, "Any state"),
    JOB_STATES.map((s) => h("option", { value: String(s) }, jobState(s))),
  );
  stateFilter.value = query.get("state") ?? "";
  const labelFilter = h("input", {
    id: "label-filter",
    placeholder: "team=recs",
    "aria-label": "Labels",
    value: query.get("label") ?? "",
  });
  const lineageFilter = h("input", {
    id: "lineage-filter",
    class: "mono",
    placeholder: "the first revision's job id",
    "aria-label": "Lineage",
    value: query.get("lineage") ?? "",
  });
  const apply = h("button", { id: "apply-filter", type: "submit" }, "Filter");
  const body = h("tbody");
  const message = h("p", { class: "error", role: "alert" });
  const more = h("button", { id: "more", hidden: true }, "More");
  let pageToken = "";

  async function load(): Promise<void> {
    message.textContent = "";
    // One page at a time: a second click while one loads would fetch the same page again.
    more.disabled = true;
    try {
      const response = await broker.listJobs({
        states: stateFilter.value ? [Number(stateFilter.value) as JobState] : [],
        labels: parsePairs(labelFilter.value, "labels"),
        lineageId: lineageFilter.value.trim(),
        pageSize: PAGE_SIZE,
        pageToken,
      });
      body.append(...response.jobs.map(row));
      pageToken = response.nextPageToken;
      more.hidden = !pageToken;
      // Says which filter the rows shown answer, once they are all there.
      table.dataset.filter = query.toString();
      if (!body.childElementCount) {
        body.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No jobs match.")));
      }
    } catch (error) {
      report(error, message, onSignIn);
    } finally {
      more.disabled = false;
    }
  }

  const form = h(
    "form",
    { class: "controls" },
    h("label", {}, "State ", stateFilter),
    h("label", { class: "grow" }, "Labels ", labelFilter),
    h("label", {}, "Lineage ", lineageFilter),
    apply,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (stateFilter.value) next.set("state", stateFilter.value);
    if (labelFilter.value.trim()) next.set("label", labelFilter.value.trim());
    if (lineageFilter.value.trim()) next.set("lineage", lineageFilter.value.trim());
    const search = next.toString();
    window.location.hash = search ? `#/jobs?${search}` : "#/jobs";
  });
  more.addEventListener("click", () => void load());

  const table = h(
    "table",
    { id: "jobs", class: "grid" },
    h(
      "thead",
      {},
      h("tr", {}, ["Job", "Kind", "State", "Labels", "Revision", "Created", "Reason"].map((c) => h("th", {}, c))),
    ),
    body,
  );
  fill(root, h("h1", {}, "Jobs"), form, message, table, more);
  void load();
}
