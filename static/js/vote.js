// The answer controls: the method's scale (buttons or a slider), the reasons question, and
// keyboard voting: number keys pick an answer, ← / → move the selection one step from the
// centre (or from the current answer) and never wrap around, letter keys tick reasons, Enter
// confirms. What is sent is exactly the answer highlighted on screen. Everything stays
// disabled until the players report that every clip played to its end.
//
// Nothing here knows a test method by name: the server puts the method's registry entry
// (analysis/methods.py, as JSON) in the page, with catalog keys for every word.
const REASON_KEYS = "abcdefghij";
// Replays the clips, at any time (not one of the reason letters).
export const REPLAY_KEY = "r";

// The answers of a method entry in display order: label, toggle-view label and shortcut key.
function answerOptions(method, t) {
  const options = method.labels.map(([value, key], i) => ({
    value,
    label: t(key),
    // Best-first scales show their best answer first; its shortcut is still its value.
    key: String(method.best_first ? value : i + 1),
    // The toggle view shows one clip at a time: "left"/"right" become "A"/"B" (A is the clip a
    // left-side answer refers to, so the stored value does not depend on the view).
    label_ab: method.labels_ab.length ? t(method.labels_ab[i]) : undefined,
  }));
  return method.best_first ? options.reverse() : options;
}

export class VoteControls {
  constructor(root, method, reasons, t) {
    this.method = method;
    this.answers = answerOptions(method, t);
    this.question = t(method.question);
    this.questionAb = method.question_ab ? t(method.question_ab) : null;
    this.reasons = reasons;
    this.t = t;
    this.form = root.querySelector("#vote-form");
    this.scaleSet = root.querySelector("#scale");
    this.reasonSet = root.querySelector("#reasons");
    this.confirmButton = root.querySelector("#confirm");
    this.status = root.querySelector("#vote-status");
    this.resolve = null;
    this.unlocked = false;
    root.querySelector("#question").textContent = this.question;
    this.buildScale(root.querySelector("#scale-options"));
    this.buildReasons(root.querySelector("#reason-options"));
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.confirm();
    });
    this.form.addEventListener("change", () => this.refresh());
    // Capture: the page decides what a key does before a focused radio button or slider
    // applies its own arrow-key behaviour (a radio group wraps from the first to the last).
    document.addEventListener("keydown", (e) => this.onKey(e), true);
    this.optionBox = root.querySelector("#scale-options");
    this.optionBox.tabIndex = -1;
    this.questionEl = root.querySelector("#question");
    this.onToggle = null;
    this.onReplay = null;
  }

  // The label of a screen value in the current view's words (left/right, or A/B).
  labelOf(value) {
    const option = this.answers.find((o) => o.value === value);
    if (!option) return String(value);
    return this.toggleView && option.label_ab ? option.label_ab : option.label;
  }

  // Words for the view: "left"/"right" side by side, "A"/"B" when the clips take turns.
  setView(view) {
    const ab = view === "toggle";
    this.toggleView = ab; // Space switches A/B only there; elsewhere it keeps its usual meaning
    if (this.questionAb) this.questionEl.textContent = ab ? this.questionAb : this.question;
    (this.options || []).forEach((input, i) => {
      const option = this.answers[i];
      input.nextElementSibling.firstChild.textContent = ab && option.label_ab ? option.label_ab : option.label;
    });
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
    if (this.method.control === "slider") {
      const [lowKey, highKey, labelKey, valueKey] = this.method.slider_keys;
      const row = document.createElement("div");
      row.className = "slider-row";
      const low = document.createElement("span");
      low.textContent = this.t(lowKey);
      const high = document.createElement("span");
      high.textContent = this.t(highKey);
      this.slider = document.createElement("input");
      this.slider.type = "range";
      this.slider.min = String(this.method.screen_low);
      this.slider.max = String(this.method.screen_high);
      this.slider.step = "1";
      this.slider.value = String(this.method.slider_start);
      this.slider.id = "slider";
      this.slider.setAttribute("aria-label", this.t(labelKey));
      this.sliderOut = document.createElement("output");
      this.sliderOut.setAttribute("for", "slider");
      this.slider.addEventListener("input", () => {
        this.touched = true;
        this.sliderOut.textContent = this.t(valueKey, { v: this.slider.value });
      });
      row.append(low, this.slider, high, this.sliderOut);
      box.append(row);
      return;
    }
    this.options = this.answers.map((o) => {
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
    // Focus the group, not an option: a focused option looks chosen, and nothing is chosen yet.
    const chosen = this.options && this.options.find((o) => o.checked);
    (this.slider || chosen || this.optionBox).focus({ preventScroll: true });
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
    return this.reasons.length > 0 && value !== null && value !== this.method.neutral;
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
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const key = e.key.toLowerCase();
    const onButton = e.target instanceof HTMLButtonElement || e.target instanceof HTMLAnchorElement;
    if (key === " " && this.toggleView && this.onToggle) {
      // In the toggle view Space always switches A/B, also while the clips play and with a
      // reason ticked by its letter (reasons keep their letter keys).
      e.preventDefault();
      this.onToggle();
      return;
    }
    if (key === REPLAY_KEY && this.onReplay && !onButton) {
      e.preventDefault();
      this.onReplay();
      return;
    }
    if (!this.unlocked || !this.resolve) return;
    const onNative = e.target instanceof HTMLInputElement && ["radio", "range"].includes(e.target.type);
    // Enter on a focused button (Replay, or Confirm itself) keeps its native meaning.
    if (key === "enter" && onButton) return;
    const option = this.options && this.options.find((o) => o.getAttribute("aria-keyshortcuts") === key);
    const reason = this.reasonInputs ? REASON_KEYS.indexOf(key) : -1;
    if (key === "enter") {
      e.preventDefault();
      this.confirm();
    } else if (option) {
      e.preventDefault();
      this.select(option);
    } else if (key === "arrowleft" || key === "arrowright") {
      e.preventDefault();
      this.step(key === "arrowleft" ? -1 : 1);
    } else if ((key === "arrowup" || key === "arrowdown") && onNative) {
      e.preventDefault(); // a radio group would move (and wrap) on these too: the scale is a row
    } else if (reason >= 0 && reason < this.reasonInputs.length) {
      e.preventDefault();
      const box = this.reasonInputs[reason];
      box.checked = !box.checked;
      box.focus({ preventScroll: true });
      this.refresh();
    }
  }

  // One step left (-1) or right (+1) from the current answer, or from the middle of the scale
  // when there is none; the ends stay the ends.
  step(delta) {
    if (this.slider) {
      const from = Number(this.slider.value);
      const { screen_low: lowest, screen_high: highest } = this.method;
      this.slider.value = String(Math.max(lowest, Math.min(highest, from + delta)));
      this.slider.dispatchEvent(new Event("input"));
      this.slider.focus({ preventScroll: true });
      return;
    }
    const n = this.options.length;
    const at = this.options.findIndex((o) => o.checked);
    const middle = (n - 1) / 2; // between the two middle options when n is even
    const next = at >= 0 ? at + delta : (delta < 0 ? Math.ceil(middle) - 1 : Math.floor(middle) + 1);
    this.select(this.options[Math.max(0, Math.min(n - 1, next))]);
  }

  // Withdraws the trial on screen (it was answered elsewhere): waitForAnswer resolves with null.
  cancel() {
    const resolve = this.resolve;
    this.resolve = null;
    this.lock();
    if (resolve) resolve(null);
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
