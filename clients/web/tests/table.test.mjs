// The results pane's Changelog/Table switch, in Chromium against the real broker and the SQL
// Gateway stand-in: a streaming aggregation's table, one row per group, updated in place as its
// changes arrive; a bounded one's table, equal to its changelog applied; and a table over the
// broker's --max-table-rows refused in the pane, its changelog still readable. Screenshots go
// to target/console-screenshots/.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { Broker, openPage, typeScript } from "./broker.mjs";

const REPO = resolve(import.meta.dirname, "../../..");
const SHOTS = join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "console-screenshots");

/** Clicks of four users, from a datagen table with `options`, counted per user. */
const clicks = (options) =>
  `CREATE TABLE clicks (user_id INT, url STRING) WITH ('connector'='datagen', ${options},
  'fields.user_id.min'='1', 'fields.user_id.max'='4', 'fields.url.length'='8');
SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id;`;
const UNBOUNDED = clicks("'rows-per-second'='50'");
const BOUNDED_ROWS = 60;
const BOUNDED = clicks(`'rows-per-second'='30', 'number-of-rows'='${BOUNDED_ROWS}'`);

let broker;
let browser;
let page;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  broker = await Broker.start();
  ({ browser, page } = await openPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true }));
  await signIn(page, broker);
});

after(async () => {
  await browser?.close();
  await broker?.stop();
});

async function signIn(on, to) {
  await on.goto(to.url);
  await on.fill("#token", to.token);
  await on.click("#sign-in");
  await on.locator(".cm-content").waitFor();
}

