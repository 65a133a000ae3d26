// Saving an order's ZIP (or one photo) from wherever the person pressed the button.
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
//
// Each place that downloads (an order in "Your orders", an order shown by id, a new order) has
// its own Downloader: its messages and its progress appear there, never on another tab.

import {
  access, ApiError, el, errorFrom, formatBytes, formatDuration, optionsQuery, request, showMessage,
} from "./api.js";
import { sizes } from "./sizes.js";
import { progressStream } from "./zipprogress.js";

const ANNOUNCE_EVERY_MS = 5000;

const $ = (id) => document.getElementById(id);

/** Whether a download may stream into a file on this page (File System Access API). */
export const canSaveInPage = () => typeof window.showSaveFilePicker === "function";

/** The file name a Content-Disposition header gives (its UTF-8 `filename*`, else `filename`). */
export function dispositionName(header) {
  if (!header) return "";
  const exact = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (exact) {
    try {
      return decodeURIComponent(exact[1]);
    } catch {
      // fall through to the plain name
    }
  }
  return /filename="([^"]*)"/i.exec(header)?.[1] || "";
}

const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

export class Downloader {
  /** `host`: the element under which this place shows its messages and its progress. */
  constructor(host) {
    this.message = el("div", { cls: "message", attrs: { role: "status" } });
    this.message.hidden = true;
    this.bar = el("progress", { attrs: { max: "1" } });
    this.text = el("p", { cls: "progress-text" });
    this.detail = el("p", { cls: "hint" });
    this.announce = el("p", { cls: "visually-hidden", attrs: { "aria-live": "polite" } });
    const cancel = el("button", { text: "Cancel", cls: "secondary", attrs: { type: "button" } });
    cancel.addEventListener("click", () => this.abort?.abort());
    this.progress = el("section", { cls: "card download-progress", attrs: { "aria-label": "Download progress" } },
      el("h3", { text: "Downloading" }), this.bar, this.text, this.announce, this.detail,
      el("div", { cls: "actions" }, cancel));
    this.progress.hidden = true;
    host.append(this.message, this.progress);
    this.abort = null;
  }

  say(text, options) {
    showMessage(this.message, text, options);
  }

  /**
   * Save the ZIP of `orderId` with `options` (the API's download options; `images` for a
   * selection). `expected` ({ total, ready, name }) is used when the answer does not say
   * (`name`: the file name offered when the person picks where to save).
   * Returns true when the download was handed over or saved.
   */
  async download(orderId, options, { inPage = false, expected = {} } = {}) {
    const ownKey = access.get()?.kind === "own";
    const streamHere = canSaveInPage() && (inPage || ownKey);
    this.say("");
    try {
      if (streamHere) {
        await this.saveHere(orderId, options, ownKey, expected);
      } else if (ownKey) {
        this.say("With your own Autoenhance key this browser cannot hand the download to its download manager. Use Chrome or Edge (they save it from this page), or curl with the X-Autoenhance-Key header (see the developer page).");
        return false;
      } else {
        await this.handOver(orderId, options);
      }
      return true;
    } catch (error) {
      this.progress.hidden = true;
      if (error.name === "AbortError") {
        this.say("Download cancelled. Nothing was kept; start it again when you like.", { kind: "info" });
      } else {
        this.say(error.message || "The download failed. Try again.");
      }
      return false;
    } finally {
      this.abort = null;
    }
  }

