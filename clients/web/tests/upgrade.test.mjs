// Upgrading a running SQL job from its page, in Chromium against the real broker and the SQL
// Gateway stand-in: the Upgrade dialog's script and line diff, a refused script, the new
// revision restoring from the savepoint the previous one stopped with, the lineage, and a
// revision that fails to start rolled back. Screenshots go to target/console-screenshots/.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { Broker, openPage, typeScript } from "./broker.mjs";

const REPO = resolve(import.meta.dirname, "../../..");
const SHOTS = join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "console-screenshots");

const TABLES = [
  "CREATE TABLE gen (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000');",
  "CREATE TABLE sink_a (id INT) WITH ('connector'='blackhole');",
  "CREATE TABLE sink_b (id INT) WITH ('connector'='blackhole');",
];
const SCRIPT = [...TABLES, "INSERT INTO sink_a SELECT * FROM gen"].join("\n");
/** The script with its INSERT writing to sink_b, reading `source`. */
const upgraded = (source) => [...TABLES, `INSERT INTO sink_b SELECT * FROM ${source};`].join("\n");
const SAVEPOINTS = "file:///savepoints/console-upgrades";

let broker;
let browser;
let page;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  // A new revision counts as started once its Flink job has run for 100 ms.
  broker = await Broker.start({ flags: ["--upgrade-running-for", "100ms"] });
  ({ browser, page } = await openPage({ viewport: { width: 1280, height: 900 } }));
  await page.goto(broker.url);
  await page.fill("#token", broker.token);
  await page.click("#sign-in");
  await page.locator(".cm-content").waitFor();
});

after(async () => {
  await browser?.close();
  await broker?.stop();
});

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Runs `script` in streaming mode from the editor; resolves to the job's id once it runs. */
async function runStreaming(script) {
  await page.goto(`${broker.url}#/`);
  await typeScript(page, script);
  await page.selectOption("#mode", "streaming");
  await page.click("#run");
  await page.waitForURL(/#\/jobs\/[0-9a-f-]+$/);
  await waitForState("RUNNING");
  return page.url().split("/").at(-1);
}

async function waitForState(state) {
  await page.locator("#job-state", { hasText: state }).waitFor();
}

/** Submits the open Upgrade dialog; resolves to the new revision's id once its page shows. */
async function submitUpgrade(previous) {
  await page.click("#upgrade-submit");
  await page.waitForURL((url) => /^#\/jobs\/[0-9a-f-]+$/.test(url.hash) && url.hash !== `#/jobs/${previous}`);
  await page.locator("#revision").waitFor();
  return page.url().split("/").at(-1);
}

async function cancelJob() {
  page.once("dialog", (dialog) => dialog.accept());
  await page.click("#cancel");
  await waitForState("CANCELED");
}

test("a running job is upgraded from its page to a revision restored from its savepoint", async () => {
  const first = await runStreaming(SCRIPT);
  assert.equal(await page.textContent("#revision"), `revision 1 of lineage ${first}`);
  assert.equal(await page.locator("#upgrade-summary").isVisible(), false);

  await page.click("#upgrade");
  const dialog = page.locator("#upgrade-dialog");
  await dialog.waitFor();
  // The editor holds the running script, a statement a line, each ended by its semicolon.
  assert.deepEqual(await dialog.locator(".cm-line").allTextContents(), [
    ...TABLES,
    "INSERT INTO sink_a SELECT * FROM gen;",
    "",
  ]);
  await dialog.locator("#upgrade-diff-summary", { hasText: "No changes" }).waitFor();

  // A script that reads an unknown table is refused before anything stops; the dialog says why.
  await typeScript(page, upgraded("gne"), dialog);
  await page.click("#upgrade-submit");
  const refusal = dialog.locator("#upgrade-error");
  await refusal.filter({ hasText: "InvalidArgument" }).waitFor();
  assert.match(
    await refusal.textContent(),
    /^InvalidArgument: script: statement 4 \(line 4, column 34\) is invalid: .*Object 'gne' not found$/,
  );
  assert.equal(await page.textContent("#job-state"), "RUNNING");

  await typeScript(page, upgraded("gen"), dialog);
  await dialog.locator("#upgrade-diff-summary", { hasText: "1 line added, 1 removed" }).waitFor();
  assert.deepEqual(await dialog.locator("#upgrade-diff .diff-removed .diff-text").allTextContents(), [
    "INSERT INTO sink_a SELECT * FROM gen;",
  ]);
  assert.deepEqual(await dialog.locator("#upgrade-diff .diff-added .diff-text").allTextContents(), [
    "INSERT INTO sink_b SELECT * FROM gen;",
  ]);
  assert.deepEqual(await dialog.locator("#upgrade-diff .diff-line .diff-sign").allTextContents(), [
    " ", " ", " ", "-", "+",
  ]);
  await dialog.locator("#upgrade-directory").fill(SAVEPOINTS);
  await dialog.locator("#upgrade-format").selectOption("native");
  await dialog.locator("#upgrade-allow-non-restored").check();
  await shot("upgrade-dialog");

  const second = await submitUpgrade(first);
  assert.equal(await page.locator("#upgrade-dialog").count(), 0);
  assert.equal(await page.textContent("#revision"), `revision 2 of lineage ${first}`);
  await page.locator("#upgrade-step", { hasText: "DONE" }).waitFor();
  await waitForState("RUNNING");
  assert.equal(await page.textContent("#upgrade-kind"), "Upgrade");
  const chain = await page.locator("#savepoint-chain li").allTextContents();
  assert.equal(chain.length, 1, `chain: ${chain.join(", ")}`);
  assert.match(chain[0], /^file:\/savepoints\/console-upgrades\/savepoint-/);
  assert.equal(
    await page.textContent("#restored-from"),
    `${chain[0]} (claim mode NO_CLAIM, non-restored state allowed)`,
  );
  assert.match(await page.textContent("#upgrade-summary"), /file:\/\/\/savepoints\/console-upgrades, native/);
  assert.equal(await page.getAttribute("#previous-revision", "href"), `#/jobs/${first}`);
  assert.equal(await page.locator("#rollback-revision").count(), 0);
  assert.match(await page.textContent("#statements tr[data-statement='3']"), /INSERT INTO sink_b SELECT \* FROM gen/);
  const reasons = await page.locator("#history tbody tr td:nth-child(3)").allTextContents();
  assert.ok(reasons.some((r) => r.startsWith("upgrade done: revision 2 runs")), reasons.join("\n"));
  await shot("upgrade-done");

  // The previous revision stopped with the savepoint the new one restored from.
  await page.click("#previous-revision");
  await page.waitForURL((url) => url.hash === `#/jobs/${first}`);
  await waitForState("CANCELED");
  const stop = page.locator("#savepoints tbody tr", { hasText: "STOP" });
  assert.match(await stop.textContent(), /COMPLETED/);
  assert.ok((await stop.textContent()).includes(chain[0]), await stop.textContent());
  assert.equal(await page.locator("#upgrade").isVisible(), false);

  // The lineage lists both revisions, newest first.
  await page.click("#lineage");
  await page.locator(`#jobs[data-filter='lineage=${first}']`).waitFor();
  const rows = page.locator("#jobs tbody tr[data-job-id]");
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.jobId)), [second, first]);
  assert.deepEqual(await rows.locator("td:nth-child(5)").allTextContents(), ["2", "1"]);
  await shot("upgrade-lineage");

  await page.goto(`${broker.url}#/jobs/${second}`);
  await waitForState("RUNNING");
  await cancelJob();
});

