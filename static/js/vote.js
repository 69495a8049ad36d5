// The answer controls: the method's scale (buttons or a slider), the reasons question, and
// keyboard voting (number keys or arrows choose, letter keys tick reasons, Enter confirms).
// Everything stays disabled until the players report that every clip played to its end.
const NEUTRAL = { pc5: 3, ccr7: 0 };
const REASON_KEYS = "abcdefghij";

export class VoteControls {
  constructor(root, scale, reasons, t) {
    this.scale = scale;
    this.reasons = reasons;
    this.t = t;
    this.form = root.querySelector("#vote-form");
    this.scaleSet = root.querySelector("#scale");
    this.reasonSet = root.querySelector("#reasons");
    this.confirmButton = root.querySelector("#confirm");
    this.status = root.querySelector("#vote-status");
    this.resolve = null;
    this.unlocked = false;
    root.querySelector("#question").textContent = scale.question;
    this.buildScale(root.querySelector("#scale-options"));
    this.buildReasons(root.querySelector("#reason-options"));
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.confirm();
    });
    this.form.addEventListener("change", () => this.refresh());
    document.addEventListener("keydown", (e) => this.onKey(e));
  }

  choice(name, type, value, label, key) {
    const wrap = document.createElement("label");
    wrap.className = "choice";
    const input = document.createElement("input");
    input.type = type;
    input.name = name;
    input.value = String(value);
    input.setAttribute("aria-keyshortcuts", key);
    const face = document.createElement("span");
    face.textContent = label;
    const kbd = document.createElement("kbd");
    kbd.textContent = key.toUpperCase();
    kbd.setAttribute("aria-hidden", "true");
    face.append(kbd);
    wrap.append(input, face);
    return wrap;
  }

  buildScale(box) {
    if (this.scale.method === "slider100") {
      const row = document.createElement("div");
      row.className = "slider-row";
      const low = document.createElement("span");
      low.textContent = this.t("scale.slider100.low");
      const high = document.createElement("span");
      high.textContent = this.t("scale.slider100.high");
      this.slider = document.createElement("input");
      this.slider.type = "range";
      this.slider.min = "0";
      this.slider.max = "100";
      this.slider.step = "1";
      this.slider.value = "50";
      this.slider.id = "slider";
      this.slider.setAttribute("aria-label", this.t("scale.slider100.label"));
      this.sliderOut = document.createElement("output");
      this.sliderOut.setAttribute("for", "slider");
      this.slider.addEventListener("input", () => {
        this.touched = true;
        this.sliderOut.textContent = this.t("scale.slider100.value", { v: this.slider.value });
      });
      row.append(low, this.slider, high, this.sliderOut);
      box.append(row);
      return;
    }
    this.options = this.scale.options.map((o) => {
      const el = this.choice("answer", "radio", o.value, o.label, o.key);
      box.append(el);
      return el.querySelector("input");
    });
  }

  buildReasons(box) {
    if (!this.reasons.length) return;
    this.reasonSet.hidden = false;
    this.reasonInputs = this.reasons.map((text, i) => {
      const el = this.choice("reason", "checkbox", i, text, REASON_KEYS[i]);
      box.append(el);
      return el.querySelector("input");
    });
  }

  reset() {
    this.form.reset();
    this.touched = false;
    if (this.sliderOut) this.sliderOut.textContent = "";
    this.status.textContent = "";
    this.lock();
  }

  lock() {
    this.unlocked = false;
    this.scaleSet.disabled = true;
    this.reasonSet.disabled = true;
    this.confirmButton.disabled = true;
  }

  unlock() {
    this.unlocked = true;
    this.scaleSet.disabled = false;
    this.reasonSet.disabled = false;
    this.refresh();
    (this.slider || this.options.find((o) => o.checked) || this.options[0]).focus({ preventScroll: true });
  }

  // Resolves with {response, reasons} when the rater confirms a complete answer.
  waitForAnswer() {
    return new Promise((resolve) => { this.resolve = resolve; });
  }

  selected() {
    if (this.slider) return this.touched ? Number(this.slider.value) : null;
    const on = this.options.find((o) => o.checked);
    return on ? Number(on.value) : null;
  }

  chosenReasons() {
    return (this.reasonInputs || []).filter((r) => r.checked).map((r) => Number(r.value));
  }

  reasonsNeeded(value) {
    return this.reasons.length > 0 && value !== null && value !== NEUTRAL[this.scale.method];
  }

  refresh() {
    const value = this.selected();
    const complete = value !== null && (!this.reasonsNeeded(value) || this.chosenReasons().length > 0);
    this.confirmButton.disabled = !this.unlocked || !complete;
  }

  select(input) {
    input.checked = true;
    input.focus({ preventScroll: true });
    this.refresh();
  }

  onKey(e) {
    if (!this.unlocked || !this.resolve || e.altKey || e.ctrlKey || e.metaKey) return;
    const key = e.key.toLowerCase();
    const onNative = e.target instanceof HTMLInputElement && ["radio", "range"].includes(e.target.type);
    // Enter on a focused button (Replay, or Confirm itself) keeps its native meaning.
    const onButton = e.target instanceof HTMLButtonElement || e.target instanceof HTMLAnchorElement;
    if (key === "enter" && onButton) return;
    if (key === "enter") {
      e.preventDefault();
      this.confirm();
    } else if (this.options && this.options.some((o) => o.getAttribute("aria-keyshortcuts") === key)) {
      e.preventDefault();
      this.select(this.options.find((o) => o.getAttribute("aria-keyshortcuts") === key));
    } else if ((key === "arrowleft" || key === "arrowright") && !onNative) {
      e.preventDefault();
      this.step(key === "arrowleft" ? -1 : 1);
    } else if (this.reasonInputs && REASON_KEYS.indexOf(key) >= 0 && REASON_KEYS.indexOf(key) < this.reasonInputs.length) {
      e.preventDefault();
      const box = this.reasonInputs[REASON_KEYS.indexOf(key)];
      box.checked = !box.checked;
      box.focus({ preventScroll: true });
      this.refresh();
    }
  }

  step(delta) {
    if (this.slider) {
      this.slider.value = String(Number(this.slider.value) + delta);
      this.slider.dispatchEvent(new Event("input"));
      this.slider.focus({ preventScroll: true });
      return;
    }
    const at = this.options.findIndex((o) => o.checked);
    const next = at < 0 ? (delta < 0 ? 0 : this.options.length - 1) : at + delta;
    this.select(this.options[Math.max(0, Math.min(this.options.length - 1, next))]);
  }

  confirm() {
    if (!this.unlocked || !this.resolve) return;
    const value = this.selected();
    if (value === null) {
      this.status.textContent = this.t("trial.choose_first");
      return;
    }
    if (this.reasonsNeeded(value) && !this.chosenReasons().length) {
      this.status.textContent = this.t("trial.reasons_required");
      return;
    }
    const resolve = this.resolve;
    this.resolve = null;
    this.lock();
    resolve({ response: value, reasons: this.reasonsNeeded(value) ? this.chosenReasons() : [] });
  }
}
