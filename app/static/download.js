// The Download tab: order id, options, summary, and the download itself.
//
// How a download is done, and why:
// * A large archive must never be held in this tab's memory, so the page asks the service for a
//   short-lived signed link (POST /orders/{id}/download-link) and never builds a Blob.
// * By default the link goes to the browser's own download manager (an <a download> click):
//   one click, and the ZIP lands in the downloads folder, in every browser. The page then
//   cannot see the bytes, so it says so and points to the browser's download list instead of
//   drawing a progress bar it could not keep honest.
// * Where the File System Access API exists (Chromium desktop) and "Choose where to save and
//   show progress" is ticked, the person picks where to save, and the page streams the link
//   with fetch(), through a counting TransformStream, straight into that file (backpressure
//   keeps memory flat). The counter reads the ZIP local headers, so the page shows bytes
//   received, images written out of X-Total-Images, speed and time left.
// * A bring-your-own-key caller gets no signed link (it would spend the operator's key), and a
//   download manager cannot send their key header, so for them the page always streams into a
//   file they pick, where the browser can.

import {
  access, ApiError, DEMO_ORDER_ID, el, errorFrom, formatBytes, formatDuration, request, showMessage,
  optionsQuery, UUID_RE,
} from "./api.js";
import { ThumbnailLoader } from "./thumbs.js";
import { progressStream } from "./zipprogress.js";

const SUMMARY_DELAY_MS = 350;
const ANNOUNCE_EVERY_MS = 5000;

const $ = (id) => document.getElementById(id);

