// The shopper's pages: catalogue (search, filters), product, cart and checkout, the order
// as it moves, logging in and signing up.

import { api, follow, ApiError, Offline, session, login, cart, saveCart, addToCart, checkoutKey, checkoutDone } from "./api.js";
import { h, fill, screen, money, statusLine, alertBox, orderWords, reasonWords, paymentWords, ORDER_STEPS, when, field, submitting } from "./ui.js";

/** What went wrong, in words a shopper can act on. */
export function problem(e) {
  if (e instanceof Offline) return e.message;
  if (e instanceof ApiError) {
    if (e.status === 503) return "Part of the store is unavailable for a moment. Please try again shortly.";
    if (e.status === 401) return "Please log in again.";
    if (e.status === 403) return "This page is not for your account.";
    if (e.status === 404) return "We could not find that.";
    return e.message;
  }
  return "Something went wrong.";
}

function productCard(p) {
  const inStock = p.freeQuantity > 0;
  return h(
    "li",
    { class: "card" },
    h("h2", {}, h("a", { href: `#/product/${encodeURIComponent(p.id)}` }, p.name)),
    h("p", { class: "desc" }, p.description),
    p.promotions.length ? h("p", { class: "promo" }, `Promo codes: ${p.promotions.map((x) => x.token).join(", ")}`) : null,
    h("p", { class: "price" }, money(p.price)),
    h("p", { class: inStock ? "stock" : "stock out" }, inStock ? `${p.freeQuantity} in stock` : "Out of stock"),
    h(
      "button",
      {
        type: "button",
        disabled: !inStock,
        onclick: (ev) => {
          addToCart(p, 1);
          const b = ev.currentTarget;
          b.lastChild.textContent = "to cart ✓";
          setTimeout(() => (b.lastChild.textContent = "to cart"), 1500);
        },
      },
      // Seen: "Add to cart"; heard: "Add Jane Eyre to cart".
      "Add ",
      h("span", { class: "visually-hidden" }, `${p.name} `),
      h("span", {}, "to cart"),
    ),
  );
}

/** The catalogue: search, promotion and stock filters, pages of 12. */
export async function catalogue(params) {
  const show = screen();
  const q = params.get("q") || "";
  const promo = params.get("promo") === "true";
  const inStock = params.get("inStock") === "true";
  const page = Math.max(0, Number(params.get("page")) || 0);
  document.getElementById("q").value = q;
  const query = new URLSearchParams({ page: String(page), size: "12" });
  if (q) query.set("q", q);
  if (promo) query.set("promo", "true");
  if (inStock) query.set("inStock", "true");
  const link = (changes) => {
    const p = new URLSearchParams(query);
    p.delete("size");
    for (const [k, v] of Object.entries(changes)) v === null ? p.delete(k) : p.set(k, v);
    return `#/?${p}`;
  };
  const filters = h(
    "form",
    { class: "filters", "aria-label": "Filters" },
    h("label", {}, h("input", { type: "checkbox", name: "promo", checked: promo, onchange: (e) => (location.hash = link({ promo: e.target.checked ? "true" : null, page: "0" })) }), " On promotion"),
    h("label", {}, h("input", { type: "checkbox", name: "inStock", checked: inStock, onchange: (e) => (location.hash = link({ inStock: e.target.checked ? "true" : null, page: "0" })) }), " In stock"),
  );
  const title = q ? `Books matching “${q}”` : "Books";
  show(h("h1", {}, title), filters, h("p", { class: "loading" }, "Loading books…"));
  let list;
  let codes = [];
  try {
    [list, codes] = await Promise.all([api("GET", `/products?${query}`), api("GET", "/promocodes").catch(() => [])]);
  } catch (e) {
    show(h("h1", {}, title), filters, alertBox(problem(e)));
    return;
  }
  const pages = Math.ceil(list.total / list.size);
  show(
    h("h1", {}, title),
    filters,
    codes.length
      ? h("aside", { class: "codes", "aria-label": "Promotions" }, h("h2", {}, "Promotions"), h("ul", {}, codes.map((c) => h("li", {}, h("strong", {}, c.token), " — ", c.description))))
      : null,
    h("p", { class: "count", role: "status" }, list.total === 1 ? "1 book" : `${list.total} books`),
    list.items.length ? h("ul", { class: "grid", "aria-label": "Books" }, list.items.map(productCard)) : h("p", {}, "No book matches. Try other words or fewer filters."),
    pages > 1
      ? h(
          "nav",
          { class: "pages", "aria-label": "Pages" },
          page > 0 ? h("a", { href: link({ page: String(page - 1) }) }, "Previous page") : null,
          h("span", {}, `Page ${page + 1} of ${pages}`),
          page + 1 < pages ? h("a", { href: link({ page: String(page + 1) }) }, "Next page") : null,
        )
      : null,
  );
}

