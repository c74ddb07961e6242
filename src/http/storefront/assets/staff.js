// The staff screens, one per role of the seed. The API decides what each may do; the page only
// shows a role its own screens.

import { api, session } from "./api.js";
import { h, fill, screen, money, statusLine, alertBox, orderWords, when, field, submitting } from "./ui.js";
import { problem } from "./shop.js";

/** The screens, by role (ADMIN sees every one). */
export const SCREENS = [
  { path: "products", title: "Products and promo codes", roles: ["ADMIN"], render: productsScreen },
  { path: "stock", title: "Receive stock", roles: ["STOCK_OPERATOR"], render: stockScreen },
  { path: "shipping", title: "Shipments", roles: ["SHIPPING_OPERATOR"], render: shippingScreen },
  { path: "operations", title: "Operations", roles: ["OPERATOR"], render: operationsScreen },
];

/** The screens the signed-in role may open. */
export function screensFor(role) {
  return SCREENS.filter((s) => role === "ADMIN" || s.roles.includes(role));
}

/** `#/staff/{path}`: the screen, or a refusal in words for any other role. */
export async function staffPage(path) {
  const show = screen();
  const s = session();
  if (!s) {
    location.hash = `#/login?next=${encodeURIComponent(`#/staff/${path || ""}`)}`;
    return;
  }
  const mine = screensFor(s.role);
  if (!path) {
    show(h("h1", {}, "Staff"), mine.length ? h("ul", {}, mine.map((x) => h("li", {}, h("a", { href: `#/staff/${x.path}` }, x.title)))) : alertBox("Your account has no staff screens."));
    return;
  }
  const wanted = SCREENS.find((x) => x.path === path);
  if (!wanted || !mine.includes(wanted)) {
    show(h("h1", {}, "Not for this account"), alertBox("This screen is for store staff with another role."), h("p", {}, h("a", { href: "#/" }, "Back to the books")));
    return;
  }
  await wanted.render();
}

/** A form that sends `send(values)` and shows what came back. */
function action(label, fields, send, done) {
  const out = statusLine();
  return h(
    "form",
    {
      class: "stack",
      "aria-label": label,
      onsubmit: submitting(
        async (v, form) => {
          fill(out, "Saving…");
          fill(out, done(await send(v)));
          form.reset();
        },
        (err) => fill(out, alertBox(problem(err))),
      ),
    },
    fields,
    h("button", { type: "submit", class: "primary" }, label),
    out,
  );
}

const cents = (v) => Math.round(Number(String(v).replace(",", ".")) * 100);

async function productsScreen() {
  const show = screen();
  show(
    h("h1", {}, "Products and promo codes"),
    h("h2", {}, "Add a product"),
    action(
      "Add product",
      [
        field("Title", { name: "name", required: true }),
        field("Description", { name: "description", id: "product-description", required: true }),
        field("Price (e.g. 12.50)", { name: "price", required: true, inputmode: "decimal", pattern: "[0-9]+([.,][0-9]{1,2})?" }),
        field("Photo URL (optional)", { name: "photo", type: "url" }),
      ],
      (v) => api("POST", "/product/add", { auth: true, body: { name: v.name, description: v.description, price: cents(v.price), ...(v.photo ? { photo: v.photo } : {}) } }),
      (p) => ["Added ", h("a", { href: `#/product/${encodeURIComponent(p.id)}` }, p.name), ` at ${money(p.price)}.`],
    ),
    h("h2", {}, "Create a promo code"),
    action(
      "Create promo code",
      [
        field("Code", { name: "token", required: true, pattern: "[A-Za-z0-9_-]+", autocomplete: "off" }),
        field("Description", { name: "description", id: "promo-description", required: true }),
        field("Percent off (1–100)", { name: "percent", type: "number", min: "1", max: "100", required: true }),
        field("Orders that may use it (optional)", { name: "usageLimit", type: "number", min: "1" }),
      ],
      (v) => api("POST", "/promocode", { auth: true, body: { token: v.token, description: v.description, rule: { type: "PERCENT", percent: Number(v.percent), ...(v.usageLimit ? { usageLimit: Number(v.usageLimit) } : {}) } } }),
      (c) => `Promo code ${c.token} created.`,
    ),
  );
}