export class DownloadTab {
  constructor() {
    this.form = $("download-form");
    this.input = $("order-id");
    this.feedback = $("order-id-feedback");
    this.message = $("download-message");
    this.downloadButton = $("download-button");
    this.summary = null; // the summary JSON shown, for the id and options it was read with
    this.summaryKey = "";
    this.timer = 0;
    this.loading = null;
    this.abort = null;
    this.canSaveInPage = typeof window.showSaveFilePicker === "function";
    this.thumbnails = new ThumbnailLoader();
    this.selected = new Set(); // ticked image ids of the order shown, kept across option changes
    this.onAccessChange = () => {};

    const inPage = $("opt-in-page");
    inPage.checked = false;
    inPage.disabled = !this.canSaveInPage;
    if (!this.canSaveInPage) {
      $("in-page-hint").textContent = "(not available in this browser: follow the download in its download list)";
    }

    const saved = access.get();
    if (saved) {
      $("key-kind").value = saved.kind;
      $("key-value").value = saved.key;
    }
    const saveKey = () => {
      access.set($("key-kind").value, $("key-value").value.trim());
      this.onAccessChange();
    };
    $("key-kind").addEventListener("change", saveKey);
    $("key-value").addEventListener("change", saveKey);

    this.input.addEventListener("input", () => this.onIdInput());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.loadSummary({ announceInvalid: true });
    });
    for (const id of ["opt-format", "opt-quality", "opt-max-width", "opt-watermark", "opt-preview", "opt-dev-mode"]) {
      $(id).addEventListener("change", () => this.onOptionsChange());
    }
    $("use-demo").addEventListener("click", () => this.setOrder(DEMO_ORDER_ID));
    this.downloadButton.addEventListener("click", () => this.download());
    $("download-selected").addEventListener("click", () => this.download({ selection: [...this.selected] }));
    $("select-all").addEventListener("click", () => this.selectAll(true));
    $("select-none").addEventListener("click", () => this.selectAll(false));
    $("cancel-download").addEventListener("click", () => this.abort?.abort());
  }

  /** Show the demo-order button (sandbox mode) and prefill the demo id if the field is empty. */
  offerDemo() {
    $("use-demo").hidden = false;
    if (!this.input.value) this.setOrder(DEMO_ORDER_ID);
  }

  setOrder(orderId) {
    if (this.input.value.trim().toLowerCase() !== orderId) this.selected.clear();
    this.input.value = orderId;
    this.onIdInput({ immediate: true });
  }

  /** Show this order and bring its thumbnails into view once they are drawn ("Show images"). */
  openOrder(orderId) {
    this.reveal = true;
    this.setOrder(orderId);
  }

  /** One click from "Your orders": this order, every image, the default way. */
  async downloadOrder(orderId) {
    this.setOrder(orderId);
    await this.download();
  }

  orderId() {
    const value = this.input.value.trim();
    return UUID_RE.test(value) ? value.toLowerCase() : null;
  }

  /** The options as the API spells them, or throws a message naming the bad field.
   * A number's bounds are its input's min and max attributes: the page states them once. */
  options() {
    const number = (id, label) => {
      const input = $(id);
      const raw = input.value.trim();
      if (!raw) return null;
      const min = Number(input.min);
      const max = Number(input.max);
      const value = Number(raw);
      if (!Number.isInteger(value) || value < min || value > max) {
        throw Object.assign(new Error(`${label} must be a whole number from ${min} to ${max}.`), { field: id });
      }
      return value;
    };
    return {
      format: $("opt-format").value,
      quality: number("opt-quality", "Quality"),
      max_width: number("opt-max-width", "Max width"),
      watermark: $("opt-watermark").value === "" ? null : $("opt-watermark").value === "true",
      preview: $("opt-preview").checked,
      dev_mode: $("opt-dev-mode").checked,
    };
  }

  onIdInput({ immediate = false } = {}) {
    clearTimeout(this.timer);
    const value = this.input.value.trim();
    const valid = UUID_RE.test(value);
    this.input.setAttribute("aria-invalid", value && !valid ? "true" : "false");
    if (!value) this.feedback.textContent = "";
    else if (!valid) this.feedback.textContent = "Not an order id yet: it is a UUID of 32 hexadecimal digits, such as 8f5c2a4e-3b1d-4e7a-9c6f-0a1b2c3d4e5f.";
    else this.feedback.textContent = "Looks like an order id.";
    this.feedback.className = `feedback ${value && !valid ? "bad" : "good"}`;
    // A summary still loading is for the id as it was: it must not land after this change.
    if (valid && this.summaryKey !== this.key()) {
      this.loading?.abort();
      this.clearSummary();
      this.timer = setTimeout(() => this.loadSummary(), immediate ? 0 : SUMMARY_DELAY_MS);
    } else if (!valid) {
      this.loading?.abort();
      this.clearSummary();
    }
  }

  /** Say what is wrong with an option next to the options (styled and announced as an error). */
  optionsProblem(error) {
    const feedback = $("options-feedback");
    for (const id of ["opt-quality", "opt-max-width"]) {
      $(id).setAttribute("aria-invalid", String(error?.field === id));
    }
    if (error) {
      feedback.textContent = error.message;
      feedback.className = "feedback bad";
      $("advanced").open = true;
      if (error.field) $(error.field).focus();
    } else {
      feedback.textContent = "";
      feedback.className = "feedback";
    }
  }

  /** The options, or null after saying what is wrong (beside the options and in the message). */
  checkedOptions() {
    try {
      return this.options();
    } catch (error) {
      this.optionsProblem(error);
      showMessage(this.message, error.message);
      return null;
    }
  }

  onOptionsChange() {
    let options;
    try {
      options = this.options();
      this.optionsProblem(null);
    } catch (error) {
      this.optionsProblem(error);
      return;
    }
    if (options.preview === false && !options.dev_mode) {
      $("options-feedback").textContent = "Full quality without dev mode spends one credit per image.";
    }
    if (this.summary && this.orderId()) this.loadSummary();
  }

  key() {
    try {
      return `${this.orderId()}?${optionsQuery(this.options())}`;
    } catch {
      return "";
    }
  }

  clearSummary() {
    this.summary = null;
    this.summaryKey = "";
    this.thumbnails.reset();
    $("summary-images").replaceChildren();
    $("summary").hidden = true;
    this.downloadButton.disabled = true;
    showMessage(this.message, "");
  }

  async loadSummary({ announceInvalid = false } = {}) {
    const orderId = this.orderId();
    if (!orderId) {
      if (announceInvalid) {
        showMessage(this.message, "Enter an order id first: a UUID such as 8f5c2a4e-3b1d-4e7a-9c6f-0a1b2c3d4e5f.");
        this.input.focus();
      }
      return;
    }
    const options = this.checkedOptions();
    if (!options) return;
    const key = this.key();
    this.loading?.abort();
    const controller = new AbortController();
    this.loading = controller;
    $("check-order").disabled = true;
    try {
      const summary = await request(`/orders/${orderId}?${optionsQuery(options)}`, { signal: controller.signal });
      if (controller.signal.aborted) return;
      this.summary = summary;
      this.summaryKey = key;
      this.showSummary(summary);
    } catch (error) {
      if (error.name === "AbortError") return;
      this.clearSummary();
      showMessage(this.message, error.message);
    } finally {
      if (this.loading === controller) {
        this.loading = null;
        $("check-order").disabled = false;
      }
    }
  }

  showSummary(summary) {
    showMessage(this.message, "");
    $("summary-title").textContent = summary.name || `Order ${summary.order_id}`;
    const parts = [`${summary.image_count} image${summary.image_count === 1 ? "" : "s"}`, `${summary.ready_count} ready`];
    const busy = summary.images.filter((i) => !i.ready && (i.status === "processing" || i.status === "waiting")).length;
    const failed = summary.not_ready_count - busy;
    if (busy) parts.push(`${busy} still processing`);
    if (failed) parts.push(`${failed} in error`);
    $("summary-counts").textContent = parts.join(" · ");
    const ready = new Set(summary.images.filter((image) => image.ready).map((image) => image.image_id));
    for (const id of [...this.selected]) if (!ready.has(id)) this.selected.delete(id);
    this.thumbnails.reset();
    $("summary-images").replaceChildren(...summary.images.map((image) => this.thumbnails.tile(image, {
      checked: this.selected.has(image.image_id),
      onToggle: (id, checked) => {
        if (checked) this.selected.add(id);
        else this.selected.delete(id);
        this.showSelection();
      },
    })));
    this.showSelection();
    $("summary").hidden = false;
    if (this.reveal) {
      this.reveal = false;
      $("summary-title").focus({ preventScroll: true });
      $("summary").scrollIntoView({ block: "start", behavior: "instant" });
    }
    this.downloadButton.disabled = summary.ready_count === 0;
    if (summary.image_count === 0) {
      showMessage(this.message, "This order has no images yet. Upload images to it first, or create a test order.", { kind: "info" });
    } else if (summary.ready_count === 0) {
      showMessage(this.message, "None of the images is ready yet. Wait until Autoenhance has processed them, then check the order again.", { kind: "info" });
    } else if (summary.report_entry) {
      showMessage(this.message, `Images that are not ready will be left out and listed in ${summary.report_entry} inside the ZIP. Download again later to get them.`, { kind: "info" });
    }
  }

  /** Tick or untick every ready image. */
  selectAll(on) {
    for (const box of $("summary-images").querySelectorAll("input[type=checkbox]:not(:disabled)")) {
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
    const button = $("download-selected");
    button.hidden = count === 0;
    button.textContent = `Download ${count} of ${total}`;
    $("select-none").hidden = count === 0;
    $("select-all").hidden = selectable === 0 || count === selectable;
    $("selection-hint").textContent = count
      ? `${count} image${count === 1 ? "" : "s"} ticked; Download ZIP still takes them all.`
      : selectable ? "Tick images to download only those." : "";
  }

  async download({ selection = null } = {}) {
    // A summary refresh still pending from typing would land after, and wipe, the download's
    // own message; the download checks the order again itself (HEAD or the stream's headers).
    clearTimeout(this.timer);
    if (this.summary && this.summaryKey === this.key()) this.loading?.abort();
    const orderId = this.orderId();
    if (!orderId || !this.summary || this.summaryKey !== this.key()) {
      await this.loadSummary({ announceInvalid: true });
      if (!this.summary) return;
    }
    const options = this.checkedOptions();
    if (!options) return;
    // Every image ticked is the whole order (and its report of images not ready).
    if (selection?.length && selection.length < this.summary.image_count) options.images = selection;
    const ownKey = access.get()?.kind === "own";
    const inPage = this.canSaveInPage && ($("opt-in-page").checked || ownKey);
    this.downloadButton.disabled = true;
    $("download-selected").disabled = true;
    showMessage(this.message, "");
    try {
      if (inPage) {
        await this.downloadInPage(orderId, options, ownKey);
      } else if (ownKey) {
        showMessage(this.message, "With your own Autoenhance key this browser cannot hand the download to its download manager. Use Chrome or Edge (they save it from this page), or curl with the X-Autoenhance-Key header (see the API tab).");
      } else {
        await this.downloadWithBrowser(orderId, options);
      }
    } catch (error) {
      if (error.name === "AbortError") {
        showMessage(this.message, "Download cancelled. Nothing was kept; start it again when you like.", { kind: "info" });
      } else {
        showMessage(this.message, error.message || "The download failed. Try again.");
      }
      $("progress").hidden = true;
    } finally {
      this.downloadButton.disabled = false;
      $("download-selected").disabled = false;
      this.abort = null;
    }
  }

  async signedLink(orderId, options) {
    return request(`/orders/${orderId}/download-link`, { method: "POST", json: options });
  }

  /** The browser's download manager fetches and saves the file; the page never sees the bytes. */
  async downloadWithBrowser(orderId, options) {
    const link = await this.signedLink(orderId, options);
    // HEAD first: an error (expired key, unknown order) is shown here instead of being saved as a file.
    const head = await fetch(link.url, { method: "HEAD" }).catch(() => null);
    if (!head) throw new ApiError(0, "network", null, null);
    if (!head.ok) throw await errorFrom(head);
    const anchor = el("a", { attrs: { href: link.url, download: "" } });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    const total = head.headers.get("X-Total-Images");
    const ready = head.headers.get("X-Ready-Images");
    const note = total && ready && ready !== total ? ` (${total - ready} not ready, listed in _download_report.txt)` : "";
    showMessage(this.message, `Your browser is downloading ${ready || "the"} images${note}. Follow it in the browser's download list; the link stays valid until ${new Date(link.expires_at).toLocaleTimeString()}.`, { kind: "success" });
  }

  /** Stream into a file the person picked, with progress (File System Access API). */
  async downloadInPage(orderId, options, ownKey) {
    const suggestedName = `${(this.summary?.name || orderId).replace(/[\\/:*?"<>|\u0000-\u001f]+/g, "_").slice(0, 200)}.zip`;
    const handle = await window.showSaveFilePicker({
      suggestedName,
      types: [{ description: "ZIP archive", accept: { "application/zip": [".zip"] } }],
    });
    const controller = new AbortController();
    this.abort = controller;
    const url = ownKey ? `/orders/${orderId}/images?${optionsQuery(options)}` : (await this.signedLink(orderId, options)).url;
    let response;
    try {
      response = await fetch(url, { signal: controller.signal, headers: ownKey ? access.headers() : {} });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "network", null, null);
    }
    if (!response.ok) throw await errorFrom(response);
    const total = Number(response.headers.get("X-Total-Images")) || this.summary.image_count;
    const ready = Number(response.headers.get("X-Ready-Images")) || this.summary.ready_count;
    const length = Number(response.headers.get("Content-Length")) || 0;
    const started = performance.now();
    this.startProgress(ready);
    const writable = await handle.createWritable();
    let latest = { bytes: 0, images: 0 };
    await response.body
      .pipeThrough(progressStream((progress) => {
        latest = progress;
        this.showProgress(progress, { total, ready, length });
      }))
      .pipeTo(writable, { signal: controller.signal });
    const seconds = (performance.now() - started) / 1000;
    $("progress").hidden = true;
    const skipped = total - latest.images;
    showMessage(
      this.message,
      `Saved ${handle.name}: ${latest.images} of ${total} images, ${formatBytes(latest.bytes)} in ${formatDuration(seconds)}.` +
        (skipped > 0 ? ` ${skipped} image${skipped === 1 ? " was" : "s were"} not ready; see _download_report.txt in the ZIP and download again later.` : ""),
      { kind: "success" },
    );
  }

  startProgress(ready) {
    $("progress-title").textContent = "Downloading";
    const bar = $("progress-bar");
    bar.max = Math.max(1, ready);
    bar.value = 0;
    $("progress-text").textContent = "Starting…";
    $("progress-detail").textContent = "";
    $("progress").hidden = false;
  }

  showProgress({ bytes, images, bytesPerSecond, lastName }, { total, ready, length }) {
    const bar = $("progress-bar");
    let remaining = NaN;
    if (length) {
      bar.max = length;
      bar.value = bytes;
      remaining = (length - bytes) / bytesPerSecond;
    } else {
      bar.value = Math.min(images, ready);
      // No Content-Length while streaming: estimate the size from the images written so far.
      if (images > 0) remaining = ((bytes / images) * ready - bytes) / bytesPerSecond;
    }
    const left = bytesPerSecond > 0 && remaining > 0 ? `, about ${formatDuration(remaining)} left` : "";
    $("progress-text").textContent =
      `${images} of ${total} images written · ${formatBytes(bytes)} received · ${formatBytes(bytesPerSecond)}/s${left}`;
    $("progress-detail").textContent = lastName ? `Writing ${lastName}` : "";
    // Screen readers hear the count now and then, not every redraw.
    const now = performance.now();
    if (images !== this.announced && now - (this.announcedAt || 0) > ANNOUNCE_EVERY_MS) {
      this.announced = images;
      this.announcedAt = now;
      $("progress-announce").textContent = `${images} of ${total} images written`;
    }
  }
}
