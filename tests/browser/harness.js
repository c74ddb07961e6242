// What every browser test needs: a real `bazaar serve --demo` on a free port with its own data
// directory, Debian's chromium driven by playwright-core, axe-core run on each page, the page's
// Content-Security-Policy reports collected, and screenshots kept under target/browser/.

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
export const shots = process.env.BAZAAR_BROWSER_ARTIFACTS || join(root, "target/browser");

/** `n` distinct free TCP ports on loopback (held open together, so none is handed out twice). */
export async function freePorts(n) {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise((ok, fail) => {
      const s = createServer();
      s.once("error", fail);
      s.listen(0, "127.0.0.1", () => ok(s));
    })),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** A store: `start()` runs it (again, on the same port and data), `stop()` ends it. */
export class Store {
  constructor() {
    this.bin = process.env.BAZAAR_BIN || join(root, "target/debug/bazaar");
    this.data = mkdtempSync(join(tmpdir(), "bazaar-browser-"));
    this.log = "";
  }

  async start() {
    this.port ??= await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    this.proc = spawn(this.bin, ["serve", "--demo", "--data-dir", this.data, "--http", `127.0.0.1:${this.port}`], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stdout.on("data", (d) => (this.log += d));
    this.proc.stderr.on("data", (d) => (this.log += d));
    for (let i = 0; i < 600; i++) {
      try {
        if ((await fetch(`${this.base}/health`)).ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`bazaar serve did not come up:\n${this.log}`);
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const done = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGTERM");
    await done;
  }

  async close() {
    await this.stop();
    rmSync(this.data, { recursive: true, force: true });
  }
}

/** Chromium from Debian (or CHROMIUM), headless. */
export function browser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
}

/** A fresh context (its own storage) at a width: desktop 1280 or phone 360. */
export async function context(b, phone = false) {
  return b.newContext(phone ? { viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true } : { viewport: { width: 1280, height: 860 } });
}

/** Pages opened by the test running now (screenshotted when it fails). */
export const opened = [];

/** A page whose CSP reports and script errors are collected in `page.problems`. */
export async function page(ctx) {
  const p = await ctx.newPage();
  opened.push(p);
  p.problems = [];
  p.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) p.problems.push(m.text());
  });
  p.on("pageerror", (e) => p.problems.push(`page error: ${e.message}`));
  return p;
}

/**
 * Signs up through the sign-up page of the store at `base` and waits for the account page.
 * `onForm(p)` runs once the page is there, before the form is filled.
 */
export async function signUpAt(p, base, { email, password, name, lastName }, onForm = async () => {}) {
  await p.goto(`${base}/#/signup`);
  await p.getByRole("heading", { name: "Create an account" }).waitFor();
  await onForm(p);
  await p.getByLabel("First name").fill(name);
  await p.getByLabel("Last name").fill(lastName);
  await p.getByLabel("Email").fill(email);
  await p.getByLabel("Password (at least 8 characters)").fill(password);
  await p.getByRole("button", { name: "Create account" }).click();
  await p.getByRole("heading", { name: "Your account" }).waitFor();
}

/**
 * Logs in through the login page of the store at `base` and waits to land on the account or
 * the staff screens. `onForm(p)` runs once the page is there.
 */
export async function logInAt(p, base, email, password, onForm = async () => {}) {
  await p.goto(`${base}/#/login`);
  await p.getByRole("heading", { name: "Log in" }).waitFor();
  await onForm(p);
  await p.getByLabel("Email").fill(email);
  await p.getByLabel("Password").fill(password);
  await p.getByRole("button", { name: "Log in" }).click();
  await p.waitForURL(/#\/(account|staff)/);
}

/** Serious and critical accessibility violations axe-core finds on the page now. */
export async function axe(p) {
  await p.evaluate(axeSource);
  const r = await p.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return r.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/**
 * `node:test`'s test, plus: when it fails, a screenshot of each page it left open
 * (`FAILED-{n}.png`) and the text of each page's main region in the error.
 */
export function clicked(name, body) {
  return import("node:test").then(({ test }) =>
    test(name, async (t) => {
      opened.length = 0;
      try {
        await body(t);
      } catch (e) {
        let n = 0;
        for (const p of opened.filter((x) => !x.isClosed())) {
          n += 1;
          await shot(p, `FAILED-${name.slice(0, 40).replaceAll(/[^a-z0-9]+/gi, "-")}-${n}`).catch(() => {});
          const text = await p.locator("main").innerText({ timeout: 1000 }).catch(() => "(no main)");
          e.message += `\n--- page ${n} at ${p.url()}:\n${text.slice(0, 1500)}`;
        }
        throw e;
      }
    }),
  );
}

/** Keeps a screenshot of the page as `{name}.png`. */
export async function shot(p, name) {
  mkdirSync(shots, { recursive: true });
  await p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}
