// The environment gate: measure the window, screen and device; the server decides.
import { postJSON } from "./api.js";
import { makeT, readConfig } from "./i18n.js";

const cfg = readConfig();
const t = makeT(cfg.strings);
const have = document.getElementById("check-have");
const status = document.getElementById("check-status");
const button = document.getElementById("check-continue");

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

function update() {
  const m = measure();
  have.textContent = t("check.have", { w: m.inner_w, h: m.inner_h });
  const ok = m.inner_w >= cfg.min_w && m.inner_h >= cfg.min_h;
  if (m.mobile && !cfg.allow_mobile) status.textContent = t("check.mobile");
  else status.textContent = ok ? t("check.ok") : t("check.too_small");
  status.classList.toggle("flash-error", !ok || (m.mobile && !cfg.allow_mobile));
}

window.addEventListener("resize", update);
update();
button.addEventListener("click", async () => {
  button.disabled = true;
  button.textContent = t("check.checking");
  try {
    const result = await postJSON(cfg.api, measure(), t("common.error_network"));
    window.location.assign(result.redirect);
  } catch (err) {
    status.textContent = err.message;
    button.disabled = false;
    button.textContent = t("check.continue");
  }
});
