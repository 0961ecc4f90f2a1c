// Runs the real broker (with authentication on, or off) against the SQL Gateway stand-in for
// the browser tests, and opens Chromium on it. The binaries come from FLINKBROKER_BIN and FLINKBROKER_STANDIN_BIN, by default
// the debug builds under the repository's target/.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const REPO = resolve(import.meta.dirname, "../../..");
const TARGET = process.env.CARGO_TARGET_DIR ?? join(REPO, "target");
const BROKER_BIN = process.env.FLINKBROKER_BIN ?? join(TARGET, "debug", "flinkbroker");
const STANDIN_BIN =
  process.env.FLINKBROKER_STANDIN_BIN ?? join(TARGET, "debug", "sql_gateway_standin");
const STARTUP_DEADLINE_MS = 30_000;

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

async function eventually(what, check) {
  const end = Date.now() + STARTUP_DEADLINE_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`${what}: not within ${STARTUP_DEADLINE_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function answers(url, { anyStatus = false } = {}) {
  try {
    const response = await fetch(url);
    return anyStatus || response.ok;
  } catch {
    return false;
  }
}

/**
 * Chromium's flags for these tests: headless as root, and none of its own network traffic
 * (this machine's closed network refuses it, many connections at a time).
 */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Launches headless Chromium (CHROMIUM, else Debian's) and opens a page whose waits time out
 * after 30 s and on which any uncaught error fails the test.
 */
export async function openPage(contextOptions = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
  const context = await browser.newContext(contextOptions);
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  page.on("pageerror", (error) => assert.fail(`the page threw: ${error.message}`));
  return { browser, page };
}

/** Replaces the script of the SQL editor (the one inside `scope`, if given) with `script`. */
export async function typeScript(page, script, scope = page) {
  const editor = scope.locator(".cm-content");
  await editor.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await editor.fill(script);
}

export class Broker {
  /**
   * Starts a stand-in and a broker whose token file knows one submitter token, or with no token
   * file at all (`authentication: false`); `flags` are added to the broker's `serve` flags.
   */
  static async start({ authentication = true, flags = [] } = {}) {
    for (const bin of [BROKER_BIN, STANDIN_BIN]) {
      if (!existsSync(bin)) {
        throw new Error(`build ${bin} first (cargo build -p flinkbroker -p flinkbroker-testkit --bin flinkbroker --bin sql_gateway_standin)`);
      }
    }
    const broker = new Broker();
    broker.authentication = authentication;
    broker.flags = flags;
    await broker.#start();
    return broker;
  }

  workdir = mkdtempSync(join(tmpdir(), "flinkbroker-console-"));
  token = `console-${randomBytes(16).toString("hex")}`;
  processes = [];

  async #start() {
    try {
      await this.#spawnAll();
    } catch (error) {
      // The logs stay for the error to point at.
      await this.stop({ keepLogs: true });
      throw error;
    }
  }

  async #spawnAll() {
    const digest = createHash("sha256").update(this.token).digest("hex");
    writeFileSync(
      join(this.workdir, "tokens.json"),
      JSON.stringify({
        tokens: [{ sha256: digest, principal: "analyst", tenant: "console", roles: ["submitter", "reader"] }],
      }),
    );
    const flinkHome = join(this.workdir, "flink-home");
    mkdirSync(join(flinkHome, "bin"), { recursive: true });
    symlinkSync(join(REPO, "tests", "fixtures", "fake-flink", "flink"), join(flinkHome, "bin", "flink"));
    writeFileSync(join(flinkHome, "behaviour.sh"), "exit 0\n");

    // Each port is taken only once the process before it listens, so the two never collide.
    const gatewayPort = await freePort();
    const gateway = `http://127.0.0.1:${gatewayPort}`;
    this.#spawn("standin", STANDIN_BIN, ["--listen", `127.0.0.1:${gatewayPort}`]);
    await eventually("the stand-in listens", () => {
      if (this.failure) throw this.failure;
      return answers(`${gateway}/v1/info`, { anyStatus: true });
    });
    const port = await freePort();
    this.url = `http://127.0.0.1:${port}/`;
    this.#spawn("broker", BROKER_BIN, [
      "serve",
      "--listen", `127.0.0.1:${port}`,
      "--metrics-listen", "off",
      "--database-url", `sqlite://${this.workdir}/broker.db?mode=rwc`,
      "--sql-gateway-url", gateway,
      "--jobmanager-url", gateway,
      // Without a token file every caller is an anonymous admin (on loopback only).
      ...(this.authentication ? ["--auth-tokens-file", join(this.workdir, "tokens.json")] : []),
      "--flink-home", flinkHome,
      "--submitter-work-dir", join(this.workdir, "submitters"),
      "--poll-interval", "100ms",
      ...this.flags,
    ]);
    await eventually("the broker serves the console", () => {
      if (this.failure) throw this.failure;
      return answers(this.url);
    });
  }

  /** What the fake `flink` launcher does after printing its arguments (sh). */
  setFlinkBehaviour(script) {
    writeFileSync(join(this.workdir, "flink-home", "behaviour.sh"), script);
  }

  /** Runs the broker binary as the command-line client of this broker; resolves to its stdout. */
  async cli(args) {
    const { stdout } = await promisify(execFile)(BROKER_BIN, args, {
      env: { ...process.env, FLINKBROKER_SERVER: this.url.replace(/\/$/, ""), FLINKBROKER_TOKEN: this.token },
      timeout: STARTUP_DEADLINE_MS,
    });
    return stdout;
  }

  #spawn(name, bin, args) {
    const log = openSync(join(this.workdir, `${name}.log`), "w");
    const child = spawn(bin, args, { stdio: ["ignore", log, log] });
    child.once("error", (error) => {
      this.failure = new Error(`${name} (${bin}) could not run: ${error.message}`);
    });
    child.once("exit", (code, signal) => {
      this.failure ??= new Error(`${name} exited (${code ?? signal}); see ${join(this.workdir, `${name}.log`)}`);
    });
    this.processes.push(child);
  }

  /** Stops the processes and removes the work directory, logs too unless asked (or KEEP_LOGS). */
  async stop({ keepLogs = Boolean(process.env.KEEP_LOGS) } = {}) {
    this.failure = undefined;
    await Promise.all(
      this.processes.map(
        (child) =>
          new Promise((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once("exit", done);
            child.kill("SIGTERM");
          }),
      ),
    );
    if (!keepLogs) rmSync(this.workdir, { recursive: true, force: true });
  }
}
