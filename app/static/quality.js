// "Full quality" or "Free preview": the one choice a person makes before photos leave the page.
//
// Autoenhance's free preview is about 1024 px wide; full quality is the photo at its own size and
// costs a credit per photo (nothing in sandbox mode or dev mode). The choice is shown wherever a
// download starts (each copy kept in step with the others) and remembered while the page stays
// open. In sandbox mode full quality is free, so it is chosen from the start; with a real
// account nothing is chosen until the person picks, and a download asks for the choice first.

import { el } from "./api.js";

const $ = (id) => document.getElementById(id);

let chosen = null; // "full" | "preview" | null
let sandbox = false;
let devMode = false;
let groups = 0;
const fieldsets = new Set();

function fullCost() {
  if (sandbox) return "the photos at their own size; free here (sandbox mode)";
  if (devMode) return "the photos at their own size; free in dev mode";
  return "the photos at their own size; 1 credit per photo (free in dev mode)";
}

function redraw() {
  for (const fieldset of fieldsets) {
    for (const input of fieldset.querySelectorAll("input[type=radio]")) input.checked = input.value === chosen;
    fieldset.querySelector(".cost-full").textContent = fullCost();
    fieldset.classList.remove("asking");
  }
}

export const quality = {
  /** "full", "preview", or null while nothing is chosen. */
  get value() {
    return chosen;
  },

  /** The `preview` download option for the choice (null while nothing is chosen). */
  get preview() {
    return chosen === null ? null : chosen === "preview";
  },

  /** Words for a message: "full quality" or "free preview". */
  get words() {
    return chosen === "preview" ? "free preview" : "full quality";
  },

  choose(value) {
    chosen = value === "preview" ? "preview" : value === "full" ? "full" : null;
    redraw();
  },

  /** The person's choice (theirs, or implied by another of theirs): every listener hears it. */
  pick(value) {
    quality.choose(value);
    for (const listener of listeners) listener(chosen);
  },

  /** Sandbox mode: full quality is free, so it is the choice until the person picks another. */
  setSandbox(on) {
    sandbox = on;
    if (on && chosen === null) chosen = "full";
    redraw();
  },

  setDevMode(on) {
    devMode = on;
    redraw();
  },

  /** Nothing chosen yet: show every copy of the choice as the question, focus the nearest. */
  ask(near) {
    let focus = null;
    for (const fieldset of fieldsets) {
      fieldset.classList.add("asking");
      if (!focus || (near && fieldset.closest(".panel") === near.closest(".panel"))) focus = fieldset;
    }
    focus?.querySelector("input")?.focus();
  },

  /** Draw the choice into `host` (an element, or its id); returns the fieldset. */
  mount(host) {
    const root = typeof host === "string" ? $(host) : host;
    const name = `quality-${(groups += 1)}`;
    const option = (value, label, cost) => el("label", { cls: "choice" },
      el("input", { attrs: { type: "radio", name, value } }),
      el("span", {}, el("span", { cls: "choice-name", text: label }), " ", cost));
    const fieldset = el("fieldset", { cls: "quality" },
      el("legend", { text: "Download as" }),
      option("full", "Full quality", el("span", { cls: "hint cost-full" })),
      option("preview", "Free preview", el("span", {
        cls: "hint",
        text: "about 1024 px wide, to check the edit; no credits; the ZIP's name says “(preview)”",
      })));
    for (const input of fieldset.querySelectorAll("input")) {
      input.addEventListener("change", () => {
        if (input.checked) quality.pick(input.value);
      });
    }
    root.append(fieldset);
    fieldsets.add(fieldset);
    redraw();
    return fieldset;
  },

  /** Called with the new value whenever the person changes the choice. */
  onChange(listener) {
    listeners.add(listener);
  },
};

const listeners = new Set();
