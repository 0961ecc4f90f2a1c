// The console against a broker without authentication: no sign-in, straight to work.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Broker, openPage, typeScript } from "./broker.mjs";

let broker;
let browser;
let page;

before(async () => {
  broker = await Broker.start({ authentication: false });
  ({ browser, page } = await openPage());
});

after(async () => {
  await browser?.close();
  await broker?.stop();
});

test("without authentication the console asks for nothing and runs a query", async () => {
  await page.goto(broker.url);
  await page.locator(".cm-content").waitFor();
  assert.equal(await page.locator("#token").count(), 0);
  assert.equal(await page.locator("#sign-out").count(), 0);
  await typeScript(page, "SELECT 42 AS answer;");
  await page.selectOption("#mode", "batch");
  await page.click("#run");
  await page.locator("#job-state", { hasText: "FINISHED" }).waitFor();
  await page.locator("#results-status[data-end=END_OF_RESULTS]").waitFor();
  assert.deepEqual(await page.locator("#results tbody tr td").allTextContents(), ["+I", "42"]);
  // The job is the anonymous caller's, in the default tenant.
  const tenant = page.locator("dt", { hasText: "Tenant" }).locator("xpath=following-sibling::dd[1]");
  assert.equal(await tenant.textContent(), "default (anonymous)");
  assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), []);
});
