// The storefront's only way to the store: the public JSON API (API.md), exactly as an outside
// client calls it. The session token lives in localStorage and goes in the Authorization
// header, never in a URL.

const SESSION = "bazaar.session";
const CART = "bazaar.cart";

/** An answer other than 2xx: its status and the API's `{error, message}`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The store answered ${status}.`);
    this.status = status;
    this.code = body?.error || "";
    this.body = body || {};
  }
}

/** The store could not be reached at all (it is down, or the network is). */
export class Offline extends Error {
  constructor() {
    super("The store cannot be reached right now. We keep trying; your cart is kept.");
  }
}

const listeners = new Set();
let offline = false;

/** Calls `f(isOffline)` whenever reachability changes. */
export function onReachability(f) {
  listeners.add(f);
}

function reachable(up) {
  if (offline === !up) return;
  offline = !up;
  for (const f of listeners) f(offline);
  if (offline) probe();
}

async function probe() {
  while (offline) {
    await new Promise((r) => setTimeout(r, 1500));
    try {
      const r = await fetch("/health", { cache: "no-store" });
      if (r.ok) reachable(true);
    } catch {
      // still down
    }
  }
}

/** The session (token, customerId, role, expiredTime) or null. */
export function session() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION) || "null");
    if (s && new Date(s.expiredTime) > new Date()) return s;
  } catch {
    // a damaged entry is no session
  }
  return null;
}

function saveSession(s) {
  if (s) localStorage.setItem(SESSION, JSON.stringify(s));
  else localStorage.removeItem(SESSION);
}

/**
 * One API call. `body` goes as JSON; `auth` adds the session's bearer token. Resolves to the
 * parsed body (null for 204); rejects with ApiError or Offline.
 */
export async function api(method, path, { body, auth = false, headers = {} } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (auth) {
    const s = session();
    if (s) h.Authorization = `Bearer ${s.token}`;
  }
  let r;
  try {
    r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    reachable(false);
    throw new Offline();
  }
  reachable(true);
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!r.ok) {
    if (r.status === 401 && auth) saveSession(null);
    throw new ApiError(r.status, data);
  }
  return data;
}

/** An event stream silent this long (two keep-alives missed) is given up and opened again. */
const STREAM_SILENCE_MS = 35_000;

/**
 * Follows a server-sent event stream of the API (`GET /order/{id}/events`), with the session's
 * token in the header (EventSource could only put it in the URL). Awaits `onEvent(name, data)`
 * for each event in turn; resolves with the number of events when the stream ends (the
 * server ended it, it fell silent, or `signal` aborted it), rejects with ApiError or Offline
 * when it cannot open or breaks. The connection is closed however it ends.
 */
export async function follow(path, onEvent, signal) {
  const h = { Accept: "text/event-stream" };
  const s = session();
  if (s) h.Authorization = `Bearer ${s.token}`;
  // This attempt's own abort: the caller's signal, or silence past two keep-alives.
  const mine = new AbortController();
  const abort = () => mine.abort();
  signal?.addEventListener("abort", abort, { once: true });
  let quiet = setTimeout(abort, STREAM_SILENCE_MS);
  let r;
  try {
    r = await fetch(path, { headers: h, signal: mine.signal, cache: "no-store" });
  } catch {
    clearTimeout(quiet);
    signal?.removeEventListener("abort", abort);
    // No stream (a proxy may refuse them): the caller falls back to asking, and its plain
    // calls tell whether the store itself is reachable.
    if (signal?.aborted) return 0;
    throw new Offline();
  }
  let events = 0;
  const reader = r.ok && r.body ? r.body.pipeThrough(new TextDecoderStream()).getReader() : null;
  try {
    if (!reader) throw new ApiError(r.status, await r.json().catch(() => null));
    let buf = "";
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch {
        if (signal?.aborted) return events;
        throw new Offline();
      }
      if (chunk.done) return events;
      clearTimeout(quiet);
      quiet = setTimeout(abort, STREAM_SILENCE_MS);
      buf += chunk.value;
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          const colon = line.indexOf(":");
          if (colon <= 0) continue; // a comment (keep-alive) or nothing
          const field = line.slice(0, colon);
          const value = line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = value;
          else if (field === "data") data.push(value);
        }
        if (data.length) {
          events += 1;
          await onEvent(name, JSON.parse(data.join("\n")));
        }
      }
    }
  } finally {
    // Whatever ended it (the server, an error in onEvent, the caller), the connection goes.
    clearTimeout(quiet);
    signal?.removeEventListener("abort", abort);
    mine.abort();
    reader?.cancel().catch(() => {});
  }
}

/** Logs in with email and password (HTTP Basic to GET /token) and keeps the session. */
export async function login(email, password) {
  const basic = btoa(String.fromCharCode(...new TextEncoder().encode(`${email}:${password}`)));
  const s = await api("GET", "/token", { headers: { Authorization: `Basic ${basic}` } });
  saveSession({ ...s, email });
  return s;
}

/** Logs out: the token is revoked on the store, then forgotten here. */
export async function logout() {
  try {
    await api("POST", "/user/logout", { auth: true });
  } finally {
    saveSession(null);
  }
}

/** The cart: [{id, name, price, quantity}], kept across reloads. */
export function cart() {
  try {
    const c = JSON.parse(localStorage.getItem(CART) || "[]");
    return Array.isArray(c) ? c.filter((l) => l && l.id && l.quantity > 0) : [];
  } catch {
    return [];
  }
}

/** Replaces the cart. */
export function saveCart(lines) {
  localStorage.setItem(CART, JSON.stringify(lines));
  window.dispatchEvent(new Event("cartchange"));
}

/** Adds `quantity` of a product to the cart. */
export function addToCart(p, quantity) {
  const lines = cart();
  const line = lines.find((l) => l.id === p.id);
  if (line) line.quantity += quantity;
  else lines.push({ id: p.id, name: p.name, price: p.price, quantity });
  saveCart(lines);
}

/** A fresh Idempotency-Key. */
export function idempotencyKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

const CHECKOUT = "bazaar.checkout";

/**
 * The Idempotency-Key of placing exactly `body`: the same while the body is the same and no
 * answer was had (a double click, a retry after the store was unreachable or busy — the first
 * attempt may have gone through), a new one for another cart or code.
 */
export function checkoutKey(body) {
  const b = JSON.stringify(body);
  let k = null;
  try {
    k = JSON.parse(sessionStorage.getItem(CHECKOUT) || "null");
  } catch {
    k = null;
  }
  if (!k || k.body !== b) {
    k = { body: b, key: idempotencyKey() };
    sessionStorage.setItem(CHECKOUT, JSON.stringify(k));
  }
  return k.key;
}

/** The placement got its answer (the store keeps it under the key): the next one is new. */
export function checkoutDone() {
  sessionStorage.removeItem(CHECKOUT);
}
