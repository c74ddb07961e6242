// Lighthouse (npm) against Debian's chromium on the demo catalogue and a product page:
// performance, accessibility and best practices must each score at least 90. The scores and
// the catalogue's transferred bytes are printed (BENCHMARKS.md quotes them) and kept in
// target/browser/lighthouse.json.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as chromeLauncher from "chrome-launcher";
import lighthouse from "lighthouse";
import { Store, shots } from "./harness.js";

let store;
let chrome;

before(async () => {
  store = new Store();
  await store.start();
  chrome = await chromeLauncher.launch({
    chromePath: process.env.CHROMIUM || "/usr/bin/chromium",
    chromeFlags: ["--headless=new", "--no-sandbox", "--disable-gpu"],
  });
});

after(async () => {
  await chrome?.kill();
  await store?.close();
});

const CATEGORIES = ["performance", "accessibility", "best-practices"];
const found = {};

async function audit(name, url) {
  const r = await lighthouse(url, { port: chrome.port, output: "json", logLevel: "error", onlyCategories: CATEGORIES });
  const lhr = r.lhr;
  const scores = Object.fromEntries(CATEGORIES.map((c) => [c, Math.round(lhr.categories[c].score * 100)]));
  const bytes = lhr.audits["total-byte-weight"].numericValue;
  const failing = Object.values(lhr.audits)
    .filter((a) => a.score !== null && a.score < 0.9 && a.scoreDisplayMode !== "informative" && a.scoreDisplayMode !== "notApplicable")
    .map((a) => `${a.id}: ${a.title}`);
  const metric = (id) => Math.round(lhr.audits[id].numericValue * 1000) / 1000;
  found[name] = { url, scores, transferredBytes: bytes, fcpMs: metric("first-contentful-paint"), lcpMs: metric("largest-contentful-paint"), tbtMs: metric("total-blocking-time"), cls: metric("cumulative-layout-shift"), speedIndexMs: metric("speed-index") };
  console.log(`lighthouse ${name}: ${JSON.stringify(found[name])}`);
  mkdirSync(shots, { recursive: true });
  writeFileSync(join(shots, "lighthouse.json"), JSON.stringify(found, null, 2));
  for (const c of CATEGORIES) assert.ok(scores[c] >= 90, `${name} ${c} scored ${scores[c]}; below 0.9: ${failing.join("; ")}`);
}

test("lighthouse: the demo catalogue scores 90 or more in performance, accessibility and best practices", async () => {
  await audit("catalogue", `${store.base}/`);
});

test("lighthouse: a product page scores 90 or more in performance, accessibility and best practices", async () => {
  await audit("product", `${store.base}/#/product/book-moby-dick`);
});
