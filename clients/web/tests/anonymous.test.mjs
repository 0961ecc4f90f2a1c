// The console against a broker without authentication: no sign-in, straight to work.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { Broker, CHROMIUM_ARGS } from "./broker.mjs";

let broker;
let browser;
let page;

before(async () => {
  broker = await Broker.start({ authentication: false });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
  const context = await browser.newContext();
  context.setDefaultTimeout(30_000);
  page = await context.newPage();
  page.on("pageerror", (error) => assert.fail(`the page threw: ${error.message}`));
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
  const editor = page.locator(".cm-content");
  await editor.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await editor.fill("SELECT 42 AS answer;");
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
