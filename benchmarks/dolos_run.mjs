// Dolos (@dodona/dolos-lib, default options) on one provenance-benchmark corpus.
//
// usage: node dolos_run.mjs NODE_DIR CORPUS OUT.json
//
// NODE_DIR holds node_modules/@dodona/dolos-lib (the benchmark installs it there with npm);
// CORPUS has indexed/ and scanned/ folders. Dolos analyses one language per run, so each
// language (by extension) is one `analyzePaths` call over its indexed and scanned files. Dolos
// has no query mode: its index holds every file of both sides. Only the pairs the benchmark
// asks about (a scanned file beside an indexed file) are built, which is less work than the
// all-pairs report Dolos makes by default. OUT gets, for each such pair with shared
// fingerprints, its fragments as 1-based inclusive line ranges on both sides. Progress goes
// to stderr.
import fs from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";

const LANGUAGES = { ".py": "python", ".js": "javascript" };

async function walk(dir) {
  const found = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await walk(full)));
    else if (entry.isFile()) found.push(full);
  }
  return found.sort();
}

// Fragments of one pair whose scanned lines overlap or touch become one range (with the hull
// of their indexed lines): the scoring needs lines, and a pair can have thousands of k-gram
// fragments.
function merge(fragments) {
  fragments.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const merged = [];
  for (const f of fragments) {
    const last = merged[merged.length - 1];
    if (last && f[0] <= last[1] + 1) {
      last[1] = Math.max(last[1], f[1]);
      last[2] = Math.min(last[2], f[2]);
      last[3] = Math.max(last[3], f[3]);
    } else {
      merged.push([...f]);
    }
  }
  return merged;
}

const [nodeDir, corpus, out] = process.argv.slice(2);
if (!nodeDir || !corpus || !out) {
  console.error("usage: node dolos_run.mjs NODE_DIR CORPUS OUT.json");
  process.exit(2);
}
const lib = path.join(path.resolve(nodeDir), "node_modules/@dodona/dolos-lib/dist/index.js");
const { Dolos } = await import(pathToFileURL(lib).href);

const indexed = await walk(path.join(corpus, "indexed"));
const scanned = await walk(path.join(corpus, "scanned"));
const rel = (file) => path.relative(corpus, file).split(path.sep).join("/");
const pairs = [];
let files = 0;
const t0 = Date.now();
const stage = (what) => console.error(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
for (const ext of Object.keys(LANGUAGES)) {
  const left = scanned.filter((f) => path.extname(f) === ext);
  const right = indexed.filter((f) => path.extname(f) === ext);
  if (left.length === 0 || right.length === 0) continue;
  const dolos = new Dolos(); // default options: the language is detected from the files
  const report = await dolos.analyzePaths([...left, ...right]);
  files += report.files.length;
  stage(`${ext}: ${report.files.length} files analysed`);
  const byPath = new Map(report.files.map((f) => [f.path, f]));
  for (const s of left) {
    const sFile = byPath.get(s);
    if (!sFile) continue;
    for (const r of right) {
      const rFile = byPath.get(r);
      if (!rFile) continue;
      const pair = report.getPair(sFile, rFile);
      if (pair.leftCovered === 0) continue;
      const fragments = merge(
        pair.buildFragments().map((f) => [
          f.leftSelection.startRow + 1,
          f.leftSelection.endRow + 1,
          f.rightSelection.startRow + 1,
          f.rightSelection.endRow + 1,
        ]),
      );
      if (fragments.length === 0) continue;
      pairs.push({ scanned: rel(s), indexed: rel(r), similarity: pair.similarity, fragments });
    }
  }
  stage(`${ext}: pairs and fragments built`);
}
await fs.writeFile(out, JSON.stringify({ files, pairs }));
stage("written");
