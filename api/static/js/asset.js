// Asset page: candlesticks with volume for any interval and range (panning left loads older
// pages), SMA/EMA overlays, volatility and drawdown, per-source prices, the quality report on
// a timeline, coverage per source, and "Download" for the shown range.
import { ApiError, download, get } from "./api.js";
import {
  DOWN, LINE_A, LINE_B, UP, baseOptions, chartLibrary, drawdown, ema, rollingVolatility, sma,
} from "./charts.js";
import { INTERVAL_MS, h, isoDay, pct, price, signedPct, when } from "./format.js";

const INTERVALS = ["1m", "5m", "15m", "30m", "1h", "4h", "6h", "1d", "1w"];
const WINDOW_BARS = 5000; // drawn at once; panning past the left edge loads more
const PAGE = 1000;
const OLDER_BARS = 1000;
const RANGES = [["1M", 30], ["3M", 91], ["1Y", 365], ["5Y", 1826], ["All", null]];

function toBar(row) {
  return {
    time: Date.parse(row.open_time) / 1000,
    open: row.open, high: row.high, low: row.low, close: row.close,
    volume: row.volume ?? row.volume_quote ?? 0,
  };
}

async function pages(symbol, query) {
  const bars = [];
  let source = null;
  let params = new URLSearchParams({ ...query, limit: String(PAGE) });
  for (;;) {
    const page = await get(`/candles/${encodeURIComponent(symbol)}?${params}`);
    source = page.source;
    bars.push(...page.data.map(toBar));
    if (!page.next_cursor || bars.length >= WINDOW_BARS) break;
    params = new URLSearchParams({ ...query, limit: String(PAGE), cursor: page.next_cursor });
  }
  return { bars, source };
}

function fileNameOf(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  return /filename="([^"]+)"/.exec(header)?.[1] || fallback;
}

