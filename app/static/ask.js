// The Ask tab: questions answered by the service from its own docs (POST /api/ask).

import { el, request, showMessage } from "./api.js";
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);

export class AskTab {
  constructor() {
    this.form = $("ask-form");
    this.input = $("ask-input");
    this.answer = $("ask-answer");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.ask(this.input.value);
    });
    for (const chip of document.querySelectorAll("[data-question]")) {
      chip.addEventListener("click", () => {
        this.input.value = chip.dataset.question;
        this.ask(chip.dataset.question);
      });
    }
  }

  async ask(question) {
    const text = question.trim();
    if (!text) {
      this.input.focus();
      return;
    }
    this.answer.hidden = false;
    this.answer.setAttribute("aria-busy", "true");
    this.answer.replaceChildren(el("p", { cls: "spinning", text: "Looking it up…" }));
    try {
      const result = await request("/api/ask", { method: "POST", json: { question: text } });
      const parts = [];
      if (result.notice) parts.push(el("p", { cls: "hint", text: result.notice }));
      parts.push(renderMarkdown(result.answer));
      if (result.sources.length) {
        parts.push(el("p", { cls: "hint sources", text: `${result.mode === "assistant" ? "Answered by the assistant. Related docs" : "From"}: ${[...new Set(result.sources.map((s) => `${s.source} › ${s.title}`))].join("; ")}` }));
      }
      this.answer.replaceChildren(...parts);
    } catch (error) {
      const box = el("div");
      showMessage(box, error.message);
      this.answer.replaceChildren(box);
    } finally {
      this.answer.setAttribute("aria-busy", "false");
    }
  }
}
