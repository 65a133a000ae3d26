// The page for developers and operators: the API reference with copy-able curl lines, the
// service's health and counters, and the administrator's sign-in (recent errors, Sentry).
//
// Kept off the photographer's page on purpose: none of it helps deliver photos, and the
// counters are service-wide (every visitor's downloads), fetched only while this page is open.

import { DEMO_ORDER_ID, request } from "./api.js";
import { StatusTab } from "./status.js";

const $ = (id) => document.getElementById(id);

/**
 * Fill the curl lines. A <wbr> after each "/", "?" and "&" lets a long URL wrap there instead
 * of mid-word; it adds no text, so what is copied is the command as shown.
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
  fillTemplates(DEMO_ORDER_ID);
  wireCopyButtons();
  const status = new StatusTab();
  let health = null;
  try {
    health = await request("/health");
  } catch {
    health = null;
  }
  status.showHealth(health);
  status.show(true);
  document.body.dataset.ready = "true";
}

boot();
