// The API as the page sees it: the key (sessionStorage, sent as X-API-Key), keyed fetches
// that revalidate with ETags, problem documents turned into errors, and the live stream.

const KEY_ITEM = "crypto-dashboard-key";
export const API = "../api/crypto";

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || "";
    this.title = problem.title || "";
    this.requestId = problem.request_id || "";
    this.retryAfter = retryAfter;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY_ITEM),
  set: (value) => sessionStorage.setItem(KEY_ITEM, value),
  forget: () => sessionStorage.removeItem(KEY_ITEM),
};

const listeners = new Set();
/** Called with every ApiError (the page shows it, and asks for a key again on 401). */
export function onApiError(listener) {
  listeners.add(listener);
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { detail: `${response.status} ${response.statusText}` };
  }
}

async function request(path, { method = "GET", raw = false, quiet = false, signal } = {}) {
  const headers = { "X-API-Key": key.get() || "" };
  // no-cache: use the browser's copy only after the server confirms its ETag (a 304).
  const response = await fetch(path.startsWith("..") ? path : `${API}${path}`, {
    method, headers, cache: "no-cache", signal,
  });
  if (!response.ok) {
    const error = new ApiError(response.status, await problemOf(response),
      response.headers.get("Retry-After"));
    if (!quiet || error.status === 401) listeners.forEach((listener) => listener(error));
    throw error;
  }
  return raw ? response : response.json();
}

export const get = (path, options) => request(path, options);
export const post = (path) => request(path, { method: "POST" });
export const download = (path) => request(path, { raw: true });

/**
 * Live updates: `price` and `candle` events from the SSE stream (a short-lived token in the
 * query, since EventSource cannot send headers). Reconnects with a fresh token; after
 * repeated failures calls `onDown` (the caller polls instead) and keeps retrying slowly.
 */
export function follow(symbols, handlers) {
  let source = null;
  let stopped = false;
  let failures = 0;
  let timer = null;

  async function connect() {
    if (stopped) return;
    try {
      const { token } = await post("/stream/token");
      const query = new URLSearchParams({ token });
      if (symbols) query.set("symbols", symbols);
      source = new EventSource(`${API}/stream?${query}`);
    } catch {
      retry();
      return;
    }
    source.onopen = () => {
      failures = 0;
      handlers.onUp?.();
    };
    for (const name of ["price", "candle"]) {
      source.addEventListener(name, (event) => handlers[name]?.(JSON.parse(event.data)));
    }
    source.addEventListener("reset", () => handlers.reset?.());
    source.onerror = () => {
      source.close(); // the token may have expired: reconnect with a new one
      retry();
    };
  }

  function retry() {
    failures += 1;
    if (failures >= 2) handlers.onDown?.();
    clearTimeout(timer);
    timer = setTimeout(connect, Math.min(30000, 1000 * 2 ** Math.min(failures, 5)));
  }

  connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    source?.close();
  };
}
