// The "Your orders" tab: the caller's recent orders, newest first, a page at a time.
//
// Shown when the service may list orders for this visitor: in sandbox mode, with the visitor's
// own Autoenhance key (kept in this tab's sessionStorage and sent only to this service), or
// for a signed-in administrator. Each order downloads in one click or opens in the Download
// tab with its thumbnails, where images can be ticked.

import { el, request, showMessage } from "./api.js";
import { ThumbnailLoader } from "./thumbs.js";

const PAGE_SIZE = 20;
const STATE_WORDS = {
  ready: "ready",
  processing: "processing",
  partial: "partly ready",
  error: "failed",
  empty: "no images yet",
};

const $ = (id) => document.getElementById(id);

function created(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export class OrdersTab {
  constructor({ onOpen, onDownload }) {
    this.onOpen = onOpen;
    this.onDownload = onDownload;
    this.thumbnails = new ThumbnailLoader();
    this.cursor = null;
    this.run = 0;
    this.loaded = false;
    $("orders-more").addEventListener("click", () => this.load({ more: true }));
    $("orders-refresh").addEventListener("click", () => this.load());
  }

  /** Forget the list (the visitor's key changed, or listing is no longer allowed). */
  clear() {
    this.run += 1;
    this.loaded = false;
    this.cursor = null;
    this.thumbnails.reset();
    $("orders-list").replaceChildren();
    $("orders-more").hidden = true;
    showMessage($("orders-message"), "");
  }

  /** Load the first page (or, with `more`, the next one) and draw it. */
  async load({ more = false } = {}) {
    if (!more) this.clear();
    const run = this.run;
    const list = $("orders-list");
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (more && this.cursor) query.set("cursor", this.cursor);
    $("orders-more").disabled = true;
    list.setAttribute("aria-busy", "true");
    if (!more) showMessage($("orders-message"), "Loading your orders…", { kind: "info" });
    try {
      const page = await request(`/orders?${query}`);
      if (run !== this.run) return;
      this.loaded = true;
      this.cursor = page.next_cursor;
      const firstNew = list.children.length;
      list.append(...page.orders.map((order) => this.row(order)));
      if (!more) {
        showMessage($("orders-message"), page.orders.length ? "" : "No orders yet. Create one in the “Create test order” tab.", { kind: "info" });
      } else {
        // Keyboard users continue where the new orders start.
        list.children[firstNew]?.querySelector("button")?.focus();
      }
      $("orders-more").hidden = !page.next_cursor;
    } catch (error) {
      if (run !== this.run) return;
      showMessage($("orders-message"), error.message);
    } finally {
      if (run === this.run) {
        $("orders-more").disabled = false;
        list.setAttribute("aria-busy", "false");
      }
    }
  }

  row(order) {
    const name = order.name || `Order ${order.order_id}`;
    const count = `${order.image_count} image${order.image_count === 1 ? "" : "s"}`;
    const facts = [count, STATE_WORDS[order.status] || order.status, created(order.created_at)].filter(Boolean);
    const open = el("button", { text: "Show images", cls: "secondary", attrs: { type: "button", "aria-label": `Show images of ${name}` } });
    open.addEventListener("click", () => this.onOpen(order.order_id));
    const download = el("button", { text: "Download ZIP", cls: "primary", attrs: { type: "button", "aria-label": `Download ZIP of ${name}` } });
    download.disabled = order.image_count === 0;
    download.addEventListener("click", () => this.onDownload(order.order_id));
    return el(
      "li",
      { cls: `order-row ${order.status}`, attrs: { "data-order-id": order.order_id } },
      this.thumbnails.image(order.thumbnail_url),
      el("div", { cls: "order-text" },
        el("h2", { cls: "order-name", text: name }),
        el("p", { cls: "hint", text: facts.join(" · ") })),
      el("div", { cls: "order-actions" }, open, download),
    );
  }
}
