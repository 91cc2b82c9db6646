// Numbers, times and small DOM helpers shared by the pages.

const MINUS = "\u2212";
const MINUTE = 60000;
export const INTERVAL_MS = {
  "1m": MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "30m": 30 * MINUTE, "1h": 60 * MINUTE,
  "4h": 240 * MINUTE, "6h": 360 * MINUTE, "1d": 1440 * MINUTE, "1w": 10080 * MINUTE,
};

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function price(value) {
  if (value === null || value === undefined) return "\u2013";
  const digits = value >= 1000 ? 2 : value >= 1 ? 4 : 6;
  return value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: digits });
}

export function compact(value) {
  if (value === null || value === undefined) return "\u2013";
  return value.toLocaleString("en-US", { notation: "compact", maximumFractionDigits: 2 });
}

/** A signed percentage with an arrow: colour is never the only cue. */
export function signedPct(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return { text: "\u2013", cls: "" };
  const sign = value > 0 ? "+" : value < 0 ? MINUS : "";
  const arrow = value > 0 ? "\u25B2 " : value < 0 ? "\u25BC " : "";
  return {
    text: `${arrow}${sign}${Math.abs(value).toFixed(digits)}%`,
    cls: value > 0 ? "up" : value < 0 ? "down" : "",
  };
}

export function pct(value, digits = 1) {
  if (value === null || value === undefined) return "\u2013";
  return `${(value * 100).toFixed(digits)}%`;
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "\u2013";
  const units = [["y", 31557600], ["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  for (const [unit, size] of units) {
    if (seconds >= size) return `${Math.floor(seconds / size)}${unit}`;
  }
  return "0s";
}

export function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

export function when(text) {
  if (!text) return "\u2013";
  return text.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC").replace("+00:00", " UTC");
}

/** A sparkline as SVG (a few points per row: no chart instance per table row). */
export function sparkline(values, { width = 96, height = 24, label = "" } = {}) {
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  if (values.length < 2) return svg;
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const span = hi - lo || 1;
  const points = values.map((v, i) =>
    `${((i / (values.length - 1)) * (width - 2) + 1).toFixed(1)},${(height - 2 - ((v - lo) / span) * (height - 4)).toFixed(1)}`);
  const line = document.createElementNS(svgNs, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("class", values[values.length - 1] >= values[0] ? "spark up" : "spark down");
  svg.append(line);
  return svg;
}
