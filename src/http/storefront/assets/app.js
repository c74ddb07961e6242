// The storefront's entry: routes `#/…` to its page, keeps the navigation true to the session
// and the cart, and says so when the store cannot be reached (and when it is back).

import { cart, session, onReachability } from "./api.js";
import { h, fill, navigated, isCurrent } from "./ui.js";
import { catalogue, product, cartPage, orderPage, loginPage, signupPage } from "./shop.js";

function nav() {
  const s = session();
  const n = cart().reduce((k, l) => k + l.quantity, 0);
  const links = [h("a", { href: "#/" }, "Books"), h("a", { href: "#/cart" }, `Cart (${n})`)];
  if (!s) links.push(h("a", { href: "#/login" }, "Log in"), h("a", { href: "#/signup" }, "Sign up"));
  else if (s.role === "CUSTOMER") links.push(h("a", { href: "#/account" }, "Account"));
  else links.push(h("a", { href: "#/staff" }, "Staff"));
  const here = location.hash || "#/";
  for (const a of links) if (a.getAttribute("href") === here) a.setAttribute("aria-current", "page");
  fill(document.getElementById("nav"), h("ul", {}, links.map((a) => h("li", {}, a))));
}

async function route() {
  const visit = navigated();
  nav();
  const hash = location.hash.slice(1) || "/";
  const [path, query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  let parts;
  try {
    parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = ["?"]; // a malformed address: the catalogue
  }
  switch (parts[0]) {
    case undefined:
      return catalogue(params);
    case "product":
      return product(parts[1] || "");
    case "cart":
      return cartPage();
    case "order":
      return orderPage(parts[1] || "");
    case "login":
      return loginPage(params);
    case "signup":
      return signupPage(params);
    case "account": {
      const m = await import("./account.js");
      return isCurrent(visit) && m.accountPage();
    }
    case "staff": {
      const m = await import("./staff.js");
      return isCurrent(visit) && m.staffPage(parts[1] || "");
    }
    default:
      location.hash = "#/";
  }
}

document.querySelector("form.search").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = document.getElementById("q").value.trim();
  location.hash = q ? `#/?q=${encodeURIComponent(q)}` : "#/";
});

onReachability((down) => {
  const b = document.getElementById("offline");
  b.hidden = false;
  b.className = down ? "banner down" : "banner up";
  b.textContent = down ? "The store cannot be reached right now. We keep trying; your cart is kept." : "The store is back.";
  if (!down) {
    setTimeout(() => (b.hidden = true), 4000);
    route();
  }
});

window.addEventListener("hashchange", route);
window.addEventListener("cartchange", nav);
window.addEventListener("sessionchange", nav);
window.addEventListener("storage", (e) => {
  nav();
  // The cart changed in another tab: the cart page shows the cart as it is.
  if (e.key === "bazaar.cart" && location.hash.startsWith("#/cart")) route();
});
route();