async function shot(on, name) {
  await on.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Runs `script` in streaming mode from the editor; resolves to the job's id once its page shows. */
async function runStreaming(on, at, script) {
  await on.goto(`${at.url}#/`);
  await typeScript(on, script);
  await on.selectOption("#mode", "streaming");
  await on.click("#run");
  await on.waitForURL(/#\/jobs\/[0-9a-f-]+$/);
  return on.url().split("/").at(-1);
}

/** The changelog shown: [kind, user_id, clicks] a row. */
function changelogRows(on) {
  return on.locator("#results tbody tr").evaluateAll((rows) =>
    rows.map((tr) => [tr.dataset.kind, ...Array.from(tr.cells, (td) => Number(td.textContent)).slice(1)]),
  );
}

/** The table shown: [user_id, clicks] a row, in the order shown. */
function tableRows(on) {
  return on.locator("#results tbody tr:not([hidden])").evaluateAll((rows) =>
    rows.map((tr) => Array.from(tr.cells, (td) => Number(td.textContent))),
  );
}

/**
 * Waits until the table shows four rows (an update whose -U and +U came in two messages leaves
 * three for a moment); resolves to them ([user_id, clicks] a row, in the order shown) and to
 * the marks of every row element the table has, hidden ones too.
 */
async function fourRows(on) {
  const found = await on.waitForFunction(() => {
    const all = [...document.querySelectorAll("#results tbody tr")];
    const shown = all.filter((tr) => !tr.hidden);
    return (
      shown.length === 4 && {
        rows: shown.map((tr) => Array.from(tr.cells, (td) => Number(td.textContent))),
        marks: all.map((tr) => tr.dataset.watched ?? ""),
      }
    );
  });
  return found.jsonValue();
}

/** Rows sorted by their values, for comparing tables whatever their order. */
function sorted(rows) {
  return [...rows].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

async function pressed(on) {
  return {
    changelog: await on.getAttribute("#view-changelog", "aria-pressed"),
    table: await on.getAttribute("#view-table", "aria-pressed"),
  };
}

test("a streaming aggregation's table keeps one row per user, each count updated in place", async () => {
  await runStreaming(page, broker, UNBOUNDED);
  // The changelog shows first, with each row's kind.
  await page.locator("#results tbody tr[data-kind='+U']").first().waitFor();
  assert.deepEqual(await pressed(page), { changelog: "true", table: "false" });

  // The switch works from the keyboard: an arrow moves to Table, Space presses it.
  await page.focus("#view-changelog");
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "view-table");
  await page.keyboard.press("Space");
  await page.locator(".results[data-view='table']").waitFor();
  assert.deepEqual(await pressed(page), { changelog: "false", table: "true" });
  const { rows: first } = await fourRows(page);
  assert.deepEqual(await page.locator("#results thead th").allTextContents(), ["user_id", "clicks"]);
  assert.equal(await page.locator("#results td.kind").count(), 0);
  assert.deepEqual(first.map(([user]) => user).sort(), [1, 2, 3, 4]);
  // Each row element is marked, to tell an update in place from a row added.
  await page.evaluate(() =>
    document.querySelectorAll("#results tbody tr").forEach((tr, i) => {
      tr.dataset.watched = String(i);
    }),
  );
  // Every user's count grows, each in its own row.
  await page.waitForFunction(
    (counts) =>
      counts.every((count, i) => {
        const tr = document.querySelector(`#results tbody tr[data-watched='${i}']`);
        return tr !== null && !tr.hidden && Number(tr.cells[1].textContent) > count;
      }),
    first.map(([, count]) => count),
  );
  const { rows: later, marks } = await fourRows(page);
  assert.deepEqual(
    later.map(([user]) => user),
    first.map(([user]) => user),
    "each user keeps its place",
  );
  later.forEach(([, count], i) => assert.ok(count > first[i][1], `user ${later[i][0]}: ${first[i][1]} → ${count}`));
  // No row was added: the four rows are the ones shown at first, updated.
  assert.deepEqual(marks, ["0", "1", "2", "3"]);
  await page.locator("#results-status", { hasText: /^4 rows · \d+ changes applied since row \d+/ }).waitFor();
  await shot(page, "results-table");

  // Back to the changelog: the stream starts again from the first row, with each row's kind.
  await page.click("#view-changelog");
  await page.locator(".results[data-view='changelog']").waitFor();
  assert.deepEqual(await pressed(page), { changelog: "true", table: "false" });
  await page.locator("#results tbody tr[data-kind='-U']").first().waitFor();
  await page.locator("#results tbody tr[data-kind='+U']").first().waitFor();
  assert.deepEqual(await page.locator("#results thead th").allTextContents(), ["op", "user_id", "clicks"]);

  page.once("dialog", (dialog) => dialog.accept());
  await page.click("#cancel");
  await page.locator("#job-state", { hasText: "CANCELED" }).waitFor();
});

test("a finished aggregation's table is its changelog applied", async () => {
  const jobId = await runStreaming(page, broker, BOUNDED);
  await page.locator("#job-state", { hasText: "FINISHED" }).waitFor();
  await page.locator(".results[data-view='changelog'] #results-status[data-end=END_OF_RESULTS]").waitFor();
  const changelog = await changelogRows(page);
  assert.ok(changelog.some(([kind]) => kind === "-U"), `kinds: ${changelog.map(([kind]) => kind).join(" ")}`);

  // The changelog applied by hand: +I and +U add a row, -U and -D take one away.
  const held = new Map();
  for (const [kind, ...values] of changelog) {
    const key = JSON.stringify(values);
    const count = (held.get(key) ?? 0) + (kind.startsWith("+") ? 1 : -1);
    assert.ok(count >= 0, `${kind} ${key} takes away a row the table does not hold`);
    if (count === 0) held.delete(key);
    else held.set(key, count);
  }
  const expected = [...held].flatMap(([key, count]) => Array(count).fill(JSON.parse(key)));

  await page.click("#view-table");
  await page.locator(".results[data-view='table'] #results-status[data-end=END_OF_RESULTS]").waitFor();
  const table = await tableRows(page);
  assert.deepEqual(sorted(table), sorted(expected));
  assert.deepEqual(table.map(([user]) => user).sort(), [1, 2, 3, 4]);
  assert.equal(table.reduce((sum, [, count]) => sum + count, 0), BOUNDED_ROWS);
  assert.equal(await page.textContent("#results-status"), "4 rows · all results");
  await shot(page, "results-table-finished");

  // The download is the table as shown, without row kinds.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-csv")]);
  assert.equal(download.suggestedFilename(), `${jobId}-statement-2-table.csv`);
  assert.equal(
    readFileSync(await download.path(), "utf8"),
    ["user_id,clicks", ...table.map((row) => row.join(","))].map((line) => `${line}\r\n`).join(""),
  );
});

test("a table over the broker's --max-table-rows is refused in the pane; the changelog still reads", async () => {
  const small = await Broker.start({ flags: ["--max-table-rows", "2"] });
  const { browser: other, page: on } = await openPage({ viewport: { width: 1280, height: 900 } });
  try {
    await signIn(on, small);
    await runStreaming(on, small, BOUNDED);
    await on.locator("#job-state", { hasText: "FINISHED" }).waitFor();
    await on.locator("#results-status[data-end=END_OF_RESULTS]").waitFor();

    await on.click("#view-table");
    const refused = on.locator(".results[data-view='table'] #results-status.error");
    await refused.waitFor();
    const message = await refused.textContent();
    assert.match(message, /^Results stopped: FailedPrecondition: /);
    assert.match(message, /holds more than 2 distinct rows \(--max-table-rows\)/);
    assert.equal(await on.locator("#results tbody tr").count(), 0);
    await shot(on, "results-table-refused");

    await on.click("#view-changelog");
    await on.locator(".results[data-view='changelog'] #results-status[data-end=END_OF_RESULTS]").waitFor();
    assert.equal(await on.locator("#results-status.error").count(), 0);
    const kinds = await on.locator("#results tbody tr").evaluateAll((rows) => rows.map((tr) => tr.dataset.kind));
    assert.equal(kinds.length, BOUNDED_ROWS + kinds.filter((kind) => kind === "-U").length);
  } finally {
    await other.close();
    await small.stop();
  }
});
