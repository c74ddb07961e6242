// The storefront clicked through as a person would, in a real chromium against a real
// `bazaar serve --demo`: elements found by role and accessible name, axe-core on every page,
// no Content-Security-Policy report, a screenshot of every step (target/browser/).

import { before, after } from "node:test";
import assert from "node:assert/strict";
import { Store, browser, context, page, axe, shot, signUpAt, logInAt, clicked as test } from "./harness.js";

let store;
let chrome;
const seen = new Map(); // page name → axe findings

before(async () => {
  store = new Store();
  await store.start();
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  await store?.close();
});

/** Runs axe on the page as it is now and remembers what it found under `name`. */
async function checked(p, name) {
  seen.set(name, await axe(p));
  assert.deepEqual(seen.get(name), [], `axe on ${name}`);
  assert.deepEqual(p.problems, [], `CSP reports or script errors on ${name}`);
  await shot(p, name);
}

let customers = 0;
/** Signs a new customer up through the sign-up page; returns their email. */
async function signUp(p) {
  const email = `shopper${++customers}-${Date.now()}@example.com`;
  const first = customers === 1;
  await signUpAt(p, store.base, { email, password: "correct horse", name: "Ada", lastName: "Reader" }, async () => {
    if (first) await checked(p, "signup");
  });
  return email;
}

let logins = 0;
async function logIn(p, email, password) {
  await logInAt(p, store.base, email, password, async () => {
    if (++logins === 1) await checked(p, "login");
  });
}

/** Puts `book` in the cart from the catalogue (the cart was empty) and opens the cart. */
async function toCart(p, book) {
  await p.goto(`${store.base}/#/`);
  await p.getByRole("button", { name: `Add ${book} to cart` }).click();
  await p.getByRole("link", { name: "Cart (1)" }).click();
  await p.getByRole("heading", { name: "Your cart" }).waitFor();
}

