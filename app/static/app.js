// The photographer's page: tabs, the sandbox banner, and the wiring of each tab.
//
// The developer's and operator's tools (API reference, counters, sign-in) are on a page of
// their own (/developers, linked in the footer).

import { access, clearTransient, request } from "./api.js";
import { AskTab } from "./ask.js";
import { CreateTab } from "./create.js";
import { DownloadTab } from "./download.js";
import { OrdersTab } from "./orders.js";
import { quality } from "./quality.js";
import { sizes } from "./sizes.js";

const $ = (id) => document.getElementById(id);

class Tabs {
  constructor(onShow) {
    this.onShow = onShow;
    this.tabs = [...document.querySelectorAll('[role="tab"]')];
    for (const tab of this.tabs) {
      tab.addEventListener("click", () => this.select(tab, { focus: false }));
      tab.addEventListener("keydown", (event) => this.key(event, tab));
    }
    window.addEventListener("hashchange", () => this.fromHash());
  }

  name(tab) {
    return tab.id.replace("tab-", "");
  }

  /** Tabs that can be chosen now ("Your orders" is hidden when it cannot list anything). */
  get shown() {
    return this.tabs.filter((tab) => !tab.hidden);
  }

  fromHash() {
    const tab = this.shown.find((t) => `#${this.name(t)}` === window.location.hash);
    this.select(tab || this.shown[0], { focus: false, updateHash: false });
  }

  /** Show or hide a tab; a hidden tab that was selected gives way to the first one shown. */
  toggle(tab, visible) {
    tab.hidden = !visible;
    if (!visible && tab.getAttribute("aria-selected") === "true") this.select(this.shown[0], { focus: false });
  }

  select(tab, { focus = true, updateHash = true } = {}) {
    for (const other of this.tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    if (updateHash && window.location.hash !== `#${this.name(tab)}`) {
      history.replaceState(null, "", `#${this.name(tab)}`);
    }
    this.onShow(this.name(tab));
  }

  // Arrow keys, Home and End move between tabs (the WAI-ARIA tabs pattern).
  key(event, tab) {
    const tabs = this.shown;
    const index = tabs.indexOf(tab);
    const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
    this.select(next);
  }
}

/** Whether this visitor may list orders: sandbox mode, their own key, or an admin session. */
async function mayListOrders(health) {
  if (health?.mode === "sandbox" || access.get()?.kind === "own") return true;
  if (!health) return false;
  try {
    const session = await request("/api/admin/session");
    return session?.admin === true;
  } catch {
    return false;
  }
}

async function boot() {
  // What a finished action said goes away when the person does the next thing.
  document.addEventListener("click", (event) => {
    if (event.target.closest("button, [role=tab], a")) clearTransient();
  }, { capture: true });
  document.addEventListener("input", () => clearTransient(), { capture: true });

  const download = new DownloadTab();
  new AskTab();
  const orders = new OrdersTab();
  const tabs = new Tabs((name) => {
    if (name === "orders" && !orders.loaded) orders.load();
  });
  const create = new CreateTab({
    onCreated: () => {
      orders.loaded = false; // the new order heads the list next time it is shown
    },
  });
  tabs.fromHash();

  const sized = sizes.load(); // beside /health, not after it
  let health = null;
  try {
    health = await request("/health");
  } catch {
    health = null;
  }
  $("version").textContent = health?.version ? ` · version ${health.version}` : "";
  create.setModeNote(health?.mode);
  quality.setSandbox(health?.mode === "sandbox");
  await sized;
  if (health?.mode === "sandbox") {
    $("sandbox-banner").hidden = false;
    download.offerDemo();
  }
  // Each key or sign-in change asks again; only the latest answer counts (an earlier one,
  // still awaiting the session check, must not hide the tab a later key just showed).
  let asked = 0;
  const showOrders = async ({ open }) => {
    const ask = ++asked;
    const allowed = await mayListOrders(health);
    // How many checks have finished, applied or not (tests wait on it, as on data-ready).
    document.body.dataset.accessChecks = String(Number(document.body.dataset.accessChecks || 0) + 1);
    if (ask !== asked) return;
    // Who may list orders may deliver them (the same credential rules): "Deliver" shows then.
    document.body.dataset.mayDeliver = String(allowed);
    orders.clear();
    tabs.toggle($("tab-orders"), allowed);
    // "Your orders" opens first unless the address names another tab.
    if (allowed && open) tabs.select($("tab-orders"), { focus: false, updateHash: false });
    else if (allowed && $("tab-orders").getAttribute("aria-selected") === "true") orders.load();
  };
  await showOrders({ open: !window.location.hash || window.location.hash === "#orders" });
  download.onAccessChange = () => showOrders({ open: false });
  document.body.dataset.ready = "true";
}

boot();