/** One product. */
export async function product(id) {
  const show = screen();
  show(h("h1", {}, "Book"), h("p", { class: "loading" }, "Loading…"));
  let p;
  try {
    p = await api("GET", `/product/${encodeURIComponent(id)}`);
  } catch (e) {
    show(h("h1", {}, "Book"), alertBox(problem(e)), h("p", {}, h("a", { href: "#/" }, "Back to the books")));
    return;
  }
  const done = statusLine();
  const qty = h("input", { id: "qty", name: "quantity", type: "number", min: "1", max: String(Math.max(1, p.freeQuantity)), value: "1", inputmode: "numeric" });
  show(
    h("p", {}, h("a", { href: "#/" }, "← All books")),
    h(
      "article",
      { class: "product" },
      h("h1", {}, p.name),
      p.photo ? h("img", { src: p.photo, alt: `Cover of ${p.name}`, width: "240", height: "320", loading: "lazy" }) : null,
      h("p", { class: "desc" }, p.description),
      p.promotions.length ? h("p", { class: "promo" }, "Promotion: ", p.promotions.map((x) => `${x.token} — ${x.description}`).join("; ")) : null,
      h("p", { class: "price" }, money(p.price)),
      h("p", { class: p.freeQuantity > 0 ? "stock" : "stock out" }, p.freeQuantity > 0 ? `${p.freeQuantity} in stock` : "Out of stock"),
      h(
        "form",
        {
          class: "buy",
          onsubmit: (e) => {
            e.preventDefault();
            const n = Math.max(1, Math.floor(Number(qty.value) || 1));
            addToCart(p, n);
            fill(done, `${n} added to your cart. `, h("a", { href: "#/cart" }, "Go to the cart"));
          },
        },
        h("label", { for: "qty" }, "Quantity"),
        qty,
        h("button", { type: "submit", disabled: p.freeQuantity <= 0 }, "Add to cart"),
      ),
      done,
    ),
  );
}

