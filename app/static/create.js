// The "New order" tab: upload photos (or the samples), then follow their processing.
//
// All chosen files go up in one request, in the order they are listed (the service keeps that
// order in the order and the ZIP), so the progress bar is the upload of the whole batch
// (XMLHttpRequest upload events); each file's outcome comes from the answer. While Autoenhance
// processes them, the new order is shown here (see orderview.js) with each photo's state, and
// once photos are ready it downloads from here. Nothing is written into the other tabs: the
// order id field of the Download tab is the person's alone.

import { ACCEPTED_EXTENSIONS, access, ApiError, el, formatBytes, request, showMessage } from "./api.js";
import { OrderView } from "./orderview.js";
import { quality } from "./quality.js";
import { sizes } from "./sizes.js";

const POLL_MS = 1500;
// Polling stops after this long; processing is normally seconds to minutes.
const POLL_LIMIT_MS = 15 * 60 * 1000;
const FINAL_STATUSES = new Set(["processed", "error", "expired"]);

const $ = (id) => document.getElementById(id);

export class CreateTab {
  constructor({ onCreated = () => {} } = {}) {
    this.onCreated = onCreated;
    this.files = [];
    this.polling = 0;
    this.view = new OrderView($("created-view"), { gridId: "created-images", titleId: "created-title" });
    quality.mount("created-quality");
    sizes.mount("created-quality");
    const input = $("file-input");
    $("choose-files").addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.choose(input.files);
      input.value = "";
    });
    const zone = $("dropzone");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      this.choose(event.dataTransfer.files);
    });
    $("upload-button").addEventListener("click", () => this.upload());
    $("sample-button").addEventListener("click", () => this.useSamples());
  }

  setModeNote(mode) {
    $("create-mode-note").textContent = mode === "sandbox"
      ? "In sandbox mode this is simulated and free."
      : "This creates a real order in the Autoenhance account of this service (or of your own key).";
  }

  choose(fileList) {
    // A first filter only (RAW files often have no MIME type); the service checks the content.
    const isImage = (file) => file.type.startsWith("image/") ||
      ACCEPTED_EXTENSIONS.some((ext) => file.name.toLowerCase().endsWith(ext));
    const images = [...fileList].filter(isImage);
    const rejected = [...fileList].filter((file) => !isImage(file)).map((file) => file.name);
    this.files = [...this.files, ...images];
    this.renderFiles();
    const text = rejected.length === 1
      ? `${rejected[0]} is not a photo, so it was left out.`
      : rejected.length ? `${rejected.length} files are not photos, so they were left out:` : "";
    showMessage($("create-message"), text, { kind: "info", items: rejected.length > 1 ? rejected : [] });
  }

  /** The files chosen for the next order; the form to create it shows only when there are some. */
  renderFiles() {
    $("file-list").replaceChildren(...this.files.map((file, index) => {
      const remove = el("button", { text: "Remove", cls: "link", attrs: { type: "button", "aria-label": `Remove ${file.name}` } });
      remove.addEventListener("click", () => {
        this.files.splice(index, 1);
        this.renderFiles();
      });
      return el("li", {},
        el("span", { cls: "image-name", text: file.name }), el("span", { cls: "image-status", text: formatBytes(file.size) }), remove);
    }));
    const button = $("upload-button");
    $("upload-form").hidden = this.files.length === 0;
    button.textContent = `Create order from ${this.files.length} image${this.files.length === 1 ? "" : "s"}`;
  }

  busy(on) {
    for (const id of ["upload-button", "sample-button", "choose-files"]) $(id).disabled = on;
  }

  /** Forget the order shown (a new upload starts, or failed): its card must not linger. */
  forgetOrder() {
    this.polling += 1; // stops a poll still running for it
    this.orderId = null;
    $("created-order").hidden = true;
    this.view.clear();
    this.drawn = "";
    $("created-status").textContent = "";
  }

  async useSamples() {
    this.busy(true);
    this.forgetOrder();
    showMessage($("create-message"), "");
    $("upload-progress").hidden = false;
    $("upload-bar").removeAttribute("value"); // indeterminate: the service uploads the samples
    $("upload-text").textContent = "Creating an order from the sample images…";
    try {
      const created = await request("/api/create-sample-order", { method: "POST" });
      this.created(created);
    } catch (error) {
      $("upload-progress").hidden = true;
      showMessage($("create-message"), error.message);
    } finally {
      this.busy(false);
    }
  }

  upload() {
    if (!this.files.length) return;
    const form = new FormData();
    const name = $("order-name").value.trim();
    if (name) form.append("name", name);
    for (const file of this.files) form.append("files", file, file.name);
    const total = this.files.reduce((sum, file) => sum + file.size, 0);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/create-order");
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(access.headers())) xhr.setRequestHeader(name, value);
    const bar = $("upload-bar");
    bar.max = 1;
    bar.value = 0;
    $("upload-progress").hidden = false;
    $("upload-text").textContent = `Uploading ${this.files.length} images (${formatBytes(total)})…`;
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      bar.value = event.loaded / event.total;
      $("upload-text").textContent = `Uploaded ${formatBytes(event.loaded)} of ${formatBytes(event.total)}`;
    });
    xhr.upload.addEventListener("load", () => {
      bar.removeAttribute("value");
      $("upload-text").textContent = "Sent; Autoenhance is receiving the images…";
    });
    xhr.addEventListener("load", () => {
      this.busy(false);
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        // Uploaded: the files became the order below (its thumbnails; failures in the message),
        // so nothing is left to create until new files are chosen.
        this.files = [];
        $("order-name").value = "";
        this.renderFiles();
        this.created(body);
      } else {
        $("upload-progress").hidden = true;
        const retry = Number(xhr.getResponseHeader("Retry-After")) || null;
        showMessage($("create-message"), new ApiError(xhr.status, body?.error || "", body?.detail ?? null, retry).message);
      }
    });
    xhr.addEventListener("error", () => {
      this.busy(false);
      $("upload-progress").hidden = true;
      showMessage($("create-message"), new ApiError(0, "network", null, null).message);
    });
    this.busy(true);
    this.forgetOrder();
    showMessage($("create-message"), "");
    xhr.send(form);
  }

  created(order) {
    this.orderId = order.order_id;
    this.onCreated(order.order_id);
    $("upload-progress").hidden = true;
    const failed = order.images.filter((image) => !image.uploaded);
    showMessage(
      $("create-message"),
      failed.length ? `${failed.length} image${failed.length === 1 ? "" : "s"} could not be uploaded:` : "",
      { items: failed.map((image) => `${image.file}: ${image.error || "failed"}`) },
    );
    this.drawn = "";
    this.view.clear();
    $("created-view").hidden = true;
    $("created-order").hidden = false;
    if (order.uploaded > 0) this.poll(order.order_id);
    else $("created-status").textContent = "No photo was uploaded, so there is nothing to process.";
  }

  async poll(orderId) {
    const run = ++this.polling;
    const deadline = performance.now() + POLL_LIMIT_MS;
    const status = $("created-status");
    status.classList.add("spinning");
    status.textContent = "Autoenhance is processing the photos…";
    while (run === this.polling) {
      let summary = null;
      try {
        summary = await request(`/orders/${orderId}?preview=${quality.preview ?? true}`);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status === 404 || error.status === 400) {
          status.classList.remove("spinning");
          status.textContent = error.message;
          return;
        }
        // Transient (network, 5xx, 429): keep polling.
      }
      if (summary) {
        // Redraw only when a photo changed, so thumbnails are not fetched again every poll.
        const drawn = summary.images.map((i) => `${i.image_id}:${i.ready}:${i.status}:${i.thumbnail_url}`).join();
        if (drawn !== this.drawn) {
          this.drawn = drawn;
          this.view.show(summary);
          $("created-view").hidden = false;
        }
        const finished = summary.image_count > 0 && summary.images.every((image) => image.ready || FINAL_STATUSES.has(image.status));
        if (finished) {
          status.classList.remove("spinning");
          status.textContent = `Processed: ${summary.ready_count} of ${summary.image_count} photos ready. It is also in “Your orders”.`;
          return;
        }
        status.textContent = `Processing: ${summary.ready_count} of ${summary.image_count} photos ready…`;
      }
      if (performance.now() > deadline) {
        status.classList.remove("spinning");
        status.textContent = "Still processing after 15 minutes; look at the order again later in “Your orders”.";
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
}
