// One order, shown where the person asked for it: its name, its counts, its photos (tap one to
// enlarge it, tick some to take only those), and its actions row.
//
// The same view serves "Your orders" (opened under its row), an order looked up by id, and a
// new order while Autoenhance processes it. Its downloads happen here: the message and the
// progress appear under its own actions, never on another tab. The actions row is where every
// action on an order goes ("Download ZIP", "Download 2 of 3", "Deliver").

import { el, optionsQuery, request, showMessage } from "./api.js";
import { DeliverPanel } from "./deliver.js";
import { Downloader, inPageWanted } from "./downloader.js";
import { lightbox } from "./lightbox.js";
import { quality } from "./quality.js";
import { sizes } from "./sizes.js";
import { ThumbnailLoader } from "./thumbs.js";

const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

/**
 * Ask for the quality choice when none is made yet; otherwise add it, and the sizes and names
 * chosen, to `options` (a copy). Returns null (after asking) when the person still has to choose.
 */
export function withQuality(options, near) {
  if (quality.preview === null) {
    quality.ask(near);
    return null;
  }
  return { ...options, ...sizes.options(), preview: quality.preview };
}

export class OrderView {
  /**
   * `host`: the element to draw into. `gridId`/`titleId`: ids for the grid and the heading.
   * `wholeOrder`: show a "Download ZIP" of the whole order in the actions row (off where the
   * order's own row has one). `options()`: the download options besides the quality (may
   * throw a message naming a bad field). `heading`: the heading level of the order's name.
   * `named`: show the order's name (off under a row that shows it already; it stays for
   * screen readers and as the place the focus moves to). `deliver`: offer "Deliver" in the
   * actions row (off where the order's own row has one).
   */
  constructor(host, { gridId = "", titleId = "", downloadId = "", wholeOrder = true, heading = "h2", named = true, deliver = true, options = () => ({}) } = {}) {
    this.host = host;
    this.options = options;
    this.summary = null;
    this.selected = new Set();
    this.thumbnails = new ThumbnailLoader();
    this.title = el(heading, { cls: named ? "order-title" : "order-title visually-hidden", attrs: { tabindex: "-1", ...(titleId ? { id: titleId } : {}) } });
    this.counts = el("p", { cls: "counts" });
    this.hint = el("p", { cls: "hint selection-hint" });
    this.selectAllButton = el("button", { text: "Select all", cls: "link", attrs: { type: "button" } });
    this.clearButton = el("button", { text: "Clear selection", cls: "link", attrs: { type: "button" } });
    this.downloadSelected = el("button", { cls: "primary download-selected", attrs: { type: "button" } });
    this.downloadAll = el("button", { text: "Download ZIP", cls: "primary download-all", attrs: { type: "button", ...(downloadId ? { id: downloadId } : {}) } });
    this.downloadAll.hidden = !wholeOrder;
    this.deliverButton = el("button", { text: "Deliver", cls: "secondary deliver-toggle", attrs: { type: "button", "aria-expanded": "false" } });
    this.deliverButton.hidden = !deliver;
    this.delivering = el("section", { cls: "order-deliver" });
    this.delivering.hidden = true;
    this.deliverPanel = null;
    this.grid = el("ul", { cls: "thumb-grid", attrs: { "aria-label": "Photos of the order", ...(gridId ? { id: gridId } : {}) } });
    this.message = el("div", { cls: "message", attrs: { role: "status" } });
    this.message.hidden = true;
    this.actions = el("div", { cls: "actions order-view-actions" }, this.downloadAll, this.downloadSelected, this.deliverButton);
    const bar = el("div", { cls: "selection-bar" }, this.hint,
      el("div", { cls: "actions" }, this.selectAllButton, this.clearButton));
    const place = el("div", { cls: "download-place" });
    host.append(this.title, this.counts, this.actions, place, this.delivering, this.message, bar, this.grid);
    this.downloader = new Downloader(place);
    this.selectAllButton.addEventListener("click", () => this.selectAll(true));
    this.clearButton.addEventListener("click", () => this.selectAll(false));
    this.downloadAll.addEventListener("click", () => this.download());
    this.downloadSelected.addEventListener("click", () => this.download({ selection: [...this.selected] }));
    this.deliverButton.addEventListener("click", () => this.toggleDeliver());
    this.showSelection();
  }

  get orderId() {
    return this.summary?.order_id ?? null;
  }

  /** Open or close the Deliver panel of the order shown (a new one for each order). */
  toggleDeliver() {
    if (!this.summary) return;
    if (this.deliverPanel?.orderId !== this.orderId) this.closeDeliver();
    if (this.deliverPanel?.isOpen) {
      this.deliverPanel.close();
    } else {
      this.deliverPanel ??= new DeliverPanel(this.delivering, this.orderId, { name: this.title.textContent });
      this.deliverPanel.open();
      this.deliverPanel.recipient.focus();
    }
    this.deliverButton.setAttribute("aria-expanded", String(this.deliverPanel.isOpen));
  }

  closeDeliver() {
    this.deliverPanel?.close();
    this.deliverPanel = null;
    this.delivering.replaceChildren();
    this.delivering.className = "order-deliver";
    this.deliverButton.setAttribute("aria-expanded", "false");
  }

