// The vendored chart library (TradingView Lightweight Charts, Apache-2.0), loaded on first
// use, and the series maths the asset page draws: SMA, EMA, rolling volatility, drawdown.

export const UP = "#0072B2"; // Okabe-Ito blue / vermillion: told apart with any colour vision
export const DOWN = "#D55E00";
export const LINE_A = "#009E73";
export const LINE_B = "#CC79A7";

let loading = null;
export function chartLibrary() {
  loading ||= new Promise((resolve, reject) => {
    if (window.LightweightCharts) {
      resolve(window.LightweightCharts);
      return;
    }
    const script = document.createElement("script");
    script.src = "assets/vendor/lightweight-charts.js";
    script.onload = () => resolve(window.LightweightCharts);
    script.onerror = () => reject(new Error("the chart library did not load"));
    document.head.append(script);
  });
  return loading;
}

export function baseOptions(height) {
  return {
    autoSize: true,
    height,
    layout: { background: { color: "#ffffff" }, textColor: "#1f2933", fontSize: 12, attributionLogo: true },
    grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
    rightPriceScale: { borderColor: "#cfd6dd" },
    timeScale: { borderColor: "#cfd6dd", timeVisible: true, secondsVisible: false },
    crosshair: { mode: 0 },
    localization: { locale: "en-US" },
  };
}

export function sma(bars, period) {
  const out = [];
  let sum = 0;
  for (let i = 0; i < bars.length; i += 1) {
    sum += bars[i].close;
    if (i >= period) sum -= bars[i - period].close;
    if (i >= period - 1) out.push({ time: bars[i].time, value: sum / period });
  }
  return out;
}

/** EMA with alpha = 2 / (period + 1), seeded with the first period's SMA. */
export function ema(bars, period) {
  if (bars.length < period) return [];
  const alpha = 2 / (period + 1);
  let value = bars.slice(0, period).reduce((s, b) => s + b.close, 0) / period;
  const out = [{ time: bars[period - 1].time, value }];
  for (let i = period; i < bars.length; i += 1) {
    value = alpha * bars[i].close + (1 - alpha) * value;
    out.push({ time: bars[i].time, value });
  }
  return out;
}

/** Annualised volatility of log returns over a rolling window of `window` returns (sample
 * standard deviation times the square root of bars per year), in percent. */
export function rollingVolatility(bars, window, stepMs) {
  const perYear = (365.25 * 86400000) / stepMs;
  const returns = [];
  for (let i = 1; i < bars.length; i += 1) returns.push(Math.log(bars[i].close / bars[i - 1].close));
  const out = [];
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < returns.length; i += 1) {
    sum += returns[i];
    squares += returns[i] * returns[i];
    if (i >= window) {
      sum -= returns[i - window];
      squares -= returns[i - window] * returns[i - window];
    }
    if (i >= window - 1) {
      const mean = sum / window;
      const variance = Math.max(0, (squares - window * mean * mean) / (window - 1));
      out.push({ time: bars[i + 1].time, value: Math.sqrt(variance * perYear) * 100 });
    }
  }
  return out;
}

/** Drawdown from the running peak close, in percent (0 at a new high, negative below). */
export function drawdown(bars) {
  let peak = -Infinity;
  return bars.map((bar) => {
    peak = Math.max(peak, bar.close);
    return { time: bar.time, value: (bar.close / peak - 1) * 100 };
  });
}
