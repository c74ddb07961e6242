// The personal account: who you are, every order with its payments and shipping.

import { api, logout, session } from "./api.js";
import { h, screen, money, alertBox, orderWords, reasonWords, paymentWords, when } from "./ui.js";
import { problem } from "./shop.js";

const books = (n) => (n === 1 ? "1 book" : `${n} books`);

/** The account page. */
export async function accountPage() {
  const show = screen();
  if (!session()) {
    location.hash = "#/login?next=%23%2Faccount";
    return;
  }
  show(h("h1", {}, "Your account"), h("p", { class: "loading" }, "Loading your orders…"));
  let me;
  let orders;
  try {
    [me, orders] = await Promise.all([api("GET", "/customer", { auth: true }), api("GET", "/orders", { auth: true })]);
  } catch (e) {
    show(h("h1", {}, "Your account"), alertBox(problem(e)));
    return;
  }
  orders.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  show(
    h("h1", {}, "Your account"),
    h("p", {}, `${me.name} ${me.lastName} · ${me.email}`),
    h("h2", {}, "Your orders"),
    orders.length
      ? h(
          "ul",
          { class: "orders" },
          orders.map((o) => {
            const paid = o.payments.reduce((n, p) => n + p.paidAmount - p.refundedAmount, 0);
            return h(
              "li",
              { class: "card" },
              h("h3", {}, h("a", { href: `#/order/${encodeURIComponent(o.id)}` }, `Order of ${when(o.createdAt)}`)),
              h("p", {}, h("strong", {}, orderWords(o.status)), o.status === "CANCELLED" && o.cancelReason ? ` — ${reasonWords(o.cancelReason)}` : ""),
              h("p", {}, `${books(o.itemsList.reduce((n, l) => n + l.quantity, 0))} · total ${money(o.fixedPrice)} · paid ${money(paid)}`),
              o.payments.length ? h("p", {}, `Payments: ${o.payments.map((p) => `${money(p.amount)} ${paymentWords(p.status)}`).join(", ")}`) : null,
              o.shipping ? h("p", {}, `Shipping: ${o.shipping.status.toLowerCase().replaceAll("_", " ")}`) : null,
            );
          }),
        )
      : h("p", {}, "No orders yet. ", h("a", { href: "#/" }, "Find a book")),
    h(
      "button",
      {
        type: "button",
        onclick: async () => {
          try {
            await logout();
          } catch {
            // forgotten here either way
          }
          window.dispatchEvent(new Event("sessionchange"));
          location.hash = "#/";
        },
      },
      "Log out",
    ),
  );
}