test("a revision that fails to start is rolled back, and its page links the rollback", async () => {
  const first = await runStreaming(SCRIPT);
  await page.click("#upgrade");
  const dialog = page.locator("#upgrade-dialog");
  await dialog.waitFor();
  // Not validated first: the new revision fails when it is submitted.
  await typeScript(page, upgraded("missing_table"), dialog);
  await dialog.locator("#upgrade-validate").uncheck();
  await dialog.locator("#upgrade-directory").fill(SAVEPOINTS);
  const second = await submitUpgrade(first);

  await page.locator("#upgrade-step", { hasText: "ROLLED_BACK" }).waitFor();
  await waitForState("FAILED");
  assert.match(await page.textContent("#upgrade-note"), /^failed to start \(.*missing_table/s);
  const rollback = page.locator("#rollback-revision");
  const third = await rollback.textContent();
  assert.match(third, /^[0-9a-f-]{36}$/);
  assert.ok((await page.textContent("#upgrade-note")).includes(`rolled back: revision 3 (job ${third})`));
  assert.equal(await page.locator("#upgrade").isVisible(), false);
  await shot("upgrade-rolled-back");

  await rollback.click();
  await page.waitForURL((url) => url.hash === `#/jobs/${third}`);
  await page.locator("#upgrade-step", { hasText: "DONE" }).waitFor();
  await waitForState("RUNNING");
  assert.equal(await page.textContent("#upgrade-kind"), "Rollback");
  assert.equal(await page.textContent("#revision"), `revision 3 of lineage ${first}`);
  assert.equal(await page.getAttribute("#previous-revision", "href"), `#/jobs/${second}`);
  assert.match(await page.textContent("#statements tr[data-statement='3']"), /INSERT INTO sink_a SELECT \* FROM gen/);
  await cancelJob();
});