/** The cart and checkout: quantities, a promo code, the price from /calcPrice, placing. */
export async function cartPage() {
  const show = screen();
  const lines = cart();
  if (!lines.length) {
    show(h("h1", {}, "Your cart"), h("p", {}, "Your cart is empty. ", h("a", { href: "#/" }, "Browse the books")));
    return;
  }
  const priced = h("div", { class: "priced", "aria-live": "polite" });
  const message = h("div", { class: "message" });
  const code = h("input", { id: "promo-code", name: "promoCode", autocomplete: "off", value: sessionStorage.getItem("bazaar.promo") || "" });
  let seq = 0;

  async function price() {
    const mine = ++seq;
    const body = { itemsList: cart().map((l) => ({ id: l.id, quantity: l.quantity })) };
    const token = code.value.trim();
    if (token) body.promoCode = token;
    sessionStorage.setItem("bazaar.promo", token);
    fill(priced, h("p", { class: "loading" }, "Pricing…"));
    try {
      const p = await api("POST", "/calcPrice", { body });
      if (mine !== seq) return;
      fill(priced, 
        h(
          "dl",
          { class: "totals" },
          h("dt", {}, "Books"),
          h("dd", {}, money(p.total)),
          p.discount ? [h("dt", {}, "Discount"), h("dd", {}, `− ${money(p.discount)}`)] : null,
          h("dt", {}, "To pay"),
          h("dd", { class: "total" }, money(p.fixedPrice)),
        ),
      );
    } catch (e) {
      if (mine !== seq) return;
      const why = e instanceof ApiError && e.status === 422 && token ? `The promo code “${token}” cannot be used: ${e.message}` : problem(e);
      fill(priced, alertBox(why));
    }
  }

  function row(l) {
    const id = `q-${l.id}`;
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, h("a", { href: `#/product/${encodeURIComponent(l.id)}` }, l.name)),
      h("td", {}, money(l.price)),
      h(
        "td",
        {},
        h("label", { for: id, class: "visually-hidden" }, `Quantity of ${l.name}`),
        h("input", {
          id,
          type: "number",
          min: "1",
          value: String(l.quantity),
          inputmode: "numeric",
          onchange: (e) => {
            const n = Math.max(1, Math.floor(Number(e.target.value) || 1));
            saveCart(cart().map((x) => (x.id === l.id ? { ...x, quantity: n } : x)));
            price();
          },
        }),
      ),
      h("td", {}, h("button", { type: "button", class: "link", "aria-label": `Remove ${l.name}`, onclick: () => { saveCart(cart().filter((x) => x.id !== l.id)); cartPage(); } }, "Remove")),
    );
  }

  const place = h("button", { type: "submit", class: "primary" }, "Place order");
  const s = session();
  show(
    h("h1", {}, "Your cart"),
    h("table", { class: "lines" }, h("caption", { class: "visually-hidden" }, "Books in your cart"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Book"), h("th", { scope: "col" }, "Price"), h("th", { scope: "col" }, "Quantity"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, lines.map(row))),
    h(
      "form",
      {
        class: "checkout",
        "aria-label": "Checkout",
        onsubmit: async (e) => {
          e.preventDefault();
          if (!session()) {
            location.hash = "#/login?next=%23%2Fcart";
            return;
          }
          if (place.disabled) return;
          place.disabled = true;
          place.textContent = "Placing your order…";
          fill(message);
          const body = { itemsList: cart().map((l) => ({ id: l.id, quantity: l.quantity })) };
          const token = code.value.trim();
          if (token) body.promoCode = token;
          try {
            const o = await api("POST", "/order/add", { body, auth: true, headers: { "Idempotency-Key": checkoutKey(body) } });
            checkoutDone();
            saveCart([]);
            sessionStorage.removeItem("bazaar.promo");
            location.hash = `#/order/${encodeURIComponent(o.id)}`;
          } catch (err) {
            place.disabled = false;
            place.textContent = "Place order";
            // A refusal is an answer the store keeps under the key; the next try is a new
            // placement. No answer (unreachable, busy, 5xx): the same key, it may have been placed.
            if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) checkoutDone();
            if (err instanceof ApiError && err.code === "unpaid_order_exists") {
              const id = err.body.orderId;
              fill(message, alertBox("You already have an order that is not paid yet. Pay or cancel it first, then place this one.", h("p", {}, h("a", { href: `#/order/${encodeURIComponent(id)}` }, "Go to your unpaid order"))));
            } else if (err instanceof ApiError && err.status === 401) {
              location.hash = "#/login?next=%23%2Fcart";
            } else {
              fill(message, alertBox(problem(err)));
            }
          }
        },
      },
      h("div", { class: "field" }, h("label", { for: "promo-code" }, "Promo code"), code, h("button", { type: "button", onclick: price }, "Apply")),
      priced,
      s ? null : h("p", {}, "You will be asked to log in or sign up before the order is placed."),
      place,
      message,
    ),
  );
  code.addEventListener("change", price);
  // Enter in the code field prices with it; it does not place the order.
  code.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      price();
    }
  });
  price();
}

const LIVE = new Set(["NEW", "BOOKING_PENDING", "BOOKED", "PAY_PENDING", "PAID_PARTIAL", "PAID", "SHIPPING_PENDING"]);
let watching = 0;
let following = null;

/**
 * An order as it moves through the saga, without a reload: pushed by the server
 * (`/order/{id}/events`), each change followed by its timeline and payments; when the stream
 * cannot be had, polled instead every couple of seconds.
 */
