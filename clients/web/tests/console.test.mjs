// The web console in a real browser (Debian's Chromium driven by playwright-core) against the
// real broker and the SQL Gateway stand-in: sign in, run scripts, watch jobs end, read typed
// rows and changelogs, download CSV, see a failing statement's root cause, filter the jobs list.
// Screenshots go to target/console-screenshots/.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { Broker, openPage, typeScript } from "./broker.mjs";

const REPO = resolve(import.meta.dirname, "../../..");
const SHOTS = join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "console-screenshots");

const TYPED = `SELECT 1 AS c_int, 'a,b' AS c_str, CAST(NULL AS INT) AS c_null, TRUE AS c_bool,
  ARRAY[1,2] AS c_arr, MAP['k', 1] AS c_map, ROW(1, 'x') AS c_row, DATE '2024-01-02' AS c_date,
  TIME '03:04:05' AS c_time, TIMESTAMP '2024-01-02 03:04:05.678' AS c_ts,
  CAST(1.5 AS DECIMAL(10,2)) AS c_dec, X'CAFE' AS c_bytes;`;
const CHANGELOG = `CREATE TABLE gen_keys (k INT, v INT) WITH ('connector'='datagen', 'rows-per-second'='10',
  'number-of-rows'='30', 'fields.k.min'='1', 'fields.k.max'='3', 'fields.v.min'='1', 'fields.v.max'='9');
SELECT k, COUNT(*) AS cnt, SUM(v) AS total FROM gen_keys GROUP BY k;`;
const FAILING = "SELEC 1;";
const ROOT_CAUSE = "SQL parse failed. Non-query expression encountered in illegal context";

let broker;
let browser;
let page;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  broker = await Broker.start();
  ({ browser, page } = await openPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true }));
});

