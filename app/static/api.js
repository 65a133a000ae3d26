// Calls to this service (never to a third party) and errors in words a person understands.

export const DEMO_ORDER_ID = "8f5c2a4e-3b1d-4e7a-9c6f-0a1b2c3d4e5f";
export const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

const KEY_STORAGE = "batch-downloader-key";

/** The key the person entered under "Access key", kept in this tab only (sessionStorage). */
export const access = {
  get() {
    try {
      const value = JSON.parse(sessionStorage.getItem(KEY_STORAGE) || "null");
      return value && value.key ? value : null;
    } catch {
      return null;
    }
  },
  set(kind, key) {
    if (key) sessionStorage.setItem(KEY_STORAGE, JSON.stringify({ kind, key }));
    else sessionStorage.removeItem(KEY_STORAGE);
  },
  headers() {
    const value = this.get();
    if (!value) return {};
    return value.kind === "own" ? { "X-Autoenhance-Key": value.key } : { "X-API-Key": value.key };
  },
};

/** An error answer of the service, or a network failure (status 0), with a human message. */
export class ApiError extends Error {
  constructor(status, code, detail, retryAfter) {
    super(humanMessage(status, code, detail, retryAfter));
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

/** Turn a non-2xx Response into an ApiError (reads the one JSON error shape). */
export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  return new ApiError(response.status, body?.error || "", body?.detail ?? null, retryAfter);
}

/** fetch() a JSON endpoint of this service; throws ApiError on failure. */
export async function request(path, { method = "GET", json, body, signal, headers } = {}) {
  const init = { method, signal, headers: { Accept: "application/json", ...access.headers(), ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", null, null);
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

/** The upload formats the service accepts (app/upstream/sniff.py), in words. */
export const ACCEPTED_FORMATS = "JPEG, PNG, WebP, TIFF, HEIC, AVIF or camera RAW (DNG, CR2, CR3, NEF, NRW, ARW, SRF, SR2, RAF)";
/** File name endings of those formats, for the file chooser and for files without a type. */
export const ACCEPTED_EXTENSIONS = [
  ".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif",
  ".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf",
];

/** A text ending in exactly one full stop (or its own ? or !). */
function sentence(text) {
  if (!text) return "";
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

function detailText(detail) {
  if (!detail) return "";
  if (typeof detail === "string") return detail;
  if (typeof detail.message === "string") return detail.message;
  if (Array.isArray(detail)) {
    return detail.map((item) => `${(item.loc || []).slice(-1)[0] || "value"}: ${item.msg}`).join("; ");
  }
  return "";
}

function humanMessage(status, code, detail, retryAfter) {
  const wait = retryAfter ? `Try again in ${retryAfter} second${retryAfter === 1 ? "" : "s"}.` : "Try again in a moment.";
  switch (code) {
    case "network":
      return "The service did not answer. Check your connection, or whether the service is running, and try again.";
    case "invalid_order_id":
      return "That is not an order id. An order id is a UUID such as 8f5c2a4e-3b1d-4e7a-9c6f-0a1b2c3d4e5f: copy it from the Autoenhance app or API.";
    case "not_found":
      return "No order with this id is visible to this service. Check the id; if the order belongs to another Autoenhance account, enter that account's key under “Access key”.";
    case "empty_order":
      return "This order has no images yet. Upload images to it first, or create a test order.";
    case "nothing_to_deliver":
      return "None of this order's images can be downloaded yet. Images still processing become available when Autoenhance finishes; wait a minute and try again.";
    case "unauthorized":
      return "This service needs a key. Enter it under “Access key” (or your own Autoenhance key) and try again.";
    case "upstream_unauthorized":
      return "Autoenhance refused the API key. Check the key under “Access key”, or ask the operator to check the service's key.";
    case "own_key_not_linkable":
      return detailText(detail);
    case "rate_limited":
      return `Too many requests for now. ${wait}`;
    case "upstream_unavailable":
      return `Autoenhance is busy or failing right now. ${wait}`;
    case "upstream_error":
      return "Autoenhance could not be reached or failed. Try again shortly; if it keeps failing, check the Status tab.";
    case "not_an_image":
      // The detail names the file and ends with its own full stop.
      return `${sentence(detailText(detail)) || "A file is not an image."} Send ${ACCEPTED_FORMATS} files.`;
    case "validation_error":
      return `Some options are not valid: ${sentence(detailText(detail))} Correct them and try again.`;
    default:
      break;
  }
  if (status === 413) return `Too large: ${detailText(detail) || "the upload is over the limit"}. Send fewer or smaller files.`;
  if (status === 415) return `${sentence(detailText(detail)) || "That is not an upload this service accepts."} Send ${ACCEPTED_FORMATS} files.`;
  if (status === 403) return detailText(detail) || "This is not allowed for you.";
  if (status >= 500) return `The service failed (${status}). Try again shortly; if it keeps failing, check the Status tab.`;
  return detailText(detail) || `The request failed (${status}).`;
}

/** The download options of the form as query parameters (only those that differ from defaults). */
export function optionsQuery(options) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(options)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  return query;
}

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 && unit > 0 ? 1 : 0)} ${units[unit]}`;
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Create an element with text and classes (never innerHTML, so no markup is ever injected). */
export function el(tag, { text, cls, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/**
 * Show a message box with an optional list of details, or hide it. Errors interrupt a screen
 * reader (role=alert); information and success are announced politely (role=status). A
 * `transient` message (what a finished action did) goes away at the person's next action
 * (see `clearTransient`), so it never describes something older than what is on screen.
 */
export function showMessage(box, text, { kind = "error", items = [], transient = false } = {}) {
  box.replaceChildren();
  box.toggleAttribute("data-transient", transient);
  if (!text) {
    box.hidden = true;
    return;
  }
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.className = `message ${kind}`;
  box.append(el("p", { text }));
  if (items.length) box.append(el("ul", {}, ...items.map((item) => el("li", { text: item }))));
  box.hidden = false;
}

/** Hide every transient message (a new action has started). */
export function clearTransient() {
  for (const box of document.querySelectorAll(".message[data-transient]")) showMessage(box, "");
}
