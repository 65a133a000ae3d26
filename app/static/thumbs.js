// Thumbnails of an order's images: one tile per image with its state, optionally a checkbox.
//
// A thumbnail is access-checked like its order. Without a key header (sandbox, no service key,
// or an administrator's session cookie) an <img src> does it, lazily, with the browser's
// cache; with a key the page fetches the picture with the header and shows it as a blob: URL
// (an <img> cannot send a header), revoked when the tiles are replaced. Those fetches start
// only when a tile comes near the screen, and a few at a time, so a large order costs the
// rate limit (and the service) only what the person scrolls past.

import { access, el } from "./api.js";

// Thumbnails fetched with a key header at once; the browser itself allows six per host.
const FETCH_CONCURRENCY = 4;
// Start fetching a little before a tile scrolls into view.
const NEAR_SCREEN = "300px";

const STATE_WORDS = {
  processed: "ready",
  processing: "still processing",
  waiting: "waiting to be processed",
  error: "failed to enhance",
  expired: "expired",
};

/** The state of an image's tile: ready, busy (may still become ready) or failed. */
export function tileState(image) {
  if (image.ready) return "ready";
  if (image.state) return image.state === "error" ? "failed" : "busy";
  return image.status === "processing" || image.status === "waiting" ? "busy" : "failed";
}

export function statusLabel(image) {
  if (image.ready) return "ready";
  const words = STATE_WORDS[image.status] || image.status || (image.state === "error" ? "failed" : "not ready yet");
  return image.status_reason ? `${words}: ${image.status_reason}` : words;
}

/** Loads thumbnails into <img> elements, and frees the blob: URLs of the last grid it filled. */
export class ThumbnailLoader {
  constructor() {
    this.urls = [];
    this.controller = null;
    this.queue = [];
    this.running = 0;
    this.pending = new Map(); // <img> -> its thumbnail path, until it comes near the screen
    this.observer = new IntersectionObserver((entries) => this.near(entries), { rootMargin: NEAR_SCREEN });
  }

  /** Forget the previous grid's pictures (call before drawing a new one). */
  reset() {
    this.controller?.abort();
    this.controller = new AbortController();
    this.observer.disconnect();
    this.pending.clear();
    this.queue = [];
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }

  near(entries) {
    for (const entry of entries) {
      if (!entry.isIntersecting || !this.pending.has(entry.target)) continue;
      this.observer.unobserve(entry.target);
      this.queue.push([entry.target, this.pending.get(entry.target)]);
      this.pending.delete(entry.target);
    }
    this.pump();
  }

  pump() {
    while (this.running < FETCH_CONCURRENCY && this.queue.length) {
      const [img, url] = this.queue.shift();
      this.running += 1;
      this.fetchInto(img, url).finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }

  async fetchInto(img, url) {
    const { signal } = this.controller;
    try {
      const response = await fetch(url, { headers: access.headers(), signal });
      const blob = response.ok ? await response.blob() : null;
      if (!blob || signal.aborted) return;
      const objectUrl = URL.createObjectURL(blob);
      this.urls.push(objectUrl);
      img.src = objectUrl;
    } catch {
      // Aborted (a new grid) or unreachable: the tile keeps its name and state without a picture.
    }
  }

  /** An <img> for `url` (a thumbnail path of this service), or a placeholder when there is none. */
  image(url, alt = "") {
    if (!url) return el("span", { cls: "thumb-placeholder", attrs: { "aria-hidden": "true" } });
    const img = el("img", { attrs: { alt, width: "160", height: "120", decoding: "async" } });
    img.addEventListener("error", () => img.replaceWith(el("span", { cls: "thumb-placeholder", attrs: { "aria-hidden": "true" } })), { once: true });
    const headers = access.headers();
    if (!Object.keys(headers).length) {
      img.loading = "lazy";
      img.src = url;
      return img;
    }
    if (!this.controller) this.reset();
    this.pending.set(img, url);
    this.observer.observe(img);
    return img;
  }

  /**
   * A tile for one image of an order summary: its picture, its name (the photo's name, without
   * extension) and its state. With `onOpen`, the picture of a ready image is a button that
   * shows it larger (`onOpen(image)`). With `onToggle`, a ready image gets a checkbox
   * ("Select <name>") and `onToggle(imageId, checked)` is called on change.
   */
  tile(image, { onToggle, onOpen, checked = false } = {}) {
    const state = tileState(image);
    const name = photoName(image);
    let picture = this.image(image.thumbnail_url);
    if (onOpen && image.ready) {
      const open = el("button", { cls: "enlarge", attrs: { type: "button", "aria-label": `View ${name} larger` } }, picture);
      open.addEventListener("click", () => onOpen(image));
      picture = open;
    }
    const caption = el("span", { cls: "thumb-caption" },
      el("span", { cls: "image-name", text: name, attrs: { title: image.image_name || name } }),
      el("span", { cls: "dot", attrs: { "aria-hidden": "true" } }),
      el("span", { cls: "image-status", text: statusLabel(image) }));
    const attrs = { "data-image-id": image.image_id || "" };
    if (!onToggle) return el("li", { cls: `image thumb ${state}`, attrs }, picture, caption);
    const box = el("input", { attrs: { type: "checkbox", value: image.image_id, "aria-label": `Select ${name}` } });
    box.checked = checked && image.ready;
    box.disabled = !image.ready;
    box.addEventListener("change", () => onToggle(image.image_id, box.checked));
    return el("li", { cls: `image thumb ${state} selectable`, attrs }, picture, el("span", { cls: "thumb-check" }, box), caption);
  }
}

/** The name a person knows a photo by: the service's `title` (its file name without extension). */
export function photoName(image) {
  return image.title || image.image_name || image.entry_name || image.image_id;
}