export async function orderPage(id) {
  const show = screen();
  const me = ++watching;
  const status = h("p", { class: "order-status", role: "status", "aria-live": "polite" }, "Loading your order…");
  const mode = h("p", { class: "muted live" });
  const body = h("div", {});
  show(h("h1", {}, "Your order"), status, mode, body);
  const stop = new AbortController();
  following?.abort();
  following = stop;
  const here = () => me === watching && location.hash.startsWith("#/order/");
  window.addEventListener("hashchange", () => stop.abort(), { once: true });
  const path = `/order/${encodeURIComponent(id)}`;
  let last = "";
  let current = null;

  async function refresh(o) {
    const [timeline, payments] = await Promise.all([api("GET", `${path}/timeline`, { auth: true }), api("GET", `/payments/${encodeURIComponent(id)}`, { auth: true })]);
    await titles(o.itemsList.map((l) => l.id));
    if (!here()) return;
    current = o;
    const fingerprint = JSON.stringify([o.version, o.status, timeline.length, payments]);
    if (fingerprint === last) return;
    last = fingerprint;
    renderOrder(o, timeline, payments, status, body);
  }

  let failures = 0;
  while (here()) {
    const opened = Date.now();
    let got = 0;
    try {
      // Pushed: every change of the order arrives on the stream.
      got = await follow(
        `${path}/events`,
        async (name, o) => {
          if (name !== "order") return;
          fill(mode, LIVE.has(o.status) ? "Live: this page follows your order as it changes." : "");
          await refresh(o);
        },
        stop.signal,
      );
      if (current && !LIVE.has(current.status)) return;
      // The server ended it after its time: open another at once. One that ended at once or
      // said nothing counts as a failure, so a broken stream cannot make this spin.
      if (got > 0 && Date.now() - opened > 5000) failures = 0;
      else throw new Offline();
    } catch (e) {
      if (!here()) return;
      if (e instanceof ApiError && [401, 403, 404].includes(e.status)) {
        fill(status, problem(e));
        return;
      }
      // No stream: look every couple of seconds instead (the order first; its timeline and
      // payments only when it changed).
      failures += 1;
      fill(mode, "Updating every few seconds.");
      try {
        const o = await api("GET", path, { auth: true });
        if (!current || o.version !== current.version) await refresh(o);
        if (current && !LIVE.has(current.status)) return;
      } catch (err) {
        if (!here()) return;
        fill(status, problem(err));
        if (err instanceof ApiError && [401, 403, 404].includes(err.status)) return;
      }
      await new Promise((r) => setTimeout(r, Math.min(2000 * failures, 6000)));
    }
  }
}

const names = new Map();

/** Looks up the titles of books not yet known (an order's lines carry only ids). */
async function titles(ids) {
  await Promise.all(
    ids.filter((id) => !names.has(id)).map((id) =>
      api("GET", `/product/${encodeURIComponent(id)}`).then((p) => names.set(id, p.name), () => {}),
    ),
  );
}

