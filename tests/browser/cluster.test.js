// The storefront on a three-node cluster (three real `bazaar serve` processes from one
// cluster.toml on loopback): a shopper uses node-3's page while their orders, the stock and
// the payment live where the partitions put them; node-1's page shows the same account, and
// the operator's cluster view on node-2 shows every node.

import { before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { browser, context, page, axe, shot, freePorts, Store, signUpAt, logInAt, clicked as test } from "./harness.js";

const JWT = "a-cluster-wide-jwt-secret-of-32-bytes!!";
const PAYMENT = "a-cluster-wide-payment-secret";
const bin = new Store().bin;
let dir;
let nodes = [];
let chrome;

async function up(base) {
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const logs = nodes.map((n) => `--- ${n.name}:\n${readFileSync(join(dir, `${n.name}.log`), "utf8").slice(-3000)}`);
  throw new Error(`${base} did not come up\n${logs.join("\n")}`);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "bazaar-cluster-browser-"));
  let file = 'cookie = "browser-test-cookie"\npartitions = 64\n';
  const ports = await freePorts(6);
  for (let i = 1; i <= 3; i++) {
    const [cluster, http] = [ports[2 * i - 2], ports[2 * i - 1]];
    file += `[[node]]\nname = "node-${i}"\ncluster_addr = "127.0.0.1:${cluster}"\nhttp_addr = "127.0.0.1:${http}"\ndata_dir = "d${i}"\n`;
    nodes.push({ name: `node-${i}`, base: `http://127.0.0.1:${http}` });
  }
  writeFileSync(join(dir, "cluster.toml"), file);
  execFileSync(bin, ["user", "add", "--data-dir", join(dir, "d1"), "--email", "admin@cluster.test", "--password", "cluster-admin-pass", "--role", "ADMIN"], { stdio: "pipe" });
  execFileSync(bin, ["user", "add", "--data-dir", join(dir, "d2"), "--email", "ops@cluster.test", "--password", "cluster-ops-pass", "--role", "OPERATOR"], { stdio: "pipe" });
  for (const n of nodes) {
    const log = openSync(join(dir, `${n.name}.log`), "a");
    n.proc = spawn(bin, ["serve", "--config", join(dir, "cluster.toml"), "--node", n.name], {
      env: { ...process.env, BAZAAR_JWT_SECRET: JWT, BAZAAR_PAYMENT_SECRET: PAYMENT },
      stdio: ["ignore", "ignore", log],
    });
  }
  await Promise.all(nodes.map((n) => up(n.base)));
  // The admin (created offline on node-1) adds books and stock through node-2.
  const basic = (u) => `Basic ${Buffer.from(u).toString("base64")}`;
  let token;
  for (let i = 0; i < 100 && !token; i++) {
    const r = await fetch(`${nodes[1].base}/token`, { headers: { Authorization: basic("admin@cluster.test:cluster-admin-pass") } });
    if (r.ok) token = (await r.json()).token;
    else await new Promise((res) => setTimeout(res, 200));
  }
  assert.ok(token, "the admin can log in through node-2");
  const call = async (path, body) => {
    for (let i = 0; i < 50; i++) {
      const r = await fetch(`${nodes[1].base}${path}`, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
      if (r.ok) return r.json();
      if (r.status !== 503) throw new Error(`${path}: ${r.status} ${await r.text()}`);
      await new Promise((res) => setTimeout(res, 200)); // a peer not yet reachable
    }
    throw new Error(`${path}: still 503`);
  };
  for (const [name, price] of [["Persuasion", 1100], ["Emma", 1200], ["Sanditon", 900]]) {
    const p = await call("/product/add", { name, description: `Austen's ${name}.`, price });
    await call("/stock/items", { id: p.id, quantity: 5, weight: 300, length: 200, width: 130, height: 30 });
  }
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  for (const n of nodes) n.proc?.kill("SIGTERM");
  await Promise.all(nodes.map((n) => n.proc && n.proc.exitCode === null && new Promise((r) => n.proc.once("exit", r))));
  rmSync(dir, { recursive: true, force: true });
});

test("the storefront works the same from any node of a cluster", async () => {
  const ctx = await context(chrome);
  const p = await page(ctx);
  const email = `cluster-shopper-${Date.now()}@example.com`;
  // Sign up, shop and pay through node-3.
  await signUpAt(p, nodes[2].base, { email, password: "captain-wentworth", name: "Anne", lastName: "Elliot" });
  await p.goto(`${nodes[2].base}/#/`);
  await p.getByRole("status").filter({ hasText: "3 books" }).waitFor();
  for (const book of ["Persuasion", "Emma", "Sanditon"]) await p.getByRole("button", { name: `Add ${book} to cart` }).click();
  await p.getByRole("link", { name: "Cart (3)" }).click();
  await p.getByText("€32.00").first().waitFor();
  await p.getByRole("button", { name: "Place order" }).click();
  await p.waitForURL(/#\/order\//);
  const id = decodeURIComponent(p.url().split("#/order/")[1]);
  await p.getByRole("status").filter({ hasText: "ready to pay" }).first().waitFor({ timeout: 20_000 });
  await p.getByText("Live: this page follows your order as it changes.").waitFor();
  await p.getByRole("button", { name: "Pay", exact: true }).click();
  await p.getByRole("button", { name: "Pay in full" }).click();
  await p.getByRole("link", { name: "Back to your order in the store" }).click();
  await p.getByRole("status").filter({ hasText: /^Paid/ }).first().waitFor({ timeout: 20_000 });
  await shot(p, "cluster-order-paid-node-3");
  // Node-3 did not hold all of it: it sent commands to the other nodes' gateways.
  const metrics = await (await fetch(`${nodes[2].base}/metrics`)).text();
  const remote = metrics
    .split("\n")
    .filter((l) => l.startsWith("cluster_remote_calls_total{") && l.includes('kind="command",outcome="answered"'))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
  assert.ok(remote > 0, `node-3 made no remote call:\n${metrics.split("\n").filter((l) => l.startsWith("cluster_remote")).join("\n")}`);
  // The same shopper on node-1 sees the same account.
  const otherCtx = await context(chrome);
  const other = await page(otherCtx);
  await logInAt(other, nodes[0].base, email, "captain-wentworth");
  await other.getByRole("heading", { name: "Your orders" }).waitFor();
  await other.getByRole("link", { name: /^Order of / }).click();
  await other.waitForURL(new RegExp(`#/order/${encodeURIComponent(id)}`));
  await other.getByRole("status").filter({ hasText: /^Paid/ }).first().waitFor();
  // The operator's view through node-2: every node reachable, the order listed.
  const opsCtx = await context(chrome);
  const ops = await page(opsCtx);
  await logInAt(ops, nodes[1].base, "ops@cluster.test", "cluster-ops-pass");
  await ops.goto(`${nodes[1].base}/#/staff/operations`);
  const cluster = ops.getByRole("region", { name: "Cluster" });
  for (const n of ["node-1", "node-2", "node-3"]) await cluster.getByRole("row", { name: new RegExp(`${n} yes`) }).waitFor({ timeout: 20_000 });
  await ops.getByRole("region", { name: "Orders" }).getByRole("link", { name: id }).waitFor();
  await ops.getByText("Every invariant holds.").waitFor();
  assert.deepEqual(await axe(ops), []);
  await shot(ops, "cluster-operations-node-2");
  await Promise.all([ctx.close(), otherCtx.close(), opsCtx.close()]);
});
