// Sizes and names: the sets of an order's photos a ZIP holds (an MLS set, a print set, each in
// a folder of its own) and how the photos are named ("Kitchen.jpg", or "01 - Kitchen.jpg" in
// shot order).
//
// The sizes are the service's presets (GET /presets), so an operator's own boards show here
// without a change to the page. A size is made from the full-quality photo, so ticking one
// chooses "Full quality", and choosing "Free preview" unticks the sizes. Like the quality,
// the choice is shown wherever a whole order is downloaded (each copy kept in step with the
// others, in a box that says the choice while it is closed) and remembered while the page
// stays open.

import { el, request } from "./api.js";
import { quality } from "./quality.js";

const $ = (id) => document.getElementById(id);

let presets = []; // [{ name, label, description }], from GET /presets
let maxVariants = 4;
const picked = new Set();
let naming = "original";
let groups = 0;
const fieldsets = new Set();

/** The choice in a few words, on the closed box: "MLS and Print, numbered". */
function words() {
  const labels = sizes.labels;
  return `${labels.length ? labels.join(" and ") : "as delivered"}, ${naming === "numbered" ? "numbered" : "original names"}`;
}

function redraw() {
  for (const fieldset of fieldsets) {
    const box = fieldset.closest("details");
    box.hidden = presets.length === 0;
    box.querySelector(".sizes-now").textContent = words();
    const list = fieldset.querySelector(".size-list");
    if (list.dataset.drawn !== String(presets.length)) {
      list.dataset.drawn = String(presets.length);
      list.replaceChildren(...presets.map((preset) => el("label", { cls: "choice" },
        el("input", { attrs: { type: "checkbox", value: preset.name } }),
        el("span", {}, el("span", { cls: "choice-name", text: preset.label }), " ",
          el("span", { cls: "hint", text: preset.description })))));
      for (const input of list.querySelectorAll("input")) {
        input.addEventListener("change", () => sizes.toggle(input.value, input.checked));
      }
    }
    for (const input of list.querySelectorAll("input")) {
      input.checked = picked.has(input.value);
      input.disabled = !input.checked && picked.size >= maxVariants;
    }
    for (const input of fieldset.querySelectorAll(".naming input")) input.checked = input.value === naming;
  }
}

export const sizes = {
  /** The labels of the sizes ticked, in the order GET /presets lists them. */
  get labels() {
    return presets.filter((preset) => picked.has(preset.name)).map((preset) => preset.label);
  },

  /** The sizes this service offers ({ name, label }), in the order GET /presets lists them. */
  get offered() {
    return presets.map(({ name, label }) => ({ name, label }));
  },

  /** The names of the sizes ticked. */
  get picked() {
    return presets.filter((preset) => picked.has(preset.name)).map((preset) => preset.name);
  },

  /** The download options for the choice: `variants` and `naming` (absent at their defaults). */
  options() {
    const names = presets.filter((preset) => picked.has(preset.name)).map((preset) => preset.name);
    return {
      ...(names.length ? { variants: names.join(",") } : {}),
      ...(naming === "original" ? {} : { naming }),
    };
  },

  /** Read what this service offers; without an answer no sizes are shown. */
  async load() {
    try {
      const answer = await request("/presets");
      presets = answer.presets.map(({ name, label, description }) => ({ name, label, description }));
      maxVariants = answer.max_variants || maxVariants;
    } catch {
      presets = [];
    }
    for (const name of [...picked]) if (!presets.some((preset) => preset.name === name)) picked.delete(name);
    redraw();
  },

  toggle(name, on) {
    if (on) picked.add(name);
    else picked.delete(name);
    if (on && quality.value !== "full") quality.pick("full");
    redraw();
  },

  /** Draw the choice into `host` (an element, or its id), in a box that opens; returns the
   * fieldset. */
  mount(host) {
    const root = typeof host === "string" ? $(host) : host;
    const name = `naming-${(groups += 1)}`;
    const option = (value, label, example) => el("label", { cls: "choice" },
      el("input", { attrs: { type: "radio", name, value } }),
      el("span", {}, el("span", { cls: "choice-name", text: label }), " ", el("span", { cls: "hint", text: example })));
    const fieldset = el("fieldset", { cls: "sizes" },
      el("legend", { text: "Sizes" }),
      el("p", { cls: "hint", text: "One folder per size, every photo in each, in full quality. None ticked: the photos as Autoenhance delivers them." }),
      el("div", { cls: "size-list" }),
      el("fieldset", { cls: "naming" },
        el("legend", { text: "File names" }),
        option("original", "Original", "Kitchen.jpg"),
        option("numbered", "Numbered in shot order", "01 - Kitchen.jpg")));
    for (const input of fieldset.querySelectorAll(".naming input")) {
      input.addEventListener("change", () => {
        if (input.checked) naming = input.value;
        redraw();
      });
    }
    // Closed until opened: most downloads want neither, and on a phone the orders come first.
    const box = el("details", { cls: "sizes-choice" },
      el("summary", {}, "Sizes and file names ", el("span", { cls: "hint sizes-now" })), fieldset);
    box.hidden = true;
    root.append(box);
    fieldsets.add(fieldset);
    redraw();
    return fieldset;
  },
};

// A free preview is too small to make a size from: choosing it unticks them.
quality.onChange((value) => {
  if (value === "preview" && picked.size) {
    picked.clear();
    redraw();
  }
});
