// Building the page: elements made from data as text only (never parsed as markup), prices
// from integer minor units, statuses and errors in words.

const currency = document.querySelector('meta[name="bazaar-currency"]')?.content || "EUR";
const moneyFormat = new Intl.NumberFormat(undefined, { style: "currency", currency });
const digits = moneyFormat.resolvedOptions().maximumFractionDigits;

/** A price given in minor units (cents), formatted with the store's currency. */
export function money(minor) {
  return moneyFormat.format(Number(minor) / 10 ** digits);
}

/**
 * An element: `h("a", { href: "#/" }, "text", child)`. Attributes starting with "on" are
 * listeners; strings become text nodes, so API text is never markup.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** Replaces an element's children (strings as text; null, false and nested arrays allowed). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let generation = 0;

/** A new page starts: whatever an older page still renders is dropped from now on. */
export function navigated() {
  generation += 1;
  return generation;
}

/** Whether no other page has started since visit `v` (a lazily loaded page checks). */
export function isCurrent(v) {
  return v === generation;
}

/**
 * The `show` of the page now starting: it replaces the main region only while no other page
 * has started since (a slow answer for the page left behind cannot overwrite the new one), and
 * says whether it did.
 */
export function screen() {
  const mine = generation;
  return (...children) => {
    if (mine !== generation) return false;
    show(...children);
    return true;
  };
}

/** Replaces the main region's content and moves focus to its heading for screen readers. */
function show(...children) {
  const main = fill(document.getElementById("main"), ...children);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

/** A polite status line that loading and errors are written into. */
export function statusLine() {
  return h("p", { class: "status", role: "status", "aria-live": "polite" });
}

/** An error box (role=alert) saying what went wrong, in words. */
export function alertBox(message, ...more) {
  return h("div", { class: "error", role: "alert" }, h("p", {}, message), ...more);
}

const ORDER_WORDS = {
  NEW: "Received",
  BOOKING_PENDING: "Reserving your books",
  BOOKED: "Books reserved — ready to pay",
  PAY_PENDING: "Waiting for the payment",
  PAID_PARTIAL: "Partly paid — the rest is due",
  PAID: "Paid",
  SHIPPING_PENDING: "Paid — being prepared for shipping",
  COMPLETED: "Delivered",
  CANCELLED: "Cancelled",
};

const REASON_WORDS = {
  OUT_OF_STOCK: "one of the books was out of stock, so nothing was charged",
  PAYMENT_FAILED: "the payment failed; any amount taken is refunded",
  TIMEOUT: "it was not paid in time; any amount taken is refunded",
  BY_CUSTOMER: "you cancelled it",
  BY_OPERATOR: "the store cancelled it; any amount taken is refunded",
};

const PAYMENT_WORDS = { NEW: "opened", PENDING: "waiting", PAID: "paid", PARTIAL: "partly paid", FAILED: "failed", REFUNDED: "refunded" };

/** A payment status in words. */
export function paymentWords(status) {
  return PAYMENT_WORDS[status] || status.toLowerCase();
}

/** An order status in words. */
export function orderWords(status) {
  return ORDER_WORDS[status] || status;
}

/** Why an order was cancelled, in words. */
export function reasonWords(reason) {
  return REASON_WORDS[reason] || (reason ? reason.toLowerCase().replaceAll("_", " ") : "");
}

/** The steps an order goes through, for its progress list. */
export const ORDER_STEPS = ["BOOKING_PENDING", "BOOKED", "PAY_PENDING", "PAID", "SHIPPING_PENDING", "COMPLETED"];

/** A date-time as the shopper's locale writes it. */
export function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** A labelled form field. */
export function field(label, attrs) {
  const id = attrs.id || `f-${attrs.name}`;
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { ...attrs, id }));
}

/**
 * A form's submit handler: the page does not reload, the form's submit button is disabled
 * while `run(values, form)` works, and `failed(error)` says what went wrong if it throws.
 */
export function submitting(run, failed) {
  return async (e) => {
    e.preventDefault();
    const button = e.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await run(values(e.target), e.target);
    } catch (err) {
      failed(err);
    } finally {
      button.disabled = false;
    }
  };
}

/** A form's values as an object. */
export function values(form) {
  return Object.fromEntries(new FormData(form).entries());
}