/** Puts `book` in the cart from the catalogue and places the order; returns its id. */
async function order(p, book, promo) {
  await toCart(p, book);
  if (promo) {
    await p.getByLabel("Promo code").fill(promo);
    await p.getByRole("button", { name: "Apply" }).click();
    await p.getByText("Discount").waitFor();
  }
  await p.getByText("To pay").waitFor();
  await p.getByRole("button", { name: "Place order" }).click();
  await p.waitForURL(/#\/order\//);
  return decodeURIComponent(p.url().split("#/order/")[1]);
}

/** On the order page: waits for the words of a status. */
async function statusIs(p, words) {
  await p.getByRole("status").filter({ hasText: words }).first().waitFor({ timeout: 20_000 });
}

/** From the order page: Pay, then the sandbox's button, then back to the order. */
async function pay(p, how) {
  await statusIs(p, /ready to pay|Partly paid|did not go through|Waiting for the payment/);
  await p.getByRole("button", { name: "Pay", exact: true }).click();
  await p.waitForURL(/\/sandbox\/pay\//);
  await checked(p, `sandbox-${how.replaceAll(" ", "-").toLowerCase()}`);
  await p.getByRole("button", { name: how }).click();
  await p.getByRole("link", { name: "Back to your order in the store" }).click();
  await p.waitForURL(/#\/order\//);
}

test("the catalogue searches and filters, and shows what is free", async () => {
  for (const phone of [false, true]) {
    const ctx = await context(chrome, phone);
    const p = await page(ctx);
    const w = phone ? "phone" : "desktop";
    await p.goto(store.base);
    await p.getByRole("heading", { name: "Books", exact: true }).waitFor();
    await p.getByRole("status").filter({ hasText: "10 books" }).waitFor();
    const grid = p.getByRole("list", { name: "Books" });
    assert.equal(await grid.getByRole("listitem").count(), 10);
    // Out of stock: shown as such, and it cannot be added.
    const ge = grid.getByRole("listitem").filter({ has: p.getByRole("heading", { name: "Great Expectations" }) });
    await ge.getByText("Out of stock").waitFor();
    assert.equal(await ge.getByRole("button", { name: "Add Great Expectations to cart" }).isDisabled(), true);
    await grid.getByRole("listitem").filter({ hasText: "Jane Eyre" }).getByText("12 in stock").waitFor();
    await checked(p, `catalogue-${w}`);
    // Filters: in stock hides the sold-out book.
    await p.getByRole("checkbox", { name: "In stock" }).check();
    await p.getByRole("status").filter({ hasText: "9 books" }).waitFor();
    assert.equal(await p.getByRole("heading", { name: "Great Expectations" }).count(), 0);
    await p.getByRole("checkbox", { name: "In stock" }).uncheck();
    await p.getByRole("checkbox", { name: "On promotion" }).check();
    await p.getByRole("list", { name: "Books" }).getByRole("heading", { name: "War and Peace" }).waitFor();
    await p.getByRole("checkbox", { name: "On promotion" }).uncheck();
    // Full-text search from the header.
    await p.getByRole("searchbox", { name: "Search books" }).fill("whale");
    await p.getByRole("button", { name: "Search" }).click();
    await p.getByRole("heading", { name: "Books matching “whale”" }).waitFor();
    await p.getByRole("status").filter({ hasText: "1 book" }).waitFor();
    await p.getByRole("link", { name: "Moby-Dick" }).click();
    await p.getByRole("heading", { name: "Moby-Dick" }).waitFor();
    await p.getByText("5 in stock").waitFor();
    await checked(p, `product-${w}`);
    await ctx.close();
  }
});

test("checkout with a promo code, pay in full, and the order reaches PAID without a reload", async () => {
  const ctx = await context(chrome);
  const p = await page(ctx);
  await signUp(p);
  await p.goto(`${store.base}/#/`);
  await p.getByRole("button", { name: "Add Jane Eyre to cart" }).click();
  await p.getByRole("link", { name: "Cart (1)" }).waitFor();
  // The cart survives a reload.
  await p.reload();
  await p.getByRole("link", { name: "Cart (1)" }).click();
  await p.getByRole("heading", { name: "Your cart" }).waitFor();
  await p.getByText("€12.50").first().waitFor();
  await p.getByLabel("Promo code").fill("NOSUCHCODE");
  await p.getByRole("button", { name: "Apply" }).click();
  await p.getByRole("alert").filter({ hasText: "NOSUCHCODE" }).waitFor();
  await p.getByLabel("Promo code").fill("WELCOME10");
  await p.getByRole("button", { name: "Apply" }).click();
  await p.getByText("− €1.25").waitFor();
  await p.getByText("€11.25").waitFor();
  await checked(p, "checkout-desktop");
  await p.getByRole("button", { name: "Place order" }).click();
  await p.waitForURL(/#\/order\//);
  const id = decodeURIComponent(p.url().split("#/order/")[1]);
  // A second tab watches the order; it must move to PAID by itself.
  const watcher = await page(ctx);
  const asked = [];
  watcher.on("request", (r) => asked.push(new URL(r.url()).pathname));
  await watcher.goto(`${store.base}/#/order/${encodeURIComponent(id)}`);
  await statusIs(watcher, "ready to pay");
  await watcher.getByText("Live: this page follows your order as it changes.").waitFor();
  await watcher.evaluate(() => (window.notReloaded = true));
  await checked(watcher, "order-booked-desktop");
  await pay(p, "Pay in full");
  await statusIs(p, /^Paid/);
  await statusIs(watcher, /^Paid/);
  assert.equal(await watcher.evaluate(() => window.notReloaded), true, "the watching tab was not reloaded");
  // It was pushed: the tab asked for the order's event stream, and never polled the order.
  assert.ok(asked.some((u) => u.endsWith("/events")), `no event stream was opened: ${asked}`);
  assert.ok(!asked.some((u) => /^\/order\/[^/]+$/.test(u)), `the order was polled: ${asked}`);
  await watcher.getByText("Total").waitFor();
  await checked(watcher, "order-paid-desktop");
  await ctx.close();
});

test("pay part, then the rest; a failed payment is explained (event streams blocked: the page polls)", async () => {
  const ctx = await context(chrome, true);
  // A proxy that drops event streams: the order page must fall back to asking.
  await ctx.route("**/order/*/events", (r) => r.abort());
  const p = await page(ctx);
  await signUp(p);
  await order(p, "Frankenstein");
  await pay(p, "Pay part");
  await statusIs(p, "Partly paid");
  await p.getByText("Updating every few seconds.").waitFor();
  await checked(p, "order-partly-paid-phone");
  await pay(p, "Pay in full");
  await statusIs(p, /^Paid/);
  // Another order whose payment fails.
  await order(p, "The Odyssey");
  await pay(p, "Fail");
  await p.getByText(/did not go through|payment failed/).first().waitFor();
  await checked(p, "order-payment-failed-phone");
  await ctx.close();
});

test("a double click places one order; a second unpaid order is refused with a link to the first", async () => {
  const ctx = await context(chrome);
  const p = await page(ctx);
  await signUp(p);
  await toCart(p, "Middlemarch");
  await p.getByText("To pay").waitFor();
  const placements = [];
  p.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/order/add") placements.push(r.headers()["idempotency-key"]);
  });
  await p.getByRole("button", { name: "Place order" }).dblclick();
  await p.waitForURL(/#\/order\//);
  const first = decodeURIComponent(p.url().split("#/order/")[1]);
  // However many requests the double click made, they carried one key (so one order).
  assert.ok(placements.length >= 1 && placements.every((k) => k && k === placements[0]), `keys: ${placements}`);
  await p.goto(`${store.base}/#/account`);
  await p.getByRole("heading", { name: "Your orders" }).waitFor();
  assert.equal(await p.getByRole("list").filter({ has: p.getByRole("heading", { level: 3 }) }).getByRole("listitem").count(), 1);
  // Another order while the first is unpaid.
  await toCart(p, "The Odyssey");
  await p.getByText("To pay").waitFor();
  await p.getByRole("button", { name: "Place order" }).click();
  await p.getByRole("alert").filter({ hasText: "You already have an order that is not paid yet" }).waitFor();
  // Another cart is another placement: a new key.
  assert.notEqual(placements.at(-1), placements[0]);
  await checked(p, "checkout-unpaid-order-exists");
  await p.getByRole("link", { name: "Go to your unpaid order" }).click();
  await p.waitForURL(new RegExp(`#/order/${encodeURIComponent(first)}`));
  await ctx.close();
});

test("an order for more than is free is cancelled and explained as out of stock", async () => {
  const ctx = await context(chrome);
  const p = await page(ctx);
  await signUp(p);
  await toCart(p, "Crime and Punishment");
  await p.getByLabel("Quantity of Crime and Punishment").fill("9");
  await p.getByLabel("Quantity of Crime and Punishment").press("Tab");
  await p.getByText("€121.50").first().waitFor();
  await p.getByRole("button", { name: "Place order" }).click();
  await p.waitForURL(/#\/order\//);
  await statusIs(p, "Cancelled — one of the books was out of stock, so nothing was charged.");
  await checked(p, "order-out-of-stock");
  await ctx.close();
});

test("checkout works with the keyboard alone", async () => {
  const ctx = await context(chrome);
  const p = await page(ctx);
  await signUp(p);
  await p.goto(`${store.base}/#/`);
  await p.getByRole("status").filter({ hasText: "10 books" }).waitFor();
  const tabTo = async (name) => {
    for (let i = 0; i < 80; i++) {
      await p.keyboard.press("Tab");
      const focused = await p.evaluate(() => document.activeElement?.getAttribute("aria-label") || document.activeElement?.textContent?.trim());
      if (focused === name) return;
    }
    assert.fail(`Tab never reached “${name}”`);
  };
  await tabTo("Add Pride and Prejudice to cart");
  await p.keyboard.press("Enter");
  await tabTo("Cart (1)");
  await p.keyboard.press("Enter");
  await p.getByText("To pay").waitFor();
  await tabTo("Place order");
  await p.keyboard.press("Enter");
  await p.waitForURL(/#\/order\//);
  await statusIs(p, /Reserving|ready to pay/);
  await ctx.close();
});

test("the personal account lists orders with payments and shipping; log out revokes the token", async () => {
  const ctx = await context(chrome);
  const p = await page(ctx);
  const urls = [];
  ctx.on("request", (r) => urls.push(r.url()));
  await signUp(p);
  await order(p, "Don Quixote");
  await pay(p, "Pay in full");
  await statusIs(p, /^Paid/);
  await p.getByRole("link", { name: "Account" }).click();
  await p.getByRole("heading", { name: "Your orders" }).waitFor();
  await p.getByText(/Payments: €17\.50 paid/).waitFor();
  await p.getByText(/Shipping:/).waitFor();
  await checked(p, "account-desktop");
  const token = await p.evaluate(() => JSON.parse(localStorage.getItem("bazaar.session")).token);
  assert.ok(urls.length > 10 && !urls.some((u) => u.includes(token)), "the token is never in a URL");
  await p.getByRole("button", { name: "Log out" }).click();
  await p.getByRole("link", { name: "Log in" }).waitFor();
  const r = await fetch(`${store.base}/checkToken`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 401, "the token is refused after logging out");
  await ctx.close();
});

test("each staff screen works for its role, and a customer is refused them", async () => {
  const ctx = await context(chrome);
  const p = await page(ctx);
  // A paid order for the shipping operator.
  await signUp(p);
  const paid = await order(p, "War and Peace");
  await pay(p, "Pay in full");
  await statusIs(p, /^Paid/);
  for (const path of ["products", "stock", "shipping", "operations"]) {
    await p.goto(`${store.base}/#/staff/${path}`);
    await p.getByRole("heading", { name: "Not for this account" }).waitFor();
  }
  await checked(p, "staff-refused-customer");
  await ctx.close();

  const as = async (email, password) => {
    const c = await context(chrome);
    const q = await page(c);
    await logIn(q, email, password);
    return [c, q];
  };
  let [c, q] = await as("admin@bazaar.test", "admin-demo-pass");
  // Staff land on the list of their screens: the admin has all four.
  await q.getByRole("heading", { name: "Staff" }).waitFor();
  assert.equal(await q.getByRole("main").getByRole("listitem").count(), 4);
  await checked(q, "staff-index");
  await q.goto(`${store.base}/#/staff/products`);
  const product = q.getByRole("form", { name: "Add product" });
  await product.getByLabel("Title").fill("Bleak House");
  await product.getByLabel("Description").fill("Dickens' satire of the Court of Chancery.");
  await product.getByLabel("Price (e.g. 12.50)").fill("14.20");
  await product.getByRole("button", { name: "Add product" }).click();
  await product.getByRole("status").filter({ hasText: "Added Bleak House at €14.20" }).waitFor();
  const promo = q.getByRole("form", { name: "Create promo code" });
  await promo.getByLabel("Code").fill("BROWSER15");
  await promo.getByLabel("Description").fill("15% off, from the browser test");
  await promo.getByLabel("Percent off (1–100)").fill("15");
  await promo.getByRole("button", { name: "Create promo code" }).click();
  await promo.getByRole("status").filter({ hasText: "Promo code BROWSER15 created" }).waitFor();
  await checked(q, "staff-admin-products");
  await c.close();

  [c, q] = await as("stock@bazaar.test", "stock-demo-pass");
  await q.goto(`${store.base}/#/staff/stock`);
  await q.getByRole("combobox", { name: "Book" }).selectOption({ label: "Bleak House (0 free)" });
  await q.getByLabel("Quantity received").fill("4");
  await q.getByRole("button", { name: "Receive" }).click();
  await q.getByRole("status").filter({ hasText: "4 free" }).waitFor();
  await checked(q, "staff-stock");
  await c.close();

  [c, q] = await as("shipping@bazaar.test", "shipping-demo-pass");
  await q.goto(`${store.base}/#/staff/shipping`);
  await q.getByLabel("Order id").fill(paid);
  await q.getByRole("button", { name: "Open shipment" }).click();
  await q.getByText("1 × War and Peace").waitFor();
  await q.getByRole("button", { name: "Mark shipped" }).click();
  await q.getByRole("status").filter({ hasText: "Status: shipped" }).waitFor();
  await checked(q, "staff-shipping");
  await c.close();

  [c, q] = await as("operator@bazaar.test", "operator-demo-pass");
  await q.goto(`${store.base}/#/staff/operations`);
  await q.getByText("Every invariant holds.").waitFor();
  await q.getByRole("region", { name: "Cluster" }).getByRole("cell", { name: "yes" }).waitFor();
  await q.getByRole("region", { name: "Orders" }).getByRole("link", { name: paid }).waitFor();
  await checked(q, "staff-operations");
  // An operator does not get the admin's screen.
  await q.goto(`${store.base}/#/staff/products`);
  await q.getByRole("heading", { name: "Not for this account" }).waitFor();
  await c.close();
});

test("a product whose name and description hold markup shows the characters and runs nothing", async () => {
  const name = `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`;
  const login = await fetch(`${store.base}/token`, { headers: { Authorization: `Basic ${btoa("admin@bazaar.test:admin-demo-pass")}` } });
  const { token } = await login.json();
  const r = await fetch(`${store.base}/product/add`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name, description: `<img src=x onerror="window.pwned=3"> desc`, price: 500 }),
  });
  assert.equal(r.status, 201);
  const { id } = await r.json();
  const ctx = await context(chrome);
  const p = await page(ctx);
  await p.goto(`${store.base}/#/product/${encodeURIComponent(id)}`);
  await p.getByRole("heading", { name }).waitFor();
  await p.getByText(`<img src=x onerror="window.pwned=3"> desc`).waitFor();
  await p.goto(`${store.base}/#/?q=pwned`);
  await p.getByRole("status").filter({ hasText: "1 book" }).waitFor();
  assert.equal(await p.evaluate(() => window.pwned), undefined, "no script ran");
  assert.equal(await p.locator("main img").count(), 0, "no element was made from the text");
  assert.deepEqual(p.problems, [], "nothing tried to run (a CSP refusal would show an injection)");
  await shot(p, "xss-product");
  await ctx.close();
});

test("with the server down the page says so, and recovers when it is back", async () => {
  const ctx = await context(chrome);
  const p = await page(ctx);
  await p.goto(store.base);
  await p.getByRole("status").filter({ hasText: /\d+ books/ }).waitFor();
  await store.stop();
  await p.getByRole("searchbox", { name: "Search books" }).fill("whale");
  await p.getByRole("button", { name: "Search" }).click();
  await p.getByRole("alert").filter({ hasText: "cannot be reached" }).first().waitFor();
  p.problems = []; // the failed requests' own console lines are expected here
  await shot(p, "offline");
  await store.start();
  await p.getByRole("alert").filter({ hasText: "The store is back" }).waitFor({ timeout: 15_000 });
  await p.getByRole("heading", { name: "Books matching “whale”" }).waitFor();
  await p.getByRole("status").filter({ hasText: "1 book" }).waitFor();
  await ctx.close();
});
