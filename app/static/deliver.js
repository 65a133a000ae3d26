// "Deliver": send a client a link to an order's photos, and follow what they did with it.
//
// One DeliverPanel per place an order is shown (its row in "Your orders", an order looked up by
// id, a new order). The form asks who the link is for, which variants they may download (the
// presets of GET /presets; the service answers 422 for one it cannot deliver, and that answer
// is shown as it is), when the link expires, an optional PIN and whether the photos are locked
// until the photographer releases them. The link is shown once, with a copy button: the
// service keeps only its hash.
//
// The order's deliveries (GET /orders/{id}/deliveries) are listed under the form with their
// status and refreshed every few seconds while the panel is open and the tab visible. A refresh
// updates each delivery's row in place and never touches the form, so nothing typed is lost.

import { el, formatBytes, request, showMessage } from "./api.js";

const REFRESH_MS = 2500;
const DAY_SECONDS = 86400;
const EXPIRY_DAYS = [7, 14, 30, 90, 365];
const DEFAULT_EXPIRY_DAYS = 30;
const DEFAULT_VARIANT = "print";
const PIN_RE = /^[0-9]{4,8}$/;
const STATUS_WORDS = {
  sent: "Sent, not opened yet",
  opened: "Opened",
  downloading: "Downloading",
  delivered: "Delivered",
  expired: "Expired",
  revoked: "Revoked",
};

let presetsAsked = null;
let panels = 0;

/** The presets a delivery may offer (asked once per page; a failure is asked again next time). */
function presets() {
  presetsAsked ??= request("/presets").then((answer) => answer.presets).catch((error) => {
    presetsAsked = null;
    throw error;
  });
  return presetsAsked;
}

