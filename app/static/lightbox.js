// A larger view of an order's photos: tap a thumbnail to enlarge it, then the next one by
// swiping, with the arrow keys or the buttons, and save the one on screen.
//
// The picture shown is Autoenhance's free preview at up to VIEW_WIDTH px
// (GET /orders/{id}/images/{image_id}?preview=true&max_width=...), so looking costs no credit;
// "Download this photo" saves it in the quality chosen on the page, through a signed link
// handed to the browser's download manager like a ZIP, as delivered or in one of the sizes
// the service offers (GET /presets: "MLS" gives "garden (MLS).jpg", made from the full-quality
// photo, so choosing a size chooses full quality as the page's sizes box does). With the visitor's own key (a header no
// <img> or download manager can send) the picture is fetched with the header instead and
// shown or saved from a blob: URL (one photo, so it may sit in memory).

import { access, ApiError, el, errorFrom, request, showMessage } from "./api.js";
import { dispositionName } from "./downloader.js";
import { quality } from "./quality.js";
import { sizes } from "./sizes.js";
import { photoName } from "./thumbs.js";

// Wide enough for a laptop screen; Autoenhance's previews are about 1024 px anyway.
const VIEW_WIDTH = 1600;
// A horizontal move of at least this many CSS pixels is a swipe.
const SWIPE_PX = 40;

class Lightbox {
  constructor() {
    this.images = [];
    this.index = 0;
    this.orderId = null;
    this.blobUrl = null;
    // Not draggable: a mouse swipe over a loaded picture would start the browser's own drag
    // of the image instead (and its pointerup never comes).
    this.picture = el("img", { cls: "viewer-image", attrs: { alt: "", draggable: "false" } });
    this.title = el("h2", { cls: "viewer-title", attrs: { id: "viewer-title" } });
    this.position = el("p", { cls: "hint viewer-position" });
    this.message = el("div", { cls: "message", attrs: { role: "status" } });
    this.message.hidden = true;
    const button = (text, cls, label, onClick) => {
      const node = el("button", { text, cls, attrs: { type: "button", ...(label ? { "aria-label": label } : {}) } });
      node.addEventListener("click", onClick);
      return node;
    };
    this.prev = button("‹", "secondary viewer-prev", "Previous photo", () => this.step(-1));
    this.next = button("›", "secondary viewer-next", "Next photo", () => this.step(1));
    this.save = button("Download this photo", "primary", null, () => this.download());
    this.size = el("select", { cls: "viewer-size", attrs: { "aria-label": "Size of the photo" } });
    this.size.addEventListener("change", () => {
      if (this.size.value && quality.value !== "full") quality.pick("full");
    });
    const close = button("Close", "secondary viewer-close", null, () => this.dialog.close());
    this.stage = el("div", { cls: "viewer-stage" }, this.prev, this.picture, this.next);
    this.dialog = el("dialog", { cls: "viewer", attrs: { "aria-labelledby": "viewer-title" } },
      el("div", { cls: "viewer-head" }, el("div", {}, this.title, this.position), close),
      this.stage,
      el("div", { cls: "actions viewer-actions" }, this.size, this.save),
      this.message);
    this.dialog.addEventListener("keydown", (event) => {
      if (event.key === "ArrowRight") this.step(1);
      else if (event.key === "ArrowLeft") this.step(-1);
      else return;
      event.preventDefault();
    });
    this.dialog.addEventListener("close", () => this.forget());
    // Swipe: a horizontal drag on the picture shows the next (left) or previous (right) photo.
    this.stage.addEventListener("pointerdown", (event) => {
      this.swipeFrom = event.clientX;
    });
    this.stage.addEventListener("pointerup", (event) => {
      if (this.swipeFrom === undefined) return;
      const moved = event.clientX - this.swipeFrom;
      this.swipeFrom = undefined;
      if (Math.abs(moved) >= SWIPE_PX) this.step(moved < 0 ? 1 : -1);
    });
    document.body.append(this.dialog);
  }