export async function renderAsset(view, symbol) {
  const [detail, qualityList, lib] = await Promise.all([
    get(`/symbol/${encodeURIComponent(symbol)}`),
    get(`/quality?symbols=${encodeURIComponent(symbol)}`),
    chartLibrary(),
  ]);
  const asset = detail.asset;
  const coverage = asset.coverage;
  const newestOpen = Math.max(...coverage.map((c) => Date.parse(c.last_open)));
  const oldestOpen = Math.min(...coverage.map((c) => Date.parse(c.first_open)));
  const preferred = detail.metrics[0] || null;

  const state = {
    interval: preferred?.interval && INTERVALS.includes(preferred.interval) ? preferred.interval : "1d",
    source: "",
    days: 365,
    sma: true,
    ema: true,
    bars: [],
    servedSource: null,
    start: 0,
    end: 0,
    loadingOlder: false,
    exhausted: false,
  };

  // ---- header and per-source prices
  const change = signedPct(preferred?.change_pct_24h);
  const header = h("div", { class: "asset-head" },
    h("h1", {}, asset.symbol, h("span", { class: "muted" }, ` ${asset.name}`)),
    h("p", { class: "asset-price" }, h("span", { class: "big" }, price(preferred?.last_price)),
      h("span", { class: `change ${change.cls}` }, ` ${change.text} 24h`),
      h("span", { class: "muted" }, ` as of ${when(preferred?.as_of)} \u00B7 ${preferred?.source ?? ""}`)),
    h("p", {}, h("a", { href: "#/" }, "\u2190 Overview")));

  const sourcePrices = h("section", { class: "card", "aria-labelledby": "src-h" },
    h("h2", { id: "src-h" }, "Price per source"),
    h("div", { class: "table-scroll" }, h("table", { class: "plain" },
      h("thead", {}, h("tr", {}, ...["source", "interval", "last", "24h", "as of"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ...detail.metrics.map((m) => {
        const c = signedPct(m.change_pct_24h);
        return h("tr", {}, h("th", { scope: "row" }, m.source), h("td", {}, m.interval),
          h("td", { class: "num" }, price(m.last_price)), h("td", { class: `num ${c.cls}` }, c.text),
          h("td", {}, when(m.as_of)));
      })))));

  // ---- controls
  const intervalSelect = h("select", { id: "interval", name: "interval" },
    ...INTERVALS.map((i) => h("option", { value: i, selected: i === state.interval }, i)));
  const sourceSelect = h("select", { id: "source", name: "source" },
    h("option", { value: "" }, "auto (newest)"),
    ...asset.sources.map((s) => h("option", { value: s }, s)));
  const rangeButtons = RANGES.map(([label, days]) => h("button", {
    type: "button", class: "range", "aria-pressed": String(days === state.days),
    onclick: (event) => {
      state.days = days;
      for (const b of rangeButtons) b.setAttribute("aria-pressed", String(b === event.currentTarget));
      reload();
    },
  }, label));
  const smaBox = h("input", { type: "checkbox", id: "sma", checked: state.sma });
  const emaBox = h("input", { type: "checkbox", id: "ema", checked: state.ema });
  const formatSelect = h("select", { id: "export-format", name: "format" },
    ...["csv", "ndjson", "parquet"].map((f) => h("option", { value: f }, f.toUpperCase())));
  const downloadButton = h("button", { type: "button", id: "download", onclick: downloadShown }, "Download");
  const rangeLabel = h("p", { class: "muted", id: "range-label", "aria-live": "polite" });
  const controls = h("form", { class: "controls", onsubmit: (e) => e.preventDefault() },
    h("label", { for: "interval" }, "Interval "), intervalSelect,
    h("label", { for: "source" }, "Source "), sourceSelect,
    h("span", { class: "group", role: "group", "aria-label": "Range" }, ...rangeButtons),
    h("label", {}, smaBox, " SMA 20"), h("label", {}, emaBox, " EMA 50"),
    h("span", { class: "group" }, h("label", { for: "export-format" }, "Export "), formatSelect, downloadButton));

  // ---- charts
  const priceBox = h("div", { class: "chart", id: "price-chart", tabindex: "0", role: "img",
    "aria-label": `${asset.symbol} candlestick chart; arrow keys pan, + and - zoom` });
  const volBox = h("div", { class: "chart small", id: "volatility-chart", role: "img", "aria-label": "rolling volatility" });
  const ddBox = h("div", { class: "chart small", id: "drawdown-chart", role: "img", "aria-label": "drawdown" });
  const keys = h("p", { class: "muted keys" },
    h("button", { type: "button", onclick: () => pan(-0.25) }, "\u25C0 Pan"),
    h("button", { type: "button", onclick: () => pan(0.25) }, "Pan \u25B6"),
    h("button", { type: "button", onclick: () => zoom(0.7) }, "+ Zoom in"),
    h("button", { type: "button", onclick: () => zoom(1.4) }, "\u2212 Zoom out"),
    h("button", { type: "button", onclick: () => chart.timeScale().fitContent() }, "Fit"));
  const legend = h("p", { class: "legend" },
    h("span", { class: "key up" }, "\u25B2 up bar"), h("span", { class: "key down" }, "\u25BC down bar"),
    h("span", { class: "key sma" }, "SMA 20"), h("span", { class: "key ema" }, "EMA 50"));

  const chartsSection = h("section", { class: "card", "aria-labelledby": "chart-h" },
    h("h2", { id: "chart-h" }, "Candles"), controls, rangeLabel, legend, priceBox, keys,
    h("div", { class: "pair" },
      h("div", {}, h("h3", {}, "Volatility (30 bars, annualised)"), volBox),
      h("div", {}, h("h3", {}, "Drawdown from peak"), ddBox)));

  const qualitySection = h("section", { class: "card", "aria-labelledby": "q-h" },
    h("h2", { id: "q-h" }, "Data quality"), qualityTimeline(qualityList.data, coverage, oldestOpen, newestOpen));
  const coverageSection = h("section", { class: "card", "aria-labelledby": "cov-h" },
    h("h2", { id: "cov-h" }, "Coverage per source"),
    h("div", { class: "table-scroll" }, coverageTable(coverage, oldestOpen, newestOpen)));

  view.replaceChildren(header, chartsSection, h("div", { class: "pair" }, sourcePrices, coverageSection), qualitySection);

  const chart = lib.createChart(priceBox, baseOptions(380));
  const candles = chart.addSeries(lib.CandlestickSeries, {
    upColor: UP, downColor: DOWN, borderUpColor: UP, borderDownColor: DOWN, wickUpColor: UP, wickDownColor: DOWN,
  });
  const volume = chart.addSeries(lib.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "volume", lastValueVisible: false, priceLineVisible: false });
  chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
  const smaLine = chart.addSeries(lib.LineSeries, { color: LINE_A, lineWidth: 2, priceLineVisible: false, lastValueVisible: false });
  const emaLine = chart.addSeries(lib.LineSeries, { color: LINE_B, lineWidth: 2, priceLineVisible: false, lastValueVisible: false });
  const volChart = lib.createChart(volBox, baseOptions(160));
  const volLine = volChart.addSeries(lib.LineSeries, { color: "#56B4E9", lineWidth: 2, priceFormat: { type: "custom", formatter: (v) => `${v.toFixed(0)}%` } });
  const ddChart = lib.createChart(ddBox, baseOptions(160));
  const ddArea = ddChart.addSeries(lib.AreaSeries, { lineColor: DOWN, topColor: "rgba(213,94,0,0.05)", bottomColor: "rgba(213,94,0,0.35)", priceFormat: { type: "custom", formatter: (v) => `${v.toFixed(0)}%` } });

  function draw(keepRange) {
    const t0 = performance.now();
    state.drawing = true;
    const visible = keepRange ? chart.timeScale().getVisibleLogicalRange() : null;
    const bars = state.bars;
    candles.setData(bars);
    volume.setData(bars.map((b) => ({ time: b.time, value: b.volume, color: b.close >= b.open ? "rgba(0,114,178,0.35)" : "rgba(213,94,0,0.35)" })));
    smaLine.setData(state.sma ? sma(bars, 20) : []);
    emaLine.setData(state.ema ? ema(bars, 50) : []);
    if (visible && keepRange.shift) {
      chart.timeScale().setVisibleLogicalRange({ from: visible.from + keepRange.shift, to: visible.to + keepRange.shift });
    } else if (!keepRange) {
      chart.timeScale().fitContent();
    }
    state.drawing = false;
    // The library paints in the animation frame that setData requested, before this one's
    // callback runs: so draw-ms is the price chart's data to pixels. The volatility and
    // drawdown charts get their data in that callback and paint in the next frame
    // (draw-all-ms): the main chart is not held back by two more charts' work.
    requestAnimationFrame(() => {
      priceBox.dataset.drawMs = (performance.now() - t0).toFixed(1);
      volLine.setData(rollingVolatility(bars, 30, INTERVAL_MS[state.interval]));
      ddArea.setData(drawdown(bars));
      const range = chart.timeScale().getVisibleLogicalRange();
      if (range) syncSmallCharts(range);
      requestAnimationFrame(() => {
        priceBox.dataset.drawAllMs = (performance.now() - t0).toFixed(1);
      });
    });
    priceBox.dataset.bars = String(bars.length);
    priceBox.dataset.interval = state.interval;
    priceBox.dataset.source = state.servedSource || "";
    const first = bars.length ? bars[0].time * 1000 : state.start;
    const last = bars.length ? bars[bars.length - 1].time * 1000 + INTERVAL_MS[state.interval] : state.end;
    rangeLabel.textContent = bars.length
      ? `${bars.length} ${state.interval} bars from ${state.servedSource}, ${when(new Date(first).toISOString())} to ${when(new Date(last).toISOString())}`
      : "No bars in this range.";
  }

  async function reload() {
    const step = INTERVAL_MS[state.interval];
    state.end = newestOpen + step; // exclusive, and past the bucket holding the newest bar
    const wanted = state.days ? state.end - state.days * 86400000 : oldestOpen;
    state.rangeStart = Math.max(oldestOpen - step, wanted);
    state.start = Math.max(state.rangeStart, state.end - WINDOW_BARS * step);
    state.exhausted = state.start <= state.rangeStart;
    priceBox.dataset.loading = "1";
    try {
      const { bars, source } = await pages(asset.symbol, query(state.start, state.end));
      state.bars = bars;
      state.servedSource = source;
    } catch (error) {
      state.bars = [];
      state.servedSource = null;
      if (!(error instanceof ApiError)) throw error;
    } finally {
      delete priceBox.dataset.loading;
    }
    draw(false);
  }

  function query(start, end) {
    const q = { interval: state.interval, start: String(start), end: String(end) };
    if (state.source) q.source = state.source;
    return q;
  }

  async function loadOlder() {
    if (state.loadingOlder || state.exhausted || !state.bars.length) return;
    state.loadingOlder = true;
    const step = INTERVAL_MS[state.interval];
    const end = state.bars[0].time * 1000;
    const start = Math.max(state.rangeStart, end - OLDER_BARS * step);
    try {
      const { bars } = await pages(asset.symbol, { ...query(start, end), ...(state.servedSource ? { source: state.servedSource } : {}) });
      state.exhausted = start <= state.rangeStart || bars.length === 0;
      state.start = start;
      if (bars.length) {
        state.bars = [...bars, ...state.bars];
        draw({ shift: bars.length });
      }
    } finally {
      state.loadingOlder = false;
    }
  }

  chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
    if (range && range.from < 10) loadOlder();
    if (range && !state.drawing) syncSmallCharts(range);
  });

  // The small charts follow the main one's visible time span (they start later: volatility
  // needs a window of returns first).
  function syncSmallCharts(range) {
    const from = state.bars[Math.max(0, Math.floor(range.from))]?.time;
    const to = state.bars[Math.min(state.bars.length - 1, Math.ceil(range.to))]?.time;
    if (!from || !to || from >= to) return;
    for (const small of [volChart, ddChart]) {
      try {
        small.timeScale().setVisibleRange({ from, to });
      } catch {
        small.timeScale().fitContent(); // nothing of its data in that span
      }
    }
  }

  function pan(fraction) {
    const range = chart.timeScale().getVisibleLogicalRange();
    if (!range) return;
    const shift = (range.to - range.from) * fraction;
    chart.timeScale().setVisibleLogicalRange({ from: range.from + shift, to: range.to + shift });
  }
  function zoom(factor) {
    const range = chart.timeScale().getVisibleLogicalRange();
    if (!range) return;
    const middle = (range.from + range.to) / 2;
    const half = ((range.to - range.from) * factor) / 2;
    chart.timeScale().setVisibleLogicalRange({ from: middle - half, to: middle + half });
  }
  priceBox.addEventListener("keydown", (event) => {
    const actions = { ArrowLeft: () => pan(-0.1), ArrowRight: () => pan(0.1), "+": () => zoom(0.8), "=": () => zoom(0.8), "-": () => zoom(1.25) };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  async function downloadShown() {
    const params = new URLSearchParams({
      format: formatSelect.value, interval: state.interval,
      start: String(state.bars.length ? state.bars[0].time * 1000 : state.start), end: String(state.end),
    });
    if (state.servedSource) params.set("source", state.servedSource);
    downloadButton.disabled = true;
    try {
      const response = await download(`/candles/${encodeURIComponent(asset.symbol)}/export?${params}`);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: fileNameOf(response, `${asset.symbol}.${formatSelect.value}`) });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch {
      /* the API's problem is shown by the page */
    } finally {
      downloadButton.disabled = false;
    }
  }

  intervalSelect.addEventListener("change", () => { state.interval = intervalSelect.value; reload(); });
  sourceSelect.addEventListener("change", () => { state.source = sourceSelect.value; reload(); });
  smaBox.addEventListener("change", () => { state.sma = smaBox.checked; smaLine.setData(state.sma ? sma(state.bars, 20) : []); });
  emaBox.addEventListener("change", () => { state.ema = emaBox.checked; emaLine.setData(state.ema ? ema(state.bars, 50) : []); });

  await reload();
  return () => {
    chart.remove();
    volChart.remove();
    ddChart.remove();
  };
}

