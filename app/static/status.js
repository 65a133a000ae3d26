// The Status tab: health, mode, live counters; errors and Sentry for admins.
//
// The counters are service-wide (every visitor's downloads), so they are shown here, for
// operators, and fetched only while this tab is open.

import { ApiError, el, formatDuration, request } from "./api.js";

const REFRESH_MS = 5000;
const COUNTER_LABELS = {
  orders_processed: "Orders downloaded",
  images_downloaded: "Images delivered",
  images_failed: "Images skipped",
  archives_served: "Archives served",
  orders_created: "Test orders created",
  uptime_seconds: "Up for",
};

const $ = (id) => document.getElementById(id);

function facts(list, entries) {
  list.replaceChildren(...entries.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value })]));
}

function counterValue(name, value) {
  if (name === "uptime_seconds") return formatDuration(Number(value));
  return typeof value === "number" ? value.toLocaleString() : String(value);
}

export class StatusTab {
  constructor() {
    this.timer = 0;
    this.visible = false;
    this.admin = false;
    this.sessionGeneration = 0;
    this.sentryLoads = Promise.resolve();
    this.onAdminChange = () => {};
    $("admin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn();
    });
    $("admin-sign-out").addEventListener("click", () => this.signOut());
    document.addEventListener("visibilitychange", () => this.schedule());
  }

  /** Called by the tab switcher: refresh while shown, stop when hidden. */
  show(visible) {
    this.visible = visible;
    if (visible) {
      this.checkSession();
      this.refresh();
    }
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    if (document.hidden || this.noStats || !this.visible) return;
    this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  showHealth(health) {
    if (!health) return;
    facts($("health"), [
      ["Status", health.status],
      ["Mode", health.mode === "sandbox" ? "sandbox (built-in emulator, nothing charged)" : "live (Autoenhance API)"],
      ["Autoenhance key", health.upstream_key_configured ? "configured" : "not configured"],
      ["Version", health.version || "?"],
    ]);
    $("version").textContent = health.version ? ` · version ${health.version}` : "";
  }

  async refresh() {
    try {
      const [health, stats] = await Promise.all([request("/health").catch(() => null), request("/api/stats")]);
      this.showHealth(health);
      $("health-message").textContent = health ? "" : "The health check did not answer.";
      this.showStats(stats);
    } catch (error) {
      // A service without counters: stop asking (the tab says so).
      if (error instanceof ApiError && error.status === 404) this.noStats = true;
      if (this.visible) $("health-message").textContent = error instanceof ApiError && error.status === 404 ? "Counters are not available on this service." : error.message;
    } finally {
      this.schedule();
    }
  }

  showStats(stats) {
    const known = Object.keys(COUNTER_LABELS).filter((name) => name in stats);
    facts($("counters"), known.map((name) => [COUNTER_LABELS[name], counterValue(name, stats[name])]));
    if (this.admin) this.showErrors(stats.recent_errors || []);
  }

  showErrors(errors) {
    $("recent-errors").replaceChildren(
      ...(errors.length ? errors : [null]).map((error) => error
        ? el("li", { text: [error.time || error.timestamp, error.status, error.path || error.route, error.error || error.message].filter(Boolean).join(" · ") })
        : el("li", { text: "No errors recorded." })),
    );
  }

  async checkSession() {
    // An answer that comes back after a sign-in or sign-out started is stale: drop it.
    const generation = this.sessionGeneration;
    let admin = false;
    try {
      const session = await request("/api/admin/session");
      admin = session?.admin !== false;
    } catch (error) {
      // 503: the session store cannot say; the next check will. Not a sign-out.
      if (error.status === 503) return;
      admin = false;
    }
    if (generation === this.sessionGeneration) this.setAdmin(admin);
  }

  setAdmin(admin) {
    const changed = admin !== this.admin;
    this.admin = admin;
    if (changed) this.onAdminChange();
    $("admin-form").hidden = admin;
    $("admin-signed-in").hidden = !admin;
    if (admin) {
      // Every load still out is awaited on sign-out, not only the newest.
      this.sentryLoads = Promise.allSettled([this.sentryLoads, this.loadSentry()]);
    }
  }

  async signIn() {
    const token = $("admin-token").value;
    if (!token) {
      $("admin-message").textContent = "Enter the administrator token (ADMIN_TOKEN).";
      return;
    }
    try {
      await request("/api/admin/session", { method: "POST", json: { token } });
      this.sessionGeneration += 1;
      $("admin-token").value = "";
      $("admin-message").textContent = "";
      this.setAdmin(true);
      this.refresh();
    } catch (error) {
      $("admin-message").textContent = error.status === 401 || error.status === 403
        ? "That token is not right, or administration is turned off on this service."
        : error.message;
    }
  }

  async signOut() {
    this.sessionGeneration += 1;
    // A request still out on the session would be refused once it is revoked: let it land.
    await this.sentryLoads;
    try {
      await request("/api/admin/session", { method: "DELETE" });
    } catch {
      // Signed out locally either way.
    }
    this.setAdmin(false);
  }

  async loadSentry() {
    const list = $("sentry-issues");
    try {
      const result = await request("/api/sentry/issues");
      const issues = Array.isArray(result) ? result : result?.issues || [];
      if (!issues.length) {
        list.replaceChildren(el("li", { text: result?.message || result?.detail || "No open issues." }));
        return;
      }
      list.replaceChildren(...issues.map((issue) => {
        const item = el("li");
        const title = issue.title || issue.culprit || "issue";
        if (issue.permalink && /^https:\/\//.test(issue.permalink)) item.append(el("a", { text: title, attrs: { href: issue.permalink, rel: "noopener" } }));
        else item.append(title);
        if (issue.count) item.append(` · ${issue.count} events`);
        if (issue.lastSeen) item.append(` · last ${new Date(issue.lastSeen).toLocaleString()}`);
        return item;
      }));
    } catch (error) {
      list.replaceChildren(el("li", { text: error.message }));
    }
  }
}
