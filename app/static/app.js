// The page: tabs, the sandbox banner, and the wiring of each tab.

import { DEMO_ORDER_ID, request } from "./api.js";
import { AskTab } from "./ask.js";
import { CreateTab } from "./create.js";
import { DownloadTab } from "./download.js";
import { StatusTab } from "./status.js";

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

  fromHash() {
    const tab = this.tabs.find((t) => `#${this.name(t)}` === window.location.hash);
    this.select(tab || this.tabs[0], { focus: false, updateHash: false });
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
    const index = this.tabs.indexOf(tab);
    const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: this.tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = this.tabs[(moves[event.key] + this.tabs.length) % this.tabs.length];
    this.select(next);
  }
}

/**
 * Fill the curl lines of the API tab. A <wbr> after each "/", "?" and "&" lets a long URL wrap
 * there instead of mid-word; it adds no text, so what is copied is the command as shown.
 */
function fillTemplates(orderId) {
  for (const node of document.querySelectorAll("[data-template]")) {
    const text = node.dataset.template
      .replaceAll("{origin}", window.location.origin)
      .replaceAll("{order}", orderId);
    const parts = text.split(/(?<=[/?&])/);
    node.replaceChildren(...parts.flatMap((part, index) => (index ? [document.createElement("wbr"), part] : [part])));
  }
}

function wireCopyButtons() {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = $(button.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        // No clipboard permission (e.g. plain http): select the text for Ctrl+C instead.
        const range = document.createRange();
        range.selectNodeContents($(button.dataset.copy));
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2500);
    });
  }
}

async function boot() {
  const download = new DownloadTab();
  const status = new StatusTab();
  new AskTab();
  const tabs = new Tabs((name) => status.show(name === "status"));
  const create = new CreateTab({
    onReady: (orderId, { switchTab }) => {
      download.setOrder(orderId);
      fillTemplates(orderId);
      if (switchTab) tabs.select($("tab-download"));
    },
  });
  fillTemplates(DEMO_ORDER_ID);
  wireCopyButtons();
  tabs.fromHash();

  let health = null;
  try {
    health = await request("/health");
  } catch {
    health = null;
  }
  status.showHealth(health);
  create.setModeNote(health?.mode);
  if (health?.mode === "sandbox") {
    $("sandbox-banner").hidden = false;
    download.offerDemo();
  }
  document.body.dataset.ready = "true";
}

boot();
