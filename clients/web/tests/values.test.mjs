// The console prints values as the CLI does: both check themselves against the shared cases in
// tests/fixtures/value-text.json (the CLI in src/cli/values.rs).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { build } from "esbuild";

const REPO = resolve(import.meta.dirname, "../../..");
const { cases } = JSON.parse(readFileSync(join(REPO, "tests", "fixtures", "value-text.json"), "utf8"));

/** src/values.ts (and the generated types it uses), bundled in memory and imported. */
async function load() {
  const bundled = await build({
    entryPoints: [join(import.meta.dirname, "..", "src", "values.ts")],
    bundle: true,
    format: "esm",
    write: false,
    logLevel: "error",
  });
  const code = Buffer.from(bundled.outputFiles[0].contents).toString("base64");
  return import(`data:text/javascript;base64,${code}`);
}

const DOUBLES = { inf: Infinity, "-inf": -Infinity, NaN: NaN };

function value(type, text) {
  const stamp = () => {
    const [seconds, nanos] = text.split(":");
    return { seconds: BigInt(seconds), nanos: Number(nanos) };
  };
  switch (type) {
    case "double":
      return { kind: { case: "doubleValue", value: DOUBLES[text] ?? Number(text) } };
    case "date":
      return { kind: { case: "dateValue", value: Number(text) } };
    case "time":
      return { kind: { case: "timeValue", value: BigInt(text) } };
    case "timestamp":
      return { kind: { case: "timestampValue", value: stamp() } };
    case "instant":
      return { kind: { case: "instantValue", value: stamp() } };
    default:
      throw new Error(`unknown type ${type}`);
  }
}

test("values read as the shared cases say", async () => {
  const { text } = await load();
  assert.ok(cases.length > 20);
  for (const c of cases) {
    assert.equal(text(value(c.type, c.value)), c.text, JSON.stringify(c));
  }
});

test("CSV fields: quoted where needed, formulas kept as text", async () => {
  const { csvRecord, csvText } = await load();
  assert.equal(csvRecord(["a", "b,c", 'say "hi"', "two\nlines"]), 'a,"b,c","say ""hi""","two\nlines"');
  assert.deepEqual(
    ["=1+1", "+I", "-U", "@SUM(A1)", "\tx", "plain", "1-2"].map(csvText),
    ["'=1+1", "'+I", "'-U", "'@SUM(A1)", "'\tx", "plain", "1-2"],
  );
});