after(async () => {
  await browser?.close();
  await broker?.stop();
});

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Types a script into the editor (replacing what is there), picks the mode and runs it. */
async function run(script, { mode = "batch", labels = "", screenshot } = {}) {
  await page.goto(`${broker.url}#/`);
  await typeScript(page, script);
  await page.selectOption("#mode", mode);
  await page.fill("#labels", labels);
  if (screenshot) await shot(screenshot);
  await page.click("#run");
  await page.waitForURL(/#\/jobs\/[0-9a-f-]+$/);
  return page.url().split("/").at(-1);
}

async function waitForState(state) {
  await page.locator("#job-state", { hasText: state }).waitFor();
}

test("a token is asked for, a wrong one refused, the right one lets the console in", async () => {
  await page.goto(broker.url);
  await page.locator("#token").waitFor();
  await page.fill("#token", "not-a-token");
  await page.click("#sign-in");
  await page.locator("#sign-in-reason", { hasText: "did not accept" }).waitFor();
  await shot("sign-in");
  await page.fill("#token", broker.token);
  await page.click("#sign-in");
  await page.locator(".cm-content").waitFor();
  // Only the token is kept in the browser, for this tab.
  const stored = await page.evaluate(() => ({
    session: Object.keys(sessionStorage),
    local: Object.keys(localStorage),
    cookies: document.cookie,
  }));
  assert.deepEqual(stored, { session: ["flinkbroker.token"], local: [], cookies: "" });
});

test("a batch query finishes and its typed rows fill the table; CSV downloads them", async () => {
  const jobId = await run(TYPED, { labels: "suite=console, kind=typed" });
  await waitForState("FINISHED");
  await page.locator("#results-status[data-end=END_OF_RESULTS]").waitFor();
  const headers = await page.locator("#results thead th").allTextContents();
  assert.deepEqual(headers, [
    "op", "c_int", "c_str", "c_null", "c_bool", "c_arr", "c_map", "c_row", "c_date", "c_time", "c_ts",
    "c_dec", "c_bytes",
  ]);
  const cells = page.locator("#results tbody tr").first().locator("td");
  assert.deepEqual(await cells.allTextContents(), [
    "+I", "1", "a,b", "NULL", "true", "[1, 2]", "{k=1}", "(1, x)", "2024-01-02", "03:04:05",
    "2024-01-02 03:04:05.678", "1.50", "x'cafe'",
  ]);
  const types = await cells.evaluateAll((tds) => tds.slice(1).map((td) => [td.dataset.type, td.className]));
  assert.deepEqual(types[0], ["INTEGER", "num"]);
  assert.deepEqual(types[2], ["INTEGER", "num null"]);
  assert.deepEqual(types[10], ["DECIMAL", "num"]);
  assert.equal(types[7][0], "DATE");
  await shot("job-finished");

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-csv")]);
  assert.equal(download.suggestedFilename(), `${jobId}-statement-1.csv`);
  const csv = readFileSync(await download.path(), "utf8");
  assert.equal(
    csv,
    "op,c_int,c_str,c_null,c_bool,c_arr,c_map,c_row,c_date,c_time,c_ts,c_dec,c_bytes\r\n" +
      // The row kind, like any text a spreadsheet would take for a formula, is kept as text.
      '\'+I,1,"a,b",NULL,true,"[1, 2]",{k=1},"(1, x)",2024-01-02,03:04:05,2024-01-02 03:04:05.678,1.50,x\'cafe\'\r\n',
  );
});

test("a streaming aggregation shows its changelog with each row's kind", async () => {
  await run(CHANGELOG, { mode: "streaming", labels: "suite=console, kind=changelog", screenshot: "editor" });
  await page.locator("#results-status[data-end=END_OF_RESULTS]").waitFor();
  await waitForState("FINISHED");
  const kinds = await page.locator("#results tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.kind));
  assert.equal(kinds.length, 30 + kinds.filter((k) => k === "-U").length);
  assert.ok(kinds.includes("-U") && kinds.includes("+U"), `kinds: ${kinds.join(" ")}`);
  assert.equal(
    kinds.filter((k) => k === "-U").length,
    kinds.filter((k) => k === "+U").length,
  );
  await shot("changelog");
});

test("a failing statement's root cause is on the job page", async () => {
  await run(FAILING, { labels: "suite=console, kind=failing" });
  await waitForState("FAILED");
  const error = page.locator("#statements tr[data-statement='0'] .statement-error");
  assert.equal((await error.textContent())?.trim(), ROOT_CAUSE);
  assert.match((await page.locator("#state-reason").textContent()) ?? "", /SQL parse failed/);
  const history = await page.locator("#history tbody tr td:nth-child(2)").allTextContents();
  assert.deepEqual(history.at(-1), "FAILED");
  assert.ok(history.includes("PENDING"), `history: ${history.join(" → ")}`);
  await shot("job-failed");
});

test("a Python job's page shows why its submitter failed and what it printed", async () => {
  const script = join(broker.workdir, "wordcount.py");
  writeFileSync(script, "print('counting words')\n");
  broker.setFlinkBehaviour("echo 'the cluster refused the program' >&2\nexit 1\n");
  try {
    const jobId = (await broker.cli(["python", "run", script, "--label", "suite=python"])).trim();
    assert.match(jobId, /^[0-9a-f-]{36}$/);
    await page.goto(`${broker.url}#/jobs/${jobId}`);
    await waitForState("FAILED");
  } finally {
    broker.setFlinkBehaviour("exit 0\n");
  }
  assert.match((await page.locator("#state-reason").textContent()) ?? "", /^the submitter failed \(exit code 1\)/);
  await page.locator("#submitter-output", { hasText: "the cluster refused the program" }).waitFor();
  assert.equal(await page.locator("#statements").isVisible(), false);
  await shot("python-failed");
});

test("the jobs list filters by state and label", async () => {
  await page.goto(`${broker.url}#/jobs`);
  await page.locator("#jobs[data-filter='']").waitFor();
  assert.equal(await page.locator("#jobs tbody tr[data-job-id]").count(), 4);

  await page.selectOption("#state-filter", { label: "FAILED" });
  await page.click("#apply-filter");
  await page.locator("#jobs[data-filter='state=5']").waitFor();
  const failed = await page.locator("#jobs tbody tr[data-job-id] td:nth-child(3)").allTextContents();
  assert.deepEqual(failed, ["FAILED", "FAILED"]);

  await page.selectOption("#state-filter", "");
  await page.fill("#label-filter", "kind=changelog");
  await page.click("#apply-filter");
  await page.locator("#jobs[data-filter='label=kind%3Dchangelog']").waitFor();
  const labelled = await page.locator("#jobs tbody tr[data-job-id] td:nth-child(4)").allTextContents();
  assert.equal(labelled.length, 1);
  assert.match(labelled[0], /kind=changelog/);
  await shot("jobs");
});

test("Validate marks an invalid statement at its line and shows each plan", async () => {
  await page.goto(`${broker.url}#/`);
  await typeScript(
    page,
    "CREATE TABLE src (id INT, k STRING) WITH ('connector'='datagen');\nSELECT k,\n  COUNT(*) FROM nope GROUP BY k;",
  );
  await page.selectOption("#mode", "streaming");
  await page.click("#validate");
  await page.locator("#validation", { hasText: "1 invalid statement" }).waitFor();
  const marked = page.locator(".cm-lintRange-error");
  await marked.first().waitFor();
  // The marker is on the script's third line, over the unknown table's name.
  const where = await page.evaluate(() => {
    const range = document.querySelector(".cm-lintRange-error");
    const line = range.closest(".cm-line");
    return {
      line: [...document.querySelectorAll(".cm-content .cm-line")].indexOf(line) + 1,
      text: range.textContent,
    };
  });
  assert.deepEqual(where, { line: 3, text: "nope" });
  assert.match(await page.textContent("#validation"), /Object 'nope' not found/);
  await shot("validate-invalid");

  await typeScript(
    page,
    "CREATE TABLE src (id INT, k STRING) WITH ('connector'='datagen');\nSELECT k, COUNT(*) FROM src GROUP BY k;",
  );
  await page.click("#validate");
  await page.locator("#validation", { hasText: "Valid: 2 statements" }).waitFor();
  assert.equal(await page.locator(".cm-lintRange-error").count(), 0);
  await page.click("#plans-panel summary");
  const plan = await page.textContent("#plans .plan[data-statement='1'] pre");
  assert.match(plan, /== Optimized Execution Plan ==/);
  await shot("validate-plans");
});

test("a running job takes a savepoint from its page", async () => {
  const jobId = await run(
    "CREATE TABLE gen (id INT) WITH ('connector'='datagen');\nCREATE TABLE sink (id INT) WITH ('connector'='blackhole');\nINSERT INTO sink SELECT * FROM gen;",
    { mode: "streaming" },
  );
  await waitForState("RUNNING");
  page.once("dialog", (dialog) => dialog.accept("file:///savepoints/console"));
  await page.click("#savepoint");
  const row = page.locator("#savepoints tbody tr", { hasText: "COMPLETED" });
  await row.waitFor();
  assert.match(await row.textContent(), /TRIGGERED.*file:\/savepoints\/console\/savepoint-/);
  assert.match(await page.textContent(".summary"), /Savepoint/);
  await shot("savepoint");
  page.once("dialog", (dialog) => dialog.accept());
  await page.click("#cancel");
  await waitForState("CANCELED");
  assert.ok(jobId);
});

test("signing out forgets the token", async () => {
  await page.click("#sign-out");
  await page.locator("#token").waitFor();
  assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), []);
});