  /** Show `image` of the order, among `images` (the ready ones, in shot order). */
  open(orderId, images, image) {
    this.orderId = orderId;
    this.images = images;
    this.index = Math.max(0, images.findIndex((i) => i.image_id === image.image_id));
    this.offerSizes();
    if (!this.dialog.open) this.dialog.showModal();
    this.show();
  }

  /** "As delivered" and each size offered; one size ticked on the page is the default. */
  offerSizes() {
    const offered = sizes.offered;
    const ticked = sizes.picked;
    this.size.replaceChildren(
      el("option", { text: "As delivered", attrs: { value: "" } }),
      ...offered.map(({ name, label }) => el("option", { text: label, attrs: { value: name } })));
    this.size.value = ticked.length === 1 ? ticked[0] : "";
    this.size.hidden = offered.length === 0;
  }

  step(by) {
    if (this.images.length < 2) return;
    this.index = (this.index + by + this.images.length) % this.images.length;
    this.show();
  }

  forget() {
    if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
    this.blobUrl = null;
    this.picture.removeAttribute("src");
  }

  async show() {
    const image = this.images[this.index];
    const name = photoName(image);
    this.title.textContent = name;
    this.position.textContent = `Photo ${this.index + 1} of ${this.images.length} · preview (free)`;
    this.picture.alt = name;
    this.prev.disabled = this.next.disabled = this.images.length < 2;
    showMessage(this.message, "");
    this.forget();
    this.dialog.dataset.imageId = image.image_id;
    const url = `/orders/${this.orderId}/images/${image.image_id}?preview=true&max_width=${VIEW_WIDTH}`;
    if (!Object.keys(access.headers()).length) {
      this.picture.src = url;
      return;
    }
    const shown = image.image_id;
    try {
      const response = await fetch(url, { headers: access.headers() });
      if (!response.ok) throw await errorFrom(response);
      const blob = await response.blob();
      if (this.images[this.index]?.image_id !== shown || !this.dialog.open) return;
      this.blobUrl = URL.createObjectURL(blob);
      this.picture.src = this.blobUrl;
    } catch (error) {
      showMessage(this.message, error.message || "The photo could not be shown.");
    }
  }

  async download() {
    const size = this.size.value;
    // A size is made from the full-quality photo.
    const preview = size ? false : quality.preview;
    if (preview === null) {
      showMessage(this.message, "Choose “Full quality” or “Free preview” on the page first, then download the photo.", { kind: "info" });
      return;
    }
    const image = this.images[this.index];
    const path = `/orders/${this.orderId}/images/${image.image_id}`;
    this.save.disabled = true;
    try {
      let href;
      let name = "";
      if (access.get()?.kind === "own") {
        const query = new URLSearchParams({ preview: String(preview), ...(size ? { variants: size } : {}) });
        const response = await fetch(`${path}?${query}`, { headers: access.headers() }).catch(() => null);
        if (!response) throw new ApiError(0, "network", null, null);
        if (!response.ok) throw await errorFrom(response);
        name = dispositionName(response.headers.get("Content-Disposition"));
        href = URL.createObjectURL(await response.blob());
      } else {
        const link = await request(`${path}/download-link`, { method: "POST", json: { preview, ...(size ? { variants: size } : {}) } });
        const head = await fetch(link.url, { method: "HEAD" }).catch(() => null);
        if (!head) throw new ApiError(0, "network", null, null);
        if (!head.ok) throw await errorFrom(head);
        name = dispositionName(head.headers.get("Content-Disposition"));
        href = link.url;
      }
      const anchor = el("a", { attrs: { href, download: name } });
      document.body.append(anchor);
      anchor.click();
      anchor.remove();
      if (href.startsWith("blob:")) setTimeout(() => URL.revokeObjectURL(href), 60_000);
      const label = size ? this.size.selectedOptions[0].textContent : (preview ? "free preview" : "full quality");
      showMessage(this.message, `Your browser is saving “${name || photoName(image)}” (${label}).`, { kind: "success" });
    } catch (error) {
      showMessage(this.message, error.message || "The photo could not be downloaded.");
    } finally {
      this.save.disabled = false;
    }
  }
}

let viewer = null;

/** The page's one photo viewer (made the first time a photo is opened). */
export function lightbox() {
  viewer ??= new Lightbox();
  return viewer;
}
