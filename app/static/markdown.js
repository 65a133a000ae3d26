// A small Markdown renderer for answers from the docs: headings, paragraphs, lists, code
// blocks, tables as preformatted text, inline code, bold and links. It builds DOM nodes with
// textContent only, so nothing in an answer can become markup or script.

import { el } from "./api.js";

const INLINE = /(`[^`]+`|\*\*[^*]+\*\*|\[[^\]]+\]\([^)\s]+\))/g;

function inline(parent, text) {
  for (const part of text.split(INLINE)) {
    if (!part) continue;
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) {
      parent.append(el("code", { text: part.slice(1, -1) }));
    } else if (part.startsWith("**") && part.endsWith("**") && part.length > 3) {
      parent.append(el("strong", { text: part.slice(2, -2) }));
    } else if (part.startsWith("[")) {
      const match = /^\[([^\]]+)\]\(([^)\s]+)\)$/.exec(part);
      const href = match?.[2] || "";
      // Only links within this service or to http(s) pages; never javascript: or data:.
      if (match && (/^https?:\/\//.test(href) || href.startsWith("/") || href.startsWith("#"))) {
        parent.append(el("a", { text: match[1], attrs: { href } }));
      } else {
        parent.append(document.createTextNode(match ? match[1] : part));
      }
    } else {
      parent.append(document.createTextNode(part));
    }
  }
  return parent;
}

/** Render `markdown` into a DocumentFragment. */
export function renderMarkdown(markdown) {
  const out = document.createDocumentFragment();
  const lines = markdown.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim().startsWith("```")) {
      const code = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith("```")) code.push(lines[i++]);
      i += 1;
      out.append(el("pre", {}, el("code", { text: code.join("\n") })));
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      out.append(inline(el(heading[1].length <= 2 ? "h3" : "h4"), heading[2]));
      i += 1;
      continue;
    }
    if (/^\s*\|/.test(line)) {
      const rows = [];
      while (i < lines.length && /^\s*\|/.test(lines[i])) rows.push(lines[i++]);
      out.append(el("pre", { cls: "table" }, el("code", { text: rows.filter((r) => !/^\s*\|[\s|:-]+\|\s*$/.test(r)).join("\n") })));
      continue;
    }
    const bullet = /^\s*(?:[-*]|\d+\.)\s+/;
    if (bullet.test(line)) {
      const ordered = /^\s*\d+\./.test(line);
      const list = el(ordered ? "ol" : "ul");
      while (i < lines.length && (bullet.test(lines[i]) || (/^\s{2,}\S/.test(lines[i]) && list.lastChild))) {
        if (bullet.test(lines[i])) list.append(inline(el("li"), lines[i].replace(bullet, "")));
        else inline(list.lastChild, ` ${lines[i].trim()}`);
        i += 1;
      }
      out.append(list);
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() && !/^(#{1,6}\s|```|\s*\||\s*(?:[-*]|\d+\.)\s)/.test(lines[i])) {
      paragraph.push(lines[i++].trim());
    }
    out.append(inline(el("p"), paragraph.join(" ")));
  }
  return out;
}
