// The screen check: measure the window, screen and device; the server decides. The size needed
// follows the study's display and this screen's pixel density (display.js), and is re-checked
// as the rater resizes. A window that is too small is never a reason to turn the rater away by
// itself: Continue waits until it is large enough, and only the rater's own I-cannot ends it.
import { ApiError, postJSON } from "./api.js";
import { windowNeed } from "./display.js";
import { makeT, readConfig } from "./i18n.js";

const cfg = readConfig();
const t = makeT(cfg.strings);
const $ = (id) => document.getElementById(id);
const status = $("check-status");
const button = $("check-continue");
const messages = { network: t("common.error_network"), http: (status) => t("common.http", { status }) };

function isMobile() {
  if (navigator.userAgentData) return navigator.userAgentData.mobile;
  return /Android|iPhone|iPad|iPod|Mobile/i.test(navigator.userAgent);
}

function measure() {
  return {
    inner_w: window.innerWidth,
    inner_h: window.innerHeight,
    screen_w: window.screen.width,
    screen_h: window.screen.height,
    dpr: window.devicePixelRatio,
    mobile: isMobile(),
  };
}

let busy = false;

function update() {
  const m = measure();
  const [w, h] = windowNeed(cfg.display, m.dpr);
  $("check-need").textContent = t("check.need", { w, h });
  $("check-have").textContent = t("check.have", { w: m.inner_w, h: m.inner_h });
  const big = m.inner_w >= w && m.inner_h >= h;
  const refused = m.mobile && !cfg.allow_mobile;
  if (refused) status.textContent = t("check.mobile");
  else status.textContent = big ? t("check.ok") : t("check.too_small", { w, h });
  status.classList.toggle("flash-error", !big || refused);
  // A phone cannot grow: Continue then ends the session with the reason. A small window can.
  button.disabled = busy || (!big && !refused);
  $("check-cannot").hidden = big || refused;
  if (big) $("check-cannot-confirm").hidden = true;
}

async function submit(extra) {
  busy = true;
  update();
  button.textContent = t("check.checking");
  try {
    const result = await postJSON(cfg.api, { ...measure(), ...extra }, messages);
    window.location.assign(result.redirect);
  } catch (err) {
    // 422: the window shrank between the check here and the server's; say so and keep checking.
    busy = false;
    button.textContent = t("check.continue");
    update();
    status.textContent = err instanceof ApiError ? err.message : String(err);
    status.classList.add("flash-error");
  }
}

window.addEventListener("resize", update);
update();
button.addEventListener("click", () => submit({}));
$("check-cannot").addEventListener("click", () => {
  $("check-cannot-confirm").hidden = false;
  $("check-cannot-back").focus();
});
$("check-cannot-back").addEventListener("click", () => {
  $("check-cannot-confirm").hidden = true;
  $("check-cannot").focus();
});
$("check-cannot-end").addEventListener("click", () => submit({ cannot: true }));
