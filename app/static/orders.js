// The "Your orders" tab: the caller's recent orders, newest first, a page at a time.
//
// Shown when the service may list orders for this visitor: in sandbox mode, with the visitor's
// own Autoenhance key (kept in this tab's sessionStorage and sent only to this service), or
// for a signed-in administrator. Everything happens on the order's own row: "Download ZIP"
// saves it (the message and progress appear under the row), "Show images" opens its photos
// under the row, "Deliver" makes a link for a client and lists the order's deliveries under
// the row. Each row has one actions row, where every action on an order goes.

import { el, request, showMessage } from "./api.js";
import { DeliverPanel } from "./deliver.js";
import { Downloader, inPageWanted } from "./downloader.js";
import { OrderView, withQuality } from "./orderview.js";
import { quality } from "./quality.js";
import { sizes } from "./sizes.js";
import { ThumbnailLoader } from "./thumbs.js";

const PAGE_SIZE = 20;
const STATE_WORDS = {
  ready: "ready",
  processing: "processing",
  partial: "partly ready",
  error: "failed",
  empty: "no photos yet",
};

const $ = (id) => document.getElementById(id);

function created(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Lower case without accents, for finding an order by a part of its name. */
const folded = (text) => text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase();

export class OrdersTab {
  constructor() {
    this.thumbnails = new ThumbnailLoader();
    this.cursor = null;
    this.run = 0;
    this.loaded = false;
    this.shown = new Set(); // order ids in the list: a page that overlaps the last adds no twin
    quality.mount("orders-quality");
    sizes.mount("orders-quality");
    $("orders-more").addEventListener("click", () => this.load({ more: true }));
    $("orders-refresh").addEventListener("click", () => this.load());
    $("orders-find").addEventListener("input", () => this.filter());
  }

  /** Forget the list (the visitor's key changed, or listing is no longer allowed). */
  clear() {
    this.run += 1;
    this.loaded = false;
    this.cursor = null;
    this.shown.clear();
    this.thumbnails.reset();
    $("orders-list").replaceChildren();
    $("orders-more").hidden = true;
    showMessage($("orders-message"), "");
    $("orders-found").textContent = "";
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
      const fresh = page.orders.filter((order) => !this.shown.has(order.order_id));
      for (const order of fresh) this.shown.add(order.order_id);
      const rows = fresh.map((order) => this.row(order));
      list.append(...rows);
      if (!more) {
        showMessage($("orders-message"), page.orders.length ? "" : "No orders yet. Make one in the “New order” tab.", { kind: "info" });
      } else {
        // Keyboard users continue where the new orders start.
        rows[0]?.querySelector("button")?.focus();
      }
      $("orders-more").hidden = !page.next_cursor;
      this.filter();
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

  /** Show only the orders whose name holds what is typed in "Find an order". */
  filter() {
    const wanted = folded($("orders-find").value.trim());
    const rows = [...$("orders-list").children];
    let count = 0;
    for (const row of rows) {
      const match = !wanted || folded(row.dataset.title || "").includes(wanted);
      row.hidden = !match;
      if (match) count += 1;
    }
    const more = $("orders-more").hidden ? "" : " Load more to look further back.";
    $("orders-found").textContent = wanted
      ? (count ? `${count} of ${rows.length} orders match.${more}` : `No order's name holds “${$("orders-find").value.trim()}”.${more}`)
      : "";
  }

  row(order) {
    const name = order.title || order.name || "Order";
    const count = `${order.image_count} photo${order.image_count === 1 ? "" : "s"}`;
    const facts = [count, STATE_WORDS[order.status] || order.status, created(order.created_at)].filter(Boolean);
    const open = el("button", { text: "Show images", cls: "secondary", attrs: { type: "button", "aria-expanded": "false", "aria-label": `Show images of ${name}` } });
    const download = el("button", { text: "Download ZIP", cls: "primary", attrs: { type: "button", "aria-label": `Download ZIP of ${name}` } });
    download.disabled = order.image_count === 0;
    const deliver = el("button", { text: "Deliver", cls: "secondary deliver-toggle", attrs: { type: "button", "aria-expanded": "false", "aria-label": `Deliver ${name}` } });
    const place = el("div", { cls: "order-place" });
    const delivering = el("section", { cls: "order-deliver", attrs: { "aria-label": `Deliver ${name}` } });
    delivering.hidden = true;
    const photos = el("section", { cls: "order-photos", attrs: { "aria-label": `Photos of ${name}` } });
    photos.hidden = true;
    const row = el(
      "li",
      { cls: `order-row ${order.status}`, attrs: { "data-order-id": order.order_id, "data-title": name } },
      this.thumbnails.image(order.thumbnail_url),
      el("div", { cls: "order-text" },
        el("h2", { cls: "order-name", text: name }),
        el("p", { cls: "hint", text: facts.join(" · ") })),
      el("div", { cls: "order-actions" }, open, download, deliver),
      place,
      delivering,
      photos,
    );
    const downloader = new Downloader(place);
    let view = null;
    download.addEventListener("click", async () => {
      const options = withQuality({}, row);
      if (!options) {
        downloader.say("Choose “Full quality” or “Free preview” above first.", { kind: "info" });
        return;
      }
      download.disabled = true;
      try {
        await downloader.download(order.order_id, options, {
          inPage: inPageWanted(),
          expected: { total: order.image_count, name: `${name}${options.preview ? " (preview)" : ""}.zip` },
        });
      } finally {
        download.disabled = false;
      }
    });
    let panel = null;
    deliver.addEventListener("click", () => {
      panel ??= new DeliverPanel(delivering, order.order_id, { name });
      if (panel.isOpen) {
        panel.close();
      } else {
        panel.open();
        panel.recipient.focus();
      }
      deliver.setAttribute("aria-expanded", String(panel.isOpen));
    });
    const expanded = (on) => {
      photos.hidden = !on;
      open.textContent = on ? "Hide images" : "Show images";
      open.setAttribute("aria-label", `${on ? "Hide" : "Show"} images of ${name}`);
      open.setAttribute("aria-expanded", String(on));
    };
    open.addEventListener("click", async () => {
      if (!photos.hidden) {
        expanded(false);
        return;
      }
      view ??= new OrderView(photos, { heading: "h3", wholeOrder: false, named: false, deliver: false });
      expanded(true);
      if (view.summary) {
        view.reveal();
        return;
      }
      open.disabled = true;
      try {
        await view.load(order.order_id);
        view.reveal();
      } catch (error) {
        expanded(false);
        downloader.say(error.message);
      } finally {
        open.disabled = false;
      }
    });
    return row;
  }
}