function span(from, to, lo, hi) {
  const width = hi - lo || 1;
  const left = ((from - lo) / width) * 100;
  return { left: `${left.toFixed(3)}%`, width: `${Math.max(0.15, ((to - from) / width) * 100).toFixed(3)}%` };
}

function positioned(cls, from, to, lo, hi, label) {
  const s = span(from, to, lo, hi);
  const element = h("span", { class: cls, title: label, "aria-label": label });
  element.style.left = s.left;
  element.style.width = s.width;
  return element;
}

function qualityTimeline(reports, coverage, lo, hi) {
  if (!reports.length) return h("p", { class: "muted" }, "No quality report yet.");
  const axis = h("p", { class: "axis muted" }, h("span", {}, isoDay(lo)), h("span", {}, isoDay(hi)));
  const rows = reports.map((report) => {
    const cov = coverage.find((c) => c.source === report.source && c.interval === report.interval);
    const track = h("div", { class: "track" });
    if (cov) track.append(positioned("covered", Date.parse(cov.first_open), Date.parse(cov.last_open), lo, hi, `${report.source} data`));
    for (const gap of report.gaps) {
      track.append(positioned("gap", Date.parse(gap.start), Date.parse(gap.end), lo, hi,
        `gap: ${gap.missing_bars} missing bar${gap.missing_bars === 1 ? "" : "s"} from ${when(gap.start)}`));
    }
    const rejected = Object.entries(report.breakdown?.rejected || {});
    const parts = Object.entries(report.breakdown?.parts || {});
    return h("div", { class: "q-row", "data-source": report.source },
      h("div", { class: "q-label" }, h("strong", {}, `${report.source} ${report.interval}`),
        h("span", { class: "score" }, ` score ${report.score.toFixed(1)}`),
        h("span", { class: "muted" }, ` \u00B7 ${report.bar_count} bars \u00B7 ${report.missing_bars} missing \u00B7 ${report.gaps.length} gap${report.gaps.length === 1 ? "" : "s"} listed`)),
      track,
      h("p", { class: "q-parts muted" }, parts.map(([name, value]) => `${name} ${pct(value, 0)}`).join(" \u00B7 ")),
      h("p", { class: "q-rejected" }, rejected.length
        ? ["Rejected rows: ", ...rejected.map(([reason, count]) => h("span", { class: "reason" }, `${reason} ${count}`))]
        : h("span", { class: "muted" }, "No rejected rows.")));
  });
  return h("div", { class: "timeline" }, h("p", { class: "legend" },
    h("span", { class: "key covered" }, "stored bars"), h("span", { class: "key gap" }, "gap (hatched)")), axis, ...rows);
}

function coverageTable(coverage, lo, hi) {
  return h("table", { class: "plain coverage" },
    h("thead", {}, h("tr", {}, ...["source", "interval", "first", "last", "bars", "span"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...coverage.map((c) => {
      const track = h("div", { class: "track thin" },
        positioned("covered", Date.parse(c.first_open), Date.parse(c.last_open), lo, hi, `${c.source} coverage`));
      return h("tr", {}, h("th", { scope: "row" }, c.source), h("td", {}, c.interval),
        h("td", {}, isoDay(Date.parse(c.first_open))), h("td", {}, isoDay(Date.parse(c.last_open))),
        h("td", { class: "num" }, c.bars.toLocaleString("en-US")), h("td", { class: "span-cell" }, track));
    })));
}