  /** Forget the order shown. */
  clear() {
    this.closeDeliver();
    this.summary = null;
    this.selected.clear();
    this.thumbnails.reset();
    this.grid.replaceChildren();
    this.downloader.say("");
    showMessage(this.message, "");
  }

  /**
   * Read the order (with the download options and the quality, so names and counts are those
   * of the ZIP) and draw it. Throws the service's error (ApiError) or AbortError.
   */
  async load(orderId, { signal } = {}) {
    const preview = quality.preview ?? true;
    const summary = await request(`/orders/${orderId}?${optionsQuery({ ...this.options(), preview })}`, { signal });
    this.show(summary);
    return summary;
  }

  /** Draw a summary; a redraw of the same order keeps the ticked photos that are still ready. */
  show(summary) {
    if (summary.order_id !== this.orderId) {
      this.selected.clear();
      this.closeDeliver();
    }
    this.summary = summary;
    this.title.textContent = summary.title || summary.name || "Order";
    const busy = summary.images.filter((i) => !i.ready && (i.status === "processing" || i.status === "waiting")).length;
    const failed = summary.not_ready_count - busy;
    const parts = [plural(summary.image_count, "photo"), `${summary.ready_count} ready`];
    if (busy) parts.push(`${busy} still processing`);
    if (failed) parts.push(`${failed} in error`);
    this.counts.textContent = parts.join(" · ");
    const ready = summary.images.filter((image) => image.ready);
    const readyIds = new Set(ready.map((image) => image.image_id));
    for (const id of [...this.selected]) if (!readyIds.has(id)) this.selected.delete(id);
    this.thumbnails.reset();
    this.grid.replaceChildren(...summary.images.map((image) => this.thumbnails.tile(image, {
      checked: this.selected.has(image.image_id),
      onOpen: (shown) => lightbox().open(summary.order_id, summary.images.filter((i) => i.ready), shown),
      onToggle: (id, checked) => {
        if (checked) this.selected.add(id);
        else this.selected.delete(id);
        this.showSelection();
      },
    })));
    this.downloadAll.disabled = summary.ready_count === 0;
    this.actions.hidden = summary.ready_count === 0 && this.downloadAll.hidden && this.deliverButton.hidden;
    this.showSelection();
    if (summary.image_count === 0) {
      showMessage(this.message, "This order has no photos yet. Upload photos to it first, or create a new order.", { kind: "info" });
    } else if (summary.ready_count === 0) {
      showMessage(this.message, "None of the photos is ready yet. Wait until Autoenhance has processed them, then look again.", { kind: "info" });
    } else if (summary.report_entry) {
      showMessage(this.message, `Photos that are not ready will be left out and listed in ${summary.report_entry} inside the ZIP. Download again later to get them.`, { kind: "info" });
    } else {
      showMessage(this.message, "");
    }
  }

  /** Bring the order's name and photos into view and give the name the focus. */
  reveal() {
    this.title.focus({ preventScroll: true });
    this.host.scrollIntoView({ block: "start", behavior: "instant" });
  }

  selectAll(on) {
    for (const box of this.grid.querySelectorAll("input[type=checkbox]:not(:disabled)")) {
      box.checked = on;
      if (on) this.selected.add(box.value);
      else this.selected.delete(box.value);
    }
    this.showSelection();
  }

  /** The selection bar: "Download 3 of 12" once something is ticked, else a hint. */
  showSelection() {
    const summary = this.summary;
    const count = this.selected.size;
    const total = summary?.image_count ?? 0;
    const selectable = summary ? summary.images.filter((image) => image.ready).length : 0;
    this.downloadSelected.hidden = count === 0;
    this.downloadSelected.textContent = `Download ${count} of ${total}`;
    this.clearButton.hidden = count === 0;
    this.selectAllButton.hidden = selectable === 0 || count === selectable;
    this.hint.textContent = count
      ? `${plural(count, "photo")} ticked${this.downloadAll.hidden ? "" : "; Download ZIP still takes them all"}.`
      : selectable ? "Tap a photo to see it larger; tick photos to download only those." : "";
  }

  /** Download the whole order, or the ticked photos, right here. */
  async download({ selection = null } = {}) {
    if (!this.summary) return;
    let options;
    try {
      options = withQuality(this.options(), this.host);
    } catch (error) {
      this.downloader.say(error.message);
      return;
    }
    if (!options) {
      this.downloader.say("Choose “Full quality” or “Free preview” first.", { kind: "info" });
      return;
    }
    // Every photo ticked is the whole order (and its report of photos not ready).
    if (selection?.length && selection.length < this.summary.image_count) options.images = selection;
    const name = `${(this.summary.title || this.summary.order_id).replace(/[\\/:*?"<>|\u0000-\u001f]+/g, "_").slice(0, 140)}${options.preview ? " (preview)" : ""}.zip`;
    this.downloadAll.disabled = this.downloadSelected.disabled = true;
    try {
      await this.downloader.download(this.summary.order_id, options, {
        inPage: inPageWanted(),
        expected: { total: options.images?.length || this.summary.image_count, ready: options.images?.length || this.summary.ready_count, name },
      });
    } finally {
      this.downloadAll.disabled = this.summary?.ready_count === 0;
      this.downloadSelected.disabled = false;
    }
  }
}
