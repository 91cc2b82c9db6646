// The page: asks for the key once, routes by the URL's hash, shows the API's problems.
import { key, onApiError } from "./api.js";
import { h } from "./format.js";
import { renderOverview } from "./overview.js";
import { renderRuns } from "./runs.js";

const view = document.getElementById("view");
const alertBox = document.getElementById("alert");
const keyForm = document.getElementById("key-form");
const forgetButton = document.getElementById("forget-key");
let leave = null; // the current page's clean-up (timers, streams, charts)

export function showAlert(message, { kind = "error", detail = "" } = {}) {
  alertBox.replaceChildren(h("strong", {}, message), detail ? h("span", {}, ` ${detail}`) : "");
  alertBox.className = `alert ${kind}`;
  alertBox.hidden = false;
}

export function clearAlert() {
  alertBox.hidden = true;
  alertBox.replaceChildren();
}

function askForKey() {
  leave?.();
  leave = null;
  view.replaceChildren();
  keyForm.hidden = false;
  forgetButton.hidden = true;
  keyForm.elements.api_key.value = "";
  keyForm.elements.api_key.focus();
}

onApiError((error) => {
  const retry = error.retryAfter ? ` Retry in ${error.retryAfter} s.` : "";
  const title = error.status === 401 ? "Key refused:" : error.status === 429 ? "Too many requests:" : `Error ${error.status}:`;
  showAlert(title, { detail: `${error.message}.${retry}` });
  alertBox.dataset.status = String(error.status);
  if (error.status === 401) {
    key.forget();
    askForKey();
  }
});

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = keyForm.elements.api_key.value.trim();
  if (!value) return;
  key.set(value);
  keyForm.hidden = true;
  clearAlert();
  route();
});

forgetButton.addEventListener("click", () => {
  key.forget();
  clearAlert();
  askForKey();
});

async function route() {
  if (!key.get()) {
    askForKey();
    return;
  }
  keyForm.hidden = true;
  forgetButton.hidden = false;
  leave?.();
  leave = null;
  const hash = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = hash.split("/");
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = link.dataset.nav === (page || "overview");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  view.replaceChildren();
  view.setAttribute("aria-busy", "true");
  try {
    if (page === "asset" && rest[0]) {
      const { renderAsset } = await import("./asset.js"); // the chart library loads here only
      leave = await renderAsset(view, decodeURIComponent(rest[0]));
    } else if (page === "runs") {
      leave = await renderRuns(view);
    } else {
      leave = await renderOverview(view);
    }
  } catch (error) {
    if (!error.status) showAlert("The page failed:", { detail: String(error.message || error) });
  } finally {
    view.removeAttribute("aria-busy");
  }
}

window.addEventListener("hashchange", () => {
  route();
  view.focus({ preventScroll: true });
});
route();
