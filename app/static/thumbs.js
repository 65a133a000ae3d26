// Thumbnails of an order's images: one tile per image with its state, optionally a checkbox.
//
// A thumbnail is access-checked like its order. Without a key header (sandbox, no service key,
// or an administrator's session cookie) an <img src> does it, lazily, with the browser's
// cache; with a key the page fetches the picture with the header and shows it as a blob: URL
// (an <img> cannot send a header), revoked when the tiles are replaced.

import { access, el } from "./api.js";

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
  }

  /** Forget the previous grid's pictures (call before drawing a new one). */
  reset() {
    this.controller?.abort();
    this.controller = new AbortController();
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
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
    const { signal } = this.controller;
    fetch(url, { headers, signal })
      .then((response) => (response.ok ? response.blob() : null))
      .then((blob) => {
        if (!blob || signal.aborted) return;
        const objectUrl = URL.createObjectURL(blob);
        this.urls.push(objectUrl);
        img.src = objectUrl;
      })
      .catch(() => {
        // Aborted (a new grid) or unreachable: the tile keeps its name and state without a picture.
      });
    return img;
  }

  /**
   * A tile for one image of an order summary. With `onToggle`, a ready image gets a checkbox
   * (its label is the image's name and state) and `onToggle(imageId, checked)` is called on change.
   */
  tile(image, { onToggle, checked = false } = {}) {
    const state = tileState(image);
    const name = image.image_name || image.entry_name || image.image_id;
    const parts = [
      this.image(image.thumbnail_url),
      el("span", { cls: "thumb-caption" },
        el("span", { cls: "image-name", text: name }),
        el("span", { cls: "dot", attrs: { "aria-hidden": "true" } }),
        el("span", { cls: "image-status", text: statusLabel(image) })),
    ];
    if (!onToggle) return el("li", { cls: `image thumb ${state}`, attrs: { "data-image-id": image.image_id || "" } }, ...parts);
    const box = el("input", { attrs: { type: "checkbox", value: image.image_id } });
    box.checked = checked && image.ready;
    box.disabled = !image.ready;
    box.addEventListener("change", () => onToggle(image.image_id, box.checked));
    const label = el("label", { cls: "thumb-label" }, box, ...parts);
    return el("li", { cls: `image thumb ${state} selectable`, attrs: { "data-image-id": image.image_id || "" } }, label);
  }
}
