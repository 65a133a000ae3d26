// The Download tab: an order by its id, with options, then the order itself (its photos and
// its actions, see orderview.js).
//
// The order id field belongs to the person: only their typing (or their click on "Use the
// demo order") writes into it. Nothing running in the background — a new order finishing its
// processing, the list of orders — may replace what they typed, or they could download the
// wrong order.

import { access, DEMO_ORDER_ID, optionsQuery, showMessage, UUID_RE } from "./api.js";
import { canSaveInPage } from "./downloader.js";
import { OrderView } from "./orderview.js";
import { quality } from "./quality.js";
import { sizes } from "./sizes.js";

const SUMMARY_DELAY_MS = 350;

const $ = (id) => document.getElementById(id);

export class DownloadTab {
  constructor() {
    this.form = $("download-form");
    this.input = $("order-id");
    this.feedback = $("order-id-feedback");
    this.message = $("download-message");
    this.summaryKey = "";
    this.timer = 0;
    this.loading = null;
    this.onAccessChange = () => {};
    this.view = new OrderView($("summary"), {
      gridId: "summary-images",
      titleId: "summary-title",
      downloadId: "download-button",
      options: () => this.validOptions(),
    });
    quality.mount("download-quality");
    sizes.mount("download-quality");

    const inPage = $("opt-in-page");
    inPage.checked = false;
    inPage.disabled = !canSaveInPage();
    if (inPage.disabled) {
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
    for (const id of ["opt-format", "opt-quality", "opt-max-width", "opt-watermark", "opt-dev-mode"]) {
      $(id).addEventListener("change", () => this.onOptionsChange());
    }
    quality.onChange(() => this.onOptionsChange());
    $("use-demo").addEventListener("click", () => this.useOrder(DEMO_ORDER_ID));
  }

  /** Show the demo-order button (sandbox mode) and prefill the demo id if the field is empty. */
  offerDemo() {
    $("use-demo").hidden = false;
    if (!this.input.value) this.useOrder(DEMO_ORDER_ID);
  }

  /** The person chose this order (the demo button): it replaces the field's text. */
  useOrder(orderId) {
    this.input.value = orderId;
    this.onIdInput({ immediate: true });
  }

  orderId() {
    const value = this.input.value.trim();
    return UUID_RE.test(value) ? value.toLowerCase() : null;
  }

  /** The options as the API spells them (the quality aside), or throws a message naming the
   * bad field. A number's bounds are its input's min and max attributes: the page states them once. */
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

  /** The options; a bad one is flagged on its field, and its message thrown. */
  validOptions() {
    try {
      return this.options();
    } catch (error) {
      this.optionsProblem(error);
      throw error;
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
    quality.setDevMode($("opt-dev-mode").checked);
    try {
      this.options();
      this.optionsProblem(null);
    } catch (error) {
      this.optionsProblem(error);
      return;
    }
    if (this.view.summary && this.orderId()) this.loadSummary();
  }

  key() {
    try {
      return `${this.orderId()}?${optionsQuery(this.options())}&preview=${quality.preview}`;
    } catch {
      return "";
    }
  }

  clearSummary() {
    this.summaryKey = "";
    this.view.clear();
    $("summary").hidden = true;
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
    if (!this.checkedOptions()) return;
    const key = this.key();
    this.loading?.abort();
    const controller = new AbortController();
    this.loading = controller;
    $("check-order").disabled = true;
    try {
      await this.view.load(orderId, { signal: controller.signal });
      if (controller.signal.aborted) return;
      this.summaryKey = key;
      showMessage(this.message, "");
      $("summary").hidden = false;
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
}
