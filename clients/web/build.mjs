// Bundles the console into dist/ (embedded in the broker binary by src/console.rs):
// index.html, assets/console.js (minified, one file, and gzipped beside it) and
// assets/console.css. The output depends
// only on the sources and the locked package versions, so a rebuild gives the same bytes.
import { build } from "esbuild";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";

const dist = new URL("./dist/", import.meta.url);
await rm(dist, { recursive: true, force: true });
await mkdir(new URL("assets/", dist), { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  outfile: "dist/assets/console.js",
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  sourcemap: false,
  charset: "utf8",
  logLevel: "warning",
});
await copyFile(new URL("./src/index.html", import.meta.url), new URL("index.html", dist));
await copyFile(new URL("./src/console.css", import.meta.url), new URL("assets/console.css", dist));
// Served to browsers that accept gzip; zlib writes no timestamp, so the bytes are reproducible.
const script = await readFile(new URL("assets/console.js", dist));
const gzipped = gzipSync(script, { level: 9 });
await writeFile(new URL("assets/console.js.gz", dist), gzipped);
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`dist/assets/console.js: ${kib(script.length)} (${kib(gzipped.length)} gzipped)`);
