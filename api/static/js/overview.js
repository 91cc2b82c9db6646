// Overview: every asset with its price, 24h change, 7-day sparkline, volatility, freshness,
// sources and quality score; sortable; live from the SSE stream (polls `latest` without it).
import { follow, get } from "./api.js";
import { INTERVAL_MS, age, h, pct, price, signedPct, sparkline } from "./format.js";

const DAY_MS = 86400000;
const POLL_MS = 5000;
const COLUMNS = [
  { id: "symbol", label: "Asset", type: "text" },
  { id: "price", label: "Price", type: "num" },
  { id: "change", label: "24h", type: "num" },
  { id: "spark", label: "7 days", sortable: false },
  { id: "volatility", label: "Volatility 30d", type: "num" },
  { id: "age", label: "Freshness", type: "num" },
  { id: "sources", label: "Sources", type: "num" },
  { id: "quality", label: "Quality", type: "num" },
];

function byKey(list) {
  return Object.fromEntries(list.map((item) => [item.symbol, item]));
}

function rowsOf(latest, metrics, symbols, quality) {
  const m = byKey(metrics);
  const s = byKey(symbols);
  const scores = {};
  for (const report of quality) {
    (scores[report.symbol] ||= []).push(report);
  }
  return latest.map((item) => {
    const metric = m[item.symbol] || {};
    const reports = scores[item.symbol] || [];
    const preferred = reports.find((r) => r.source === item.source && r.interval === item.interval);
    return {
      symbol: item.symbol,
      name: s[item.symbol]?.name || "",
      price: item.price,
      asOf: item.as_of,
      change: metric.change_pct_24h ?? null,
      volatility: metric.volatility_30d ?? metric.volatility_7d ?? null,
      age: item.age_seconds,
      stale: item.stale,
      source: item.source,
      interval: item.interval,
      sources: s[item.symbol]?.sources.length ?? 0,
      quality: (preferred || reports[0])?.score ?? null,
    };
  });
}

function sparkRequest(row) {
  const end = Date.parse(row.asOf);
  const fine = ["1m", "5m", "15m", "30m", "1h"].includes(row.interval);
  const query = new URLSearchParams({
    interval: fine ? "1h" : "1d", start: String(end - 7 * DAY_MS), end: String(end),
    limit: "200", source: row.source,
  });
  return `/candles/${encodeURIComponent(row.symbol)}?${query}`;
}