function renderOrder(o, timeline, payments, status, body) {
  const timelineOpen = body.querySelector("details")?.open || false;
  // Keyboard focus stays on the control it was on (Pay, Cancel) when the order moves.
  const focused = body.contains(document.activeElement) ? document.activeElement.textContent : null;
  queueMicrotask(() => {
    const again = focused && [...body.querySelectorAll("button, summary, a")].find((e) => e.textContent === focused);
    if (again) again.focus();
  });
  fill(status, h("strong", {}, orderWords(o.status)), o.status === "CANCELLED" && o.cancelReason ? ` — ${reasonWords(o.cancelReason)}.` : "");
  const at = ORDER_STEPS.indexOf(o.status === "PAID_PARTIAL" ? "PAY_PENDING" : o.status);
  const paid = payments.reduce((n, p) => n + p.paidAmount - p.refundedAmount, 0);
  const due = Math.max(0, o.fixedPrice - paid);
  const payable = ["BOOKED", "PAY_PENDING", "PAID_PARTIAL"].includes(o.status);
  const failed = payments.filter((p) => p.status === "FAILED").length;
  const note = statusLine();
  fill(body, 
    h("p", { class: "order-id" }, "Order ", h("code", {}, o.id), ` · placed ${when(o.createdAt)}`),
    o.status === "CANCELLED"
      ? null
      : h("ol", { class: "steps", "aria-label": "Progress" }, ORDER_STEPS.map((s, i) => h("li", { class: i < at ? "done" : i === at ? "current" : "", "aria-current": i === at ? "step" : false }, orderWords(s)))),
    failed && payable ? alertBox("Your last payment did not go through. Nothing more was taken; you can pay again.") : null,
    payable
      ? h(
          "div",
          { class: "pay" },
          h("p", {}, `Due now: ${money(due)}`),
          h(
            "button",
            {
              type: "button",
              class: "primary",
              onclick: async (e) => {
                e.target.disabled = true;
                note.textContent = "Opening the payment page…";
                try {
                  const r = await api("GET", `/pay/redirectUrl?orderId=${encodeURIComponent(o.id)}`, { auth: true });
                  location.assign(r.redirectUrl);
                } catch (err) {
                  e.target.disabled = false;
                  note.textContent = problem(err);
                }
              },
            },
            "Pay",
          ),
        )
      : o.status === "BOOKING_PENDING"
        ? h("p", {}, "We are reserving your books; you can pay in a moment.")
        : null,
    h("h2", {}, "Books"),
    h("table", { class: "lines" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Book"), h("th", { scope: "col" }, "Quantity"), h("th", { scope: "col" }, "Price"))),
      h("tbody", {}, o.itemsList.map((l) => h("tr", {}, h("th", { scope: "row" }, h("a", { href: `#/product/${encodeURIComponent(l.id)}` }, names.get(l.id) || l.id)), h("td", {}, String(l.quantity)), h("td", {}, money(l.price)))))),
    h("dl", { class: "totals" },
      o.discount ? [h("dt", {}, `Discount${o.promoCode ? ` (${o.promoCode})` : ""}`), h("dd", {}, `− ${money(o.discount)}`)] : null,
      h("dt", {}, "Total"), h("dd", { class: "total" }, money(o.fixedPrice)),
      h("dt", {}, "Paid"), h("dd", {}, money(paid))),
    payments.length
      ? [h("h2", {}, "Payments"), h("ul", { class: "plain" }, payments.map((p) => h("li", {}, `${money(p.amount)} asked — ${paymentWords(p.status)}, ${money(p.paidAmount)} paid${p.refundedAmount ? `, ${money(p.refundedAmount)} refunded` : ""}`)))]
      : null,
    ["NEW", "BOOKING_PENDING", "BOOKED", "PAY_PENDING", "PAID_PARTIAL"].includes(o.status)
      ? h("button", {
          type: "button",
          onclick: async (e) => {
            e.target.disabled = true;
            try {
              await api("POST", `/order/${encodeURIComponent(o.id)}/cancel`, { auth: true });
              note.textContent = "Your order is cancelled.";
              orderPage(o.id);
            } catch (err) {
              e.target.disabled = false;
              note.textContent = problem(err);
            }
          },
        }, "Cancel this order")
      : null,
    note,
    h("details", { class: "timeline", open: timelineOpen }, h("summary", {}, "What happened, step by step"),
      h("ol", {}, timeline.map((t) => h("li", {}, h("time", { datetime: t.at }, when(t.at)), ` — ${t.service}: ${t.event}`)))),
  );
}

/** Logging in; `next` is where to go afterwards. */
export function loginPage(params) {
  const show = screen();
  const message = h("div", {});
  const next = params.get("next") || "";
  show(
    h("h1", {}, "Log in"),
    h(
      "form",
      {
        class: "stack",
        onsubmit: submitting(
          async (v) => {
            fill(message, h("p", { role: "status" }, "Logging in…"));
            const s = await login(v.email, v.password);
            window.dispatchEvent(new Event("sessionchange"));
            location.hash = next.startsWith("#/") ? next : s.role === "CUSTOMER" ? "#/account" : "#/staff";
          },
          (err) => fill(message, alertBox(err instanceof ApiError && err.status === 401 ? "That email and password do not match an account." : err instanceof ApiError && err.status === 429 ? "Too many attempts. Please wait a little and try again." : problem(err))),
        ),
      },
      field("Email", { name: "email", type: "email", required: true, autocomplete: "username" }),
      field("Password", { name: "password", type: "password", required: true, autocomplete: "current-password" }),
      h("button", { type: "submit", class: "primary" }, "Log in"),
    ),
    message,
    h("p", {}, "New here? ", h("a", { href: `#/signup${next ? `?next=${encodeURIComponent(next)}` : ""}` }, "Create an account")),
  );
}

/** Signing up (POST /customer), then logging in. */
export function signupPage(params) {
  const show = screen();
  const message = h("div", {});
  const next = params.get("next") || "";
  show(
    h("h1", {}, "Create an account"),
    h(
      "form",
      {
        class: "stack",
        onsubmit: submitting(
          async (v) => {
            await api("POST", "/customer", { body: { email: v.email, password: v.password, name: v.name, lastName: v.lastName, communications: [{ type: "EMAIL", address: v.email }] } });
            await login(v.email, v.password);
            window.dispatchEvent(new Event("sessionchange"));
            location.hash = next.startsWith("#/") ? next : "#/account";
          },
          (err) => fill(message, alertBox(err instanceof ApiError && err.status === 409 ? "An account with this email exists already. Log in instead." : problem(err))),
        ),
      },
      field("First name", { name: "name", required: true, autocomplete: "given-name" }),
      field("Last name", { name: "lastName", required: true, autocomplete: "family-name" }),
      field("Email", { name: "email", type: "email", required: true, autocomplete: "email" }),
      field("Password (at least 8 characters)", { name: "password", type: "password", required: true, minlength: "8", autocomplete: "new-password" }),
      h("button", { type: "submit", class: "primary" }, "Create account"),
    ),
    message,
  );
}