  /** The browser's download manager fetches and saves the file; the page never sees the bytes. */
  async handOver(orderId, options) {
    const link = await request(`/orders/${orderId}/download-link`, { method: "POST", json: options });
    // HEAD first: an error (expired key, unknown order) is shown here instead of being saved as a file.
    const head = await fetch(link.url, { method: "HEAD" }).catch(() => null);
    if (!head) throw new ApiError(0, "network", null, null);
    if (!head.ok) throw await errorFrom(head);
    const anchor = el("a", { attrs: { href: link.url, download: "" } });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    const total = Number(head.headers.get("X-Total-Images")) || 0;
    const ready = Number(head.headers.get("X-Ready-Images")) || 0;
    const name = dispositionName(head.headers.get("Content-Disposition"));
    const what = ready ? plural(ready, "photo") : "the photos";
    const note = total && ready < total ? ` ${plural(total - ready, "photo")} not ready yet ${total - ready === 1 ? "is" : "are"} listed in _download_report.txt inside it.` : "";
    const folders = options.variants ? ` in ${sizes.labels.join(" and ")}` : "";
    const quality = options.preview ? "free preview" : "full quality";
    this.say(`Your browser is saving ${name ? `“${name}”` : "the ZIP"}: ${what}${folders}, ${quality}. Follow it in your browser's downloads.${note}`, { kind: "success", transient: true });
  }

  /** Stream into a file the person picked, with progress (File System Access API). */
  async saveHere(orderId, options, ownKey, expected) {
    // The picker first, while the click still counts as the person's (browsers require it).
    const handle = await window.showSaveFilePicker({
      suggestedName: expected.name || `${orderId}.zip`,
      types: [{ description: "ZIP archive", accept: { "application/zip": [".zip"] } }],
    });
    const controller = new AbortController();
    this.abort = controller;
    const url = ownKey
      ? `/orders/${orderId}/images?${optionsQuery(options)}`
      : (await request(`/orders/${orderId}/download-link`, { method: "POST", json: options })).url;
    let response;
    try {
      response = await fetch(url, { signal: controller.signal, headers: ownKey ? access.headers() : {} });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "network", null, null);
    }
    if (!response.ok) throw await errorFrom(response);
    const total = Number(response.headers.get("X-Total-Images")) || expected.total || 0;
    const ready = Number(response.headers.get("X-Ready-Images")) || expected.ready || total;
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
    this.progress.hidden = true;
    const skipped = total - latest.images;
    this.say(
      `Saved ${handle.name}: ${latest.images} of ${total} images, ${formatBytes(latest.bytes)} in ${formatDuration(seconds)}.` +
        (skipped > 0 ? ` ${skipped} image${skipped === 1 ? " was" : "s were"} not ready; see _download_report.txt in the ZIP and download again later.` : ""),
      { kind: "success", transient: true },
    );
  }

  startProgress(ready) {
    this.bar.max = Math.max(1, ready);
    this.bar.value = 0;
    this.text.textContent = "Starting…";
    this.detail.textContent = "";
    this.progress.hidden = false;
  }

  showProgress({ bytes, images, bytesPerSecond, lastName }, { total, ready, length }) {
    let remaining = NaN;
    if (length) {
      this.bar.max = length;
      this.bar.value = bytes;
      remaining = (length - bytes) / bytesPerSecond;
    } else {
      this.bar.value = Math.min(images, ready);
      // No Content-Length while streaming: estimate the size from the images written so far.
      if (images > 0) remaining = ((bytes / images) * ready - bytes) / bytesPerSecond;
    }
    const left = bytesPerSecond > 0 && remaining > 0 ? `, about ${formatDuration(remaining)} left` : "";
    this.text.textContent =
      `${images} of ${total} images written · ${formatBytes(bytes)} received · ${formatBytes(bytesPerSecond)}/s${left}`;
    this.detail.textContent = lastName ? `Writing ${lastName}` : "";
    // Screen readers hear the count now and then, not every redraw.
    const now = performance.now();
    if (images !== this.announced && now - (this.announcedAt || 0) > ANNOUNCE_EVERY_MS) {
      this.announced = images;
      this.announcedAt = now;
      this.announce.textContent = `${images} of ${total} images written`;
    }
  }
}

/** Whether the person asked to choose where to save and see progress (the Download tab's box). */
export function inPageWanted() {
  return Boolean($("opt-in-page")?.checked);
}