export async function renderOverview(view) {
  const [latest, metrics, symbols, quality] = await Promise.all([
    get("/latest"), get("/metrics"), get("/symbols"), get("/quality"),
  ]);
  let rows = rowsOf(latest.data, metrics.data, symbols.data, quality.data);
  let sort = { id: "symbol", dir: 1 };
  const cells = new Map(); // symbol -> {price, change, age, row element}
  const sparks = new Map(); // symbol -> svg, kept across re-sorts

  const title = h("h1", {}, "Overview");
  const note = h("p", { class: "note", id: "overview-note" },
    `${rows.length} assets. Prices update live; sort by any column.`);
  const table = h("table", { class: "assets", "aria-describedby": "overview-note" });
  const head = h("tr");
  for (const column of COLUMNS) {
    const th = h("th", { scope: "col", class: column.type === "num" ? "num" : "", "data-col": column.id });
    if (column.sortable === false) th.append(column.label);
    else th.append(h("button", { type: "button", class: "sort", onclick: () => sortBy(column.id) }, column.label));
    head.append(th);
  }
  const body = h("tbody");
  table.append(h("thead", {}, head), body);
  const wrap = h("div", { class: "table-wrap" }, table);
  view.replaceChildren(title, note, wrap);

  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      loadSpark(entry.target.dataset.symbol, entry.target);
    }
  }, { rootMargin: "200px" });

  async function loadSpark(symbol, cell) {
    const row = rows.find((r) => r.symbol === symbol);
    const cacheKey = `spark:${symbol}:${row.source}:${row.asOf}`;
    let closes = JSON.parse(sessionStorage.getItem(cacheKey) || "null");
    if (!closes) {
      try {
        const page = await get(sparkRequest(row), { quiet: true });
        closes = page.data.map((bar) => bar.close);
        sessionStorage.setItem(cacheKey, JSON.stringify(closes));
      } catch {
        cell.textContent = "\u2013";
        return;
      }
    }
    const svg = sparkline(closes, { label: `${symbol}, 7 days: ${closes.length} closes` });
    sparks.set(symbol, svg);
    cell.replaceChildren(svg);
  }

  function paint() {
    const sorted = [...rows].sort((a, b) => {
      const x = a[sort.id];
      const y = b[sort.id];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sort.dir;
    });
    for (const th of head.children) {
      th.removeAttribute("aria-sort");
      if (th.dataset.col === sort.id) th.setAttribute("aria-sort", sort.dir > 0 ? "ascending" : "descending");
    }
    body.replaceChildren(...sorted.map(rowElement));
  }

  function rowElement(row) {
    const change = signedPct(row.change);
    const priceCell = h("td", { class: "num", "data-field": "price" }, price(row.price));
    const ageCell = h("td", { "data-field": "age" }, badge(row));
    const sparkCell = h("td", { class: "spark-cell", "data-symbol": row.symbol });
    if (sparks.has(row.symbol)) sparkCell.append(sparks.get(row.symbol));
    else observer.observe(sparkCell);
    const tr = h("tr", { "data-symbol": row.symbol },
      h("th", { scope: "row" },
        h("a", { href: `#/asset/${encodeURIComponent(row.symbol)}` }, row.symbol),
        h("span", { class: "muted" }, ` ${row.name}`)),
      priceCell,
      h("td", { class: `num ${change.cls}` }, change.text),
      sparkCell,
      h("td", { class: "num" }, pct(row.volatility)),
      ageCell,
      h("td", { class: "num" }, String(row.sources)),
      h("td", { class: "num" }, row.quality === null ? "\u2013" : row.quality.toFixed(1)),
    );
    cells.set(row.symbol, { priceCell, ageCell, tr });
    return tr;
  }

  function badge(row) {
    return h("span", { class: row.stale ? "badge stale" : "badge fresh", title: `as of ${row.asOf}` },
      row.stale ? "stale" : "fresh", ` ${age(row.age)}`);
  }

  function sortBy(id) {
    sort = { id, dir: sort.id === id ? -sort.dir : 1 };
    paint();
    head.querySelector(`[data-col="${id}"] button`)?.focus();
  }

  function update(symbol, newPrice, asOf) {
    const row = rows.find((r) => r.symbol === symbol);
    const cell = cells.get(symbol);
    if (!row || !cell) return;
    if (Date.parse(asOf) < Date.parse(row.asOf)) return;
    row.price = newPrice;
    row.asOf = asOf;
    row.age = Math.max(0, (Date.now() - Date.parse(asOf)) / 1000);
    row.stale = false;
    cell.priceCell.textContent = price(newPrice);
    cell.ageCell.replaceChildren(badge(row));
    cell.tr.classList.remove("flash");
    void cell.tr.offsetWidth; // restart the highlight
    cell.tr.classList.add("flash");
  }

  paint();
  requestAnimationFrame(() => performance.mark("overview-painted"));

  const live = document.getElementById("live");
  let poller = null;
  async function poll() {
    try {
      const fresh = await get("/latest", { quiet: true });
      for (const item of fresh.data) update(item.symbol, item.price, item.as_of);
    } catch {
      /* the next poll tries again */
    }
  }
  const stop = follow(null, {
    price: (event) => update(event.symbol, event.price, event.as_of),
    candle: (event) => {
      const row = rows.find((r) => r.symbol === event.symbol);
      if (row && row.source === event.source && row.interval === event.interval) {
        update(event.symbol, event.close, new Date(Date.parse(event.open_time) + INTERVAL_MS[event.interval]).toISOString());
      }
    },
    reset: poll,
    onUp: () => {
      live.textContent = "live";
      live.className = "live on";
      clearInterval(poller);
      poller = null;
    },
    onDown: () => {
      live.textContent = "polling";
      live.className = "live off";
      poller ||= setInterval(poll, POLL_MS);
    },
  });
  return () => {
    stop();
    clearInterval(poller);
    observer.disconnect();
    live.textContent = "";
    live.className = "live";
  };
}
