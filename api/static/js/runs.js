// Runs: the ETL run ledger (status, per-source counts, errors) and the stream worker's health.
import { get } from "./api.js";
import { age, h, when } from "./format.js";

const RUNS_POLL_MS = 1500; // a new run shows within 2 s; an unchanged ledger is a 304
const HEALTH_POLL_MS = 10000;
const COUNTS = ["read", "inserted", "updated", "unchanged", "rejected", "error_count"];

function statusChip(status) {
  const marks = { success: "\u2713", partial: "\u25D0", failed: "\u2717", running: "\u21BB" };
  return h("span", { class: `chip ${status}` }, `${marks[status] || ""} ${status}`);
}

function runRow(run, open) {
  const sources = Object.entries(run.sources || {});
  const counts = h("table", { class: "counts" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "source"),
      ...COUNTS.map((c) => h("th", { scope: "col", class: "num" }, c.replace("_count", "s"))))),
    h("tbody", {}, ...sources.map(([name, s]) => h("tr", {},
      h("th", { scope: "row" }, name, " ", statusChip(s.status || "")),
      ...COUNTS.map((c) => h("td", { class: "num" }, s[c] ?? "\u2013"))))));
  const details = h("details", { open }, h("summary", {}, "Files and errors"), h("div", { class: "run-detail" }));
  const card = h("article", { class: "run", "data-run": run.id, "data-status": run.status },
    h("p", { class: "run-head" },
      statusChip(run.status),
      h("span", { class: "run-when" }, when(run.started_at)),
      h("span", { class: "muted" }, ` ${run.trigger} \u00B7 ${sources.length} source${sources.length === 1 ? "" : "s"}`),
      run.error ? h("span", { class: "run-error" }, ` ${run.error}`) : ""),
    h("div", { class: "table-scroll" }, counts),
    details);
  details.addEventListener("toggle", async () => {
    const box = details.querySelector(".run-detail");
    if (!details.open || box.dataset.loaded) return;
    box.dataset.loaded = "1";
    try {
      const full = await get(`/runs/${run.id}`);
      const errors = Object.entries(full.sources || {}).flatMap(([name, s]) =>
        (s.errors || []).map((e) => `${name}: ${typeof e === "string" ? e : JSON.stringify(e)}`));
      box.replaceChildren(
        h("p", {}, `Run ${full.id}, finished ${when(full.finished_at)}.`),
        errors.length ? h("ul", { class: "errors" }, ...errors.map((e) => h("li", {}, e))) : h("p", { class: "muted" }, "No errors."),
        h("pre", { class: "run-json" }, JSON.stringify(full.sources, null, 1)));
    } catch {
      box.dataset.loaded = "";
    }
  });
  return card;
}

function streamCard(health) {
  const s = health.stream;
  if (!s) {
    return h("section", { class: "card", "aria-labelledby": "stream-h" },
      h("h2", { id: "stream-h" }, "Stream worker"), h("p", { class: "muted" }, "No stream worker has run on this database."));
  }
  const facts = [
    ["state", statusChip(s.state === "connected" ? "success" : s.state === "stopped" ? "partial" : "failed"), ` ${s.state}`],
    ["connected", s.connected ? "yes" : "no"],
    ["since", when(s.since)],
    ["last message", s.last_message_age_seconds == null ? "\u2013" : `${age(s.last_message_age_seconds)} ago`],
    ["messages", s.messages], ["bad messages", s.bad_messages], ["reconnects", s.reconnects],
    ["last error", s.last_error || "none"],
    ["report age", s.report_age_seconds == null ? "\u2013" : `${age(s.report_age_seconds)}`],
  ];
  return h("section", { class: "card", "aria-labelledby": "stream-h" },
    h("h2", { id: "stream-h" }, "Stream worker"),
    h("dl", { class: "facts" }, ...facts.flatMap(([term, ...value]) => [h("dt", {}, term), h("dd", {}, ...value)])));
}

export async function renderRuns(view) {
  const title = h("h1", {}, "Runs");
  const healthBox = h("div", { class: "health" });
  const list = h("section", { class: "runs", "aria-labelledby": "runs-h" }, h("h2", { id: "runs-h" }, "ETL run ledger"));
  const items = h("div", { class: "run-list" });
  list.append(items);
  view.replaceChildren(title, healthBox, list);

  let shown = "";
  async function loadRuns() {
    const runs = await get("/runs?limit=50", { quiet: true });
    const signature = JSON.stringify(runs.data.map((r) => [r.id, r.status, r.finished_at]));
    if (signature === shown) return;
    shown = signature;
    const open = new Set([...items.querySelectorAll("article:has(details[open])")].map((d) => d.dataset.run));
    items.replaceChildren(...(runs.data.length
      ? runs.data.map((run) => runRow(run, open.has(run.id)))
      : [h("p", { class: "muted" }, "No runs yet.")]));
  }
  async function loadHealth() {
    const health = await get("../health", { quiet: true });
    healthBox.replaceChildren(
      h("p", {}, "API status: ", h("span", { class: `chip ${health.status === "ok" ? "success" : "partial"}` }, health.status),
        health.last_run ? ` \u00B7 last batch run ${age(health.last_run.age_seconds)} ago` : ""),
      streamCard(health));
  }
  await Promise.all([loadRuns(), loadHealth()]);
  const timers = [
    setInterval(() => !document.hidden && loadRuns().catch(() => {}), RUNS_POLL_MS),
    setInterval(() => !document.hidden && loadHealth().catch(() => {}), HEALTH_POLL_MS),
  ];
  return () => timers.forEach(clearInterval);
}