async function stockScreen() {
  const show = screen();
  let items = [];
  try {
    items = (await api("GET", "/products?size=100")).items;
  } catch (e) {
    show(h("h1", {}, "Receive stock"), alertBox(problem(e)));
    return;
  }
  show(
    h("h1", {}, "Receive stock"),
    action(
      "Receive",
      [
        h("div", { class: "field" }, h("label", { for: "f-id" }, "Book"), h("select", { id: "f-id", name: "id", required: true }, items.map((p) => h("option", { value: p.id }, `${p.name} (${p.freeQuantity} free)`)))),
        field("Quantity received", { name: "quantity", type: "number", min: "1", required: true }),
        field("Weight (g)", { name: "weight", type: "number", min: "0", value: "300" }),
        field("Length (mm)", { name: "length", type: "number", min: "0", value: "200" }),
        field("Width (mm)", { name: "width", type: "number", min: "0", value: "130" }),
        field("Height (mm)", { name: "height", type: "number", min: "0", value: "30" }),
      ],
      (v) => api("POST", "/stock/items", { auth: true, body: { id: v.id, quantity: Number(v.quantity), weight: Number(v.weight), length: Number(v.length), width: Number(v.width), height: Number(v.height) } }),
      (i) => `${i.id}: ${i.quantity} held, ${i.freeQuantity} free.`,
    ),
  );
}

async function shippingScreen() {
  const show = screen();
  const found = h("div", {});
  const open = async (id) => {
    fill(found, h("p", { class: "loading" }, "Looking…"));
    try {
      const s = await api("GET", `/shipping/${encodeURIComponent(id)}`, { auth: true });
      const out = statusLine();
      const step = (to, label) =>
        h("button", {
          type: "button",
          onclick: async () => {
            try {
              await api("POST", `/shipping/${encodeURIComponent(id)}/status`, { auth: true, body: { status: to } });
              await open(id);
            } catch (err) {
              fill(out, alertBox(problem(err)));
            }
          },
        }, label);
      fill(found, 
        h("h2", {}, `Shipment of order ${s.orderId}`),
        h("p", { role: "status" }, `Status: ${s.status.toLowerCase().replaceAll("_", " ")}`),
        h("ul", {}, s.orderItemList.map((l) => h("li", {}, `${l.quantity} × ${l.name}`))),
        h("div", { class: "row" }, step("ASSEMBLED", "Mark assembled"), step("SHIPPED", "Mark shipped"), step("DELIVERED", "Mark delivered")),
        out,
      );
    } catch (err) {
      fill(found, alertBox(err.status === 404 ? "No shipment for that order (it is not paid, or the id is wrong)." : problem(err)));
    }
  };
  show(
    h("h1", {}, "Shipments"),
    h("form", { class: "stack", onsubmit: submitting((v) => open(v.id.trim()), () => {}) },
      field("Order id", { name: "id", required: true, autocomplete: "off" }),
      h("button", { type: "submit", class: "primary" }, "Open shipment")),
    found,
  );
}

async function operationsScreen() {
  const show = screen();
  show(h("h1", {}, "Operations"), h("p", { class: "loading" }, "Loading…"));
  const get = (path) => api("GET", path, { auth: true }).then((v) => ({ v }), (e) => ({ e }));
  const [orders, notes, inv, cluster] = await Promise.all([get("/orders"), get("/notifications"), get("/invariants"), get("/cluster")]);
  const part = (title, r, f) => h("section", { "aria-label": title }, h("h2", {}, title), r.e ? alertBox(problem(r.e)) : f(r.v));
  show(
    h("h1", {}, "Operations"),
    part("Invariants", inv, (v) => h("div", {}, h("p", { class: v.ok ? "ok" : "bad", role: "status" }, v.ok ? "Every invariant holds." : "Invariants are broken!"), h("ul", {}, v.checks.map((c) => h("li", {}, `${c.ok ? "✓" : "✗"} ${c.name}${c.violations.length ? `: ${c.violations.join("; ")}` : ""}`))), h("p", { class: "muted" }, `Checked ${when(v.checkedAt)}`))),
    part("Cluster", cluster, (v) => h("div", {},
      h("p", {}, `Answered by ${v.node} · outbox depth ${v.outboxDepth} · dead letters ${v.deadLetters}`),
      h("table", {}, h("thead", {}, h("tr", {}, ["Node", "Reachable", "Partitions", "HTTP"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, v.nodes.map((n) => h("tr", {}, h("th", { scope: "row" }, n.name), h("td", {}, n.reachable ? "yes" : "NO"), h("td", {}, String(n.partitions)), h("td", {}, n.httpAddr || "—"))))))),
    part("Orders", orders, (v) => h("table", {}, h("thead", {}, h("tr", {}, ["Order", "Customer", "Status", "Total", "Placed"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, v.slice(0, 100).map((o) => h("tr", {}, h("th", { scope: "row" }, h("a", { href: `#/order/${encodeURIComponent(o.id)}` }, o.id)), h("td", {}, o.customerId), h("td", {}, orderWords(o.status)), h("td", {}, money(o.fixedPrice)), h("td", {}, when(o.createdAt))))))),
    part("Notifications", notes, (v) => (v.length ? h("ul", {}, v.slice(0, 100).map((n) => h("li", {}, `${n.eventType} to ${n.address} (${n.channel}) — ${n.status}`))) : h("p", {}, "None yet."))),
  );
}