function when(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** One line of what happened to a delivery, after its status word. */
function progressOf(delivery) {
  const done = delivery.delivered;
  if (done) return `${when(done.at)}: ${formatBytes(done.bytes)} of ${done.variant}, every byte received.`;
  if (delivery.status === "downloading") {
    const largest = delivery.archives.reduce((best, a) => (a.bytes_served > (best?.bytes_served ?? -1) ? a : best), null);
    if (largest?.bytes_total) return `${formatBytes(largest.bytes_served)} of ${formatBytes(largest.bytes_total)} of ${largest.variant} received so far.`;
    if (largest) return `${formatBytes(largest.bytes_served)} of ${largest.variant} received so far.`;
  }
  if (delivery.status === "opened") return `Opened ${when(delivery.opened_at)}.`;
  if (delivery.status === "revoked") return `Revoked ${when(delivery.revoked_at)}.`;
  return "";
}

/** The rules of a delivery's link, in a few words. */
function rulesOf(delivery) {
  const rules = [delivery.variants.join(", ")];
  rules.push(`${delivery.status === "expired" ? "expired" : "expires"} ${when(delivery.expires_at)}`);
  if (delivery.pin) rules.push("PIN");
  if (delivery.locked) rules.push("locked (previews only)");
  if (delivery.max_downloads !== null) rules.push(`${delivery.downloads_used} of ${delivery.max_downloads} downloads used`);
  return rules.join(" · ");
}

export class DeliverPanel {
  /** `host`: where the panel is drawn (hidden until `open`). `orderId`: the order to deliver. */
  constructor(host, orderId, { name = "" } = {}) {
    const id = `deliver-${++panels}`;
    this.host = host;
    this.orderId = orderId;
    this.timer = null;
    this.refreshing = false;
    this.rows = new Map();

    this.recipient = el("input", { attrs: { id: `${id}-recipient`, type: "text", maxlength: "200", autocomplete: "off", required: "", placeholder: "Jane Doe, Harbour Realty" } });
    this.variants = el("div", { cls: "deliver-variants" });
    this.expiry = el("select", { attrs: { id: `${id}-expiry` } },
      ...EXPIRY_DAYS.map((days) => el("option", {
        text: days === 365 ? "in 1 year" : `in ${days} days`,
        attrs: { value: String(days), ...(days === DEFAULT_EXPIRY_DAYS ? { selected: "" } : {}) },
      })));
    this.pin = el("input", { attrs: { id: `${id}-pin`, type: "text", inputmode: "numeric", maxlength: "8", autocomplete: "off", "aria-describedby": `${id}-pin-hint` } });
    this.locked = el("input", { attrs: { id: `${id}-locked`, type: "checkbox" } });
    this.submit = el("button", { text: "Create link", cls: "primary", attrs: { type: "submit" } });
    this.message = el("div", { cls: "message", attrs: { role: "status" } });
    this.message.hidden = true;
    this.form = el("form", { cls: "deliver-form", attrs: { novalidate: "" } },
      el("label", { text: "Recipient", attrs: { for: `${id}-recipient` } }),
      this.recipient,
      el("fieldset", { cls: "deliver-choice" },
        el("legend", { text: "What they may download" }),
        this.variants),
      el("div", { cls: "grid" },
        el("div", {}, el("label", { text: "Link expires", attrs: { for: `${id}-expiry` } }), this.expiry),
        el("div", {},
          el("label", { text: "PIN (optional)", attrs: { for: `${id}-pin` } }),
          this.pin,
          el("p", { cls: "hint", text: "4 to 8 digits the client must enter.", attrs: { id: `${id}-pin-hint` } }))),
      el("label", { cls: "check", attrs: { for: `${id}-locked` } }, this.locked,
        "Locked ", el("span", { cls: "hint", text: "(watermarked previews only until you unlock it: pay before download)" })),
      this.message,
      el("div", { cls: "actions" }, this.submit));

    this.link = el("input", { attrs: { id: `${id}-link`, type: "text", readonly: "", spellcheck: "false" } });
    this.copy = el("button", { text: "Copy link", cls: "secondary", attrs: { type: "button" } });
    this.copied = el("p", { cls: "hint", attrs: { "aria-live": "polite" } });
    this.linkFor = el("label", { attrs: { for: `${id}-link` } });
    this.result = el("div", { cls: "deliver-link" },
      this.linkFor,
      el("div", { cls: "field-row" }, this.link, this.copy),
      this.copied,
      el("p", { cls: "hint", text: "Send this link to your client. It is shown only now: the service keeps no copy of it." }));
    this.result.hidden = true;

    this.list = el("ul", { cls: "deliveries", attrs: { "aria-label": `Deliveries of ${name || "this order"}` } });
    this.empty = el("p", { cls: "hint", text: "No deliveries of this order yet." });
    this.listMessage = el("div", { cls: "message", attrs: { role: "status" } });
    this.listMessage.hidden = true;

    host.classList.add("deliver-panel");
    host.append(
      el("h3", { text: "Deliver to a client" }),
      this.form,
      this.result,
      el("h4", { text: "Deliveries of this order" }),
      this.listMessage,
      this.empty,
      this.list,
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    this.copy.addEventListener("click", () => this.copyLink());
    this.onVisibility = () => this.schedule(0);
    this.showVariants();
  }

  /** Show the panel, read the order's deliveries and keep them fresh until `close`. */
  open() {
    this.host.hidden = false;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.schedule(0);
  }

  close() {
    this.host.hidden = true;
    document.removeEventListener("visibilitychange", this.onVisibility);
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** Shown, and still on the page (a list redrawn without it stops its refreshes). */
  get isOpen() {
    return !this.host.hidden && this.host.isConnected;
  }

  async showVariants() {
    let offered;
    try {
      offered = await presets();
    } catch {
      offered = [{ name: DEFAULT_VARIANT, label: "Print", description: "" }];
    }
    this.variants.replaceChildren(...offered.map((preset) => {
      const box = el("input", { attrs: { type: "checkbox", name: "variant", value: preset.name } });
      box.checked = preset.name === DEFAULT_VARIANT;
      return el("label", { cls: "check" }, box, preset.label || preset.name,
        ...(preset.description ? [" ", el("span", { cls: "hint", text: `(${preset.description})` })] : []));
    }));
  }

  /** The request body of the form, or a message naming what to correct. */
  body() {
    const recipient = this.recipient.value.trim();
    if (!recipient) return { problem: "Say who the link is for (a name, an agency).", field: this.recipient };
    const variants = [...this.variants.querySelectorAll("input:checked")].map((box) => box.value);
    if (!variants.length) return { problem: "Tick at least one thing they may download.", field: this.variants.querySelector("input") };
    const pin = this.pin.value.trim();
    if (pin && !PIN_RE.test(pin)) return { problem: "A PIN is 4 to 8 digits.", field: this.pin };
    const days = Number(this.expiry.value) || DEFAULT_EXPIRY_DAYS;
    const json = {
      recipient,
      variants,
      expires_at: new Date(Date.now() + days * DAY_SECONDS * 1000).toISOString(),
      locked: this.locked.checked,
    };
    if (pin) json.pin = pin;
    return { json };
  }

  async create() {
    const { json, problem, field } = this.body();
    for (const input of [this.recipient, this.pin]) input.removeAttribute("aria-invalid");
    if (problem) {
      showMessage(this.message, problem);
      field?.setAttribute("aria-invalid", "true");
      field?.focus();
      return;
    }
    showMessage(this.message, "");
    this.submit.disabled = true;
    try {
      const created = await request(`/orders/${this.orderId}/deliveries`, { method: "POST", json });
      this.linkFor.textContent = `Link for ${json.recipient}`;
      this.link.value = created.url;
      this.copied.textContent = "";
      this.result.hidden = false;
      this.recipient.value = "";
      this.pin.value = "";
      this.link.focus();
      this.link.select();
      this.schedule(0);
    } catch (error) {
      showMessage(this.message, error.message);
    } finally {
      this.submit.disabled = false;
    }
  }

  async copyLink() {
    try {
      await navigator.clipboard.writeText(this.link.value);
      this.copied.textContent = "Copied. Paste it into your message to the client.";
    } catch {
      this.link.focus();
      this.link.select();
      this.copied.textContent = "Copying was not allowed: the link is selected, copy it with Ctrl+C (⌘C on a Mac).";
    }
  }

  /** Refresh the list after `delay` ms (and then every REFRESH_MS while open and visible). */
  schedule(delay = REFRESH_MS) {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.isOpen || document.visibilityState === "hidden") return;
    this.timer = setTimeout(() => this.refresh(), delay);
  }

  async refresh() {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      const answer = await request(`/orders/${this.orderId}/deliveries`);
      this.draw(answer.deliveries);
      showMessage(this.listMessage, "");
    } catch (error) {
      showMessage(this.listMessage, error.message);
    } finally {
      this.refreshing = false;
      this.schedule();
    }
  }

  /** Newest first; an existing row is updated in place, so focus and selection stay. */
  draw(deliveries) {
    const newest = [...deliveries].reverse();
    this.empty.hidden = newest.length > 0;
    const rows = newest.map((delivery) => {
      let row = this.rows.get(delivery.delivery_id);
      if (!row) {
        row = {
          item: el("li", { cls: "delivery-row", attrs: { "data-delivery-id": delivery.delivery_id } }),
          who: el("strong", { cls: "delivery-recipient" }),
          status: el("span", { cls: "delivery-state" }),
          progress: el("p", { cls: "delivery-progress" }),
          rules: el("p", { cls: "hint" }),
        };
        row.item.append(el("p", { cls: "delivery-head" }, row.who, row.status), row.progress, row.rules);
        this.rows.set(delivery.delivery_id, row);
      }
      row.who.textContent = delivery.recipient;
      row.item.dataset.status = delivery.status;
      row.status.textContent = STATUS_WORDS[delivery.status] || delivery.status;
      row.progress.textContent = progressOf(delivery);
      row.progress.hidden = !row.progress.textContent;
      row.rules.textContent = `${rulesOf(delivery)} · made ${when(delivery.created_at)}`;
      return row.item;
    });
    rows.forEach((item, index) => {
      if (this.list.children[index] !== item) this.list.insertBefore(item, this.list.children[index] || null);
    });
    while (this.list.children.length > rows.length) this.list.lastElementChild.remove();
  }
}
