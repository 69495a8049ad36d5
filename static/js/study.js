// The study page: preload every clip, then the practice trials, then the real trials, one at a
// time, until the server says the session is complete. The server decides everything that
// matters (which trial is next, what an answer means); this page only shows and measures.
//
// No dead ends: every call is retried with backoff (api.js) and then offered again with a Retry
// button; a trial answered in another tab moves this one to the current trial; a refusal the
// rater cannot fix here (the session ended, the study paused) leads back to the study link,
// which always knows where the rater stands.
import { ApiError, getJSON, postJSON } from "./api.js";
import { makeT, readConfig } from "./i18n.js";
import { Players } from "./player.js";
import { Preloader } from "./preload.js";
import { VoteControls } from "./vote.js";

const cfg = readConfig();
const t = makeT(cfg.strings);
const $ = (id) => document.getElementById(id);
const root = $("study");
const messages = { network: t("common.no_connection"), http: (status) => t("common.http", { status }) };
// After api.js gives up, the page keeps trying this often by itself (besides the Retry button):
// a server that is back should not wait for the rater to notice.
const AUTO_RETRY_MS = 10_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const controls = new VoteControls($("stage-trial"), cfg.method, cfg.reasons, t);
const players = new Players($("players"), $("stage-trial"), t, cfg.display, (ok) => onEnded(ok), onView);
// The toggle view's switch (Space, or the button that also says which clip is showing: the
// badge on the clip scrolls out of view while the rater answers).
function toggle() {
  players.toggle();
  showing();
}
function showing() {
  $("switch-state").textContent = t("trial.showing", { clip: t(players.visible ? "trial.clip_b" : "trial.clip_a") });
}
controls.onToggle = toggle;
$("switch").addEventListener("click", toggle);

function onView(view, scale) {
  $("scaled-note").hidden = scale >= 1;
  // The window changed while the clips play: keep them wholly in view.
  if (root.dataset.state === "playing") showClips();
  $("switch").hidden = view !== "toggle";
  if (view === "toggle") showing();
  root.dataset.view = view;
  controls.setView(view);
}

// Time the tab spends hidden, summed per trial (visibilitychange).
let hiddenSince = document.hidden ? performance.now() : null;
let hiddenMs = 0;
document.addEventListener("visibilitychange", () => {
  if (document.hidden) hiddenSince = performance.now();
  else if (hiddenSince !== null) {
    hiddenMs += performance.now() - hiddenSince;
    hiddenSince = null;
  }
});

// --------------------------------------------------------------------------- problems and retries

const problem = {
  box: $("problem"),
  text: $("problem-text"),
  retry: $("problem-retry"),
  say(text, withButton) {
    this.text.textContent = text;
    this.retry.hidden = !withButton;
    this.box.hidden = false;
  },
  clear() {
    this.box.hidden = true;
  },
};

// Resolves at the button's next click.
function clicked(button) {
  return new Promise((resolve) => button.addEventListener("click", resolve, { once: true }));
}

// Runs work(onRetry) until it succeeds. While api.js retries by itself the rater is told so;
// when it gives up, the rater gets the reason and a Retry button. A refusal (4xx) is thrown.
async function persist(work, describe = (err) => t("common.failed", { detail: err.message })) {
  const onRetry = (err) => problem.say(t("common.retrying", { detail: err.message }), false);
  for (;;) {
    try {
      const result = await work(onRetry);
      problem.clear();
      return result;
    } catch (err) {
      if (err instanceof ApiError && !err.transient) {
        problem.clear();
        throw err;
      }
      problem.say(describe(err), true);
      const focused = document.activeElement;
      problem.retry.focus({ preventScroll: true });
      await Promise.race([clicked(problem.retry), sleep(AUTO_RETRY_MS)]);
      if (focused && focused !== document.body) focused.focus({ preventScroll: true });
      problem.say(t("common.retrying", { detail: err.message }), false);
    }
  }
}

// --------------------------------------------------------------------------- stages

function show(stage) {
  for (const id of ["stage-preload", "stage-message", "stage-trial"]) $(id).hidden = id !== stage;
}

function setProgress(k, n, training) {
  $("progress-text").textContent = training ? t("training.progress", { k, n }) : t("trial.progress", { k, n });
  $("progress").max = n;
  $("progress").value = k - 1;
  root.dataset.trial = training ? `practice-${k}` : String(k);
}

function waitClick(button) {
  button.hidden = false;
  button.focus();
  return clicked(button);
}

async function message(text) {
  show("stage-message");
  $("message-text").textContent = text;
  root.dataset.state = "message";
  await waitClick($("message-continue"));
}

// A refusal this page cannot get past: say why, and offer the way back to the study link.
async function leave(err) {
  players.teardown();
  root.dataset.state = "left";
  await message(t("common.ended", { detail: err.message }));
  window.location.assign(cfg.entry);
}

async function preload(media) {
  root.dataset.state = "preload";
  const status = $("preload-status");
  const bar = $("preload-bar");
  const loader = new Preloader(media, ({ done, count, bytes, total }) => {
    bar.max = Math.max(total, 1);
    bar.value = bytes;
    status.textContent = t("preload.progress", { done, total: count, mb: (bytes / 1e6).toFixed(1) });
  });
  loader.report();
  const urls = await persist(() => loader.run(), (err) => t("preload.failed", { detail: err.message }));
  status.textContent = t("preload.ready");
  bar.value = bar.max;
  return urls;
}

// --------------------------------------------------------------------------- one trial

// Starts (or restarts) every clip of the trial from the beginning, together. If the browser
// refuses to start playback by itself, the rater is told to press Replay.
function play() {
  players.start().catch(() => { $("watch-hint").textContent = t("trial.autoplay_blocked"); });
}
function replay() {
  if (!players.videos.length) return;
  showClips();
  play();
}
$("replay").addEventListener("click", replay);
controls.onReplay = replay;

// Native-size clips may be taller than what is left under the progress bar: bring them fully
// into view while they play, and the answers into view once they unlock.
function showClips() {
  const box = $("players").getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) $("players").scrollIntoView({ block: "start" });
}

function showAnswers() {
  const form = $("vote-form").getBoundingClientRect();
  if (form.top < 0 || form.bottom > window.innerHeight) $("vote-form").scrollIntoView({ block: "end" });
}

let unlockedAt = null;
function onEnded(ok) {
  if (!ok) {
    $("watch-hint").textContent = t("trial.see_both");
    return;
  }
  unlockedAt = performance.now();
  root.dataset.state = "answer";
  $("watch-hint").textContent = t("trial.answer_now");
  controls.unlock();
  showAnswers();
}

// Shows one trial (or practice item) and resolves with the answer and what was measured, or
// with null when the trial was answered elsewhere meanwhile (see watchOtherTabs).
async function present(item, urls, training) {
  show("stage-trial");
  $("training-banner").hidden = !training;
  $("training-banner").textContent = training ? t("training.title") : "";
  $("feedback").hidden = true;
  setProgress(item.k, item.n, training);
  controls.reset();
  players.setup(item.layout, item.clips, urls);
  $("watch-hint").textContent = t("trial.watch_first");
  root.dataset.state = "playing";
  hiddenMs = 0;
  unlockedAt = null;
  const shownAt = performance.now();
  const answer = controls.waitForAnswer();
  showClips();
  play();
  const result = await answer;
  if (result === null) return null;
  const stats = players.stats();
  return {
    ...result,
    watch_ms: stats.watch_ms,
    plays: stats.plays,
    stalls: stats.stalls,
    max_drift_ms: stats.max_drift_ms,
    hidden_ms: Math.round(hiddenMs),
    answer_ms: Math.round(performance.now() - (unlockedAt ?? shownAt)),
    window_w: window.innerWidth,
    window_h: window.innerHeight,
    signals: {
      watch_per_player_ms: stats.watch_per_player_ms,
      drift_corrections: stats.drift_corrections,
      p95_drift_ms: stats.p95_drift_ms,
      scale: stats.scale,
      view: stats.view,
      toggles: stats.toggles,
      dpr: window.devicePixelRatio,
      trial_ms: Math.round(performance.now() - shownAt),
    },
  };
}

// When the rater comes back to this tab, check that its trial is still the current one: a
// second tab may have answered it (or finished the session) meanwhile.
let current = null;
async function watchOtherTabs() {
  if (document.hidden || current === null) return;
  const shown = current;
  let now;
  try {
    now = await getJSON(cfg.api.trial, messages);
  } catch {
    return; // the next save will find out, with its own retries
  }
  if (current === shown && (now.done || now.trial !== shown)) {
    tell(t("trial.answered_elsewhere"));
    controls.cancel();
  }
}
document.addEventListener("visibilitychange", watchOtherTabs);
window.addEventListener("focus", watchOtherTabs);

// A note that stays over the next trial until it is answered.
function tell(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

// --------------------------------------------------------------------------- practice and trials

async function practise(items, urls) {
  for (const item of items) {
    const answer = await present(item, urls, true);
    let verdict;
    try {
      verdict = await persist((onRetry) => postJSON(cfg.api.training,
        { item: item.item, response: answer.response }, messages, onRetry));
    } catch (err) {
      if (err.status === 409) break; // the practice was finished in another tab
      throw err;
    }
    const lines = [verdict.correct ? t("training.correct") : t("training.incorrect")];
    if (!verdict.correct) lines.push(t("training.expected", { label: controls.labelOf(verdict.expected) }));
    if (verdict.feedback) lines.push(verdict.feedback);
    $("feedback-text").textContent = lines.join(" ");
    $("feedback").hidden = false;
    $("feedback").scrollIntoView({ block: "nearest" });
    root.dataset.state = "feedback";
    await waitClick($("feedback-continue"));
  }
  await persist((onRetry) => postJSON(cfg.api.training_done, {}, messages, onRetry));
  players.teardown();
  await message(t("training.done"));
}

async function save(trial, answer) {
  root.dataset.state = "saving";
  $("vote-status").textContent = t("trial.saving");
  const body = { trial: trial.trial, ...answer };
  try {
    return await persist((onRetry) => postJSON(cfg.api.vote, body, messages, onRetry));
  } catch (err) {
    // 409: this trial was answered differently in another tab (or the session moved past it).
    if (err.status === 409) {
      tell(t("trial.answered_elsewhere"));
      return null;
    }
    throw err;
  }
}

function finish(redirect) {
  root.dataset.state = "done";
  window.location.assign(redirect);
}

async function trials(urls) {
  for (;;) {
    const trial = await persist((onRetry) => getJSON(cfg.api.trial, messages, onRetry));
    if (trial.done) return finish(trial.redirect);
    current = trial.trial;
    const answer = await present(trial, urls, false);
    if (answer === null) continue;
    const saved = await save(trial, answer);
    current = null;
    if (saved === null) continue;
    tell("");
    if (saved.done) return finish(saved.redirect);
  }
}

async function run() {
  const plan = await persist((onRetry) => getJSON(cfg.api.session, messages, onRetry));
  setProgress(Math.min((plan.next ?? plan.n) + 1, plan.n), plan.n, false);
  const urls = await preload(plan.media);
  // Said before the practice starts: practice answers are checked, not recorded.
  if (plan.training.length) $("preload-status").textContent += ` ${t("training.intro")}`;
  root.dataset.state = "ready";
  await waitClick($("start"));
  if (plan.training.length) await practise(plan.training, urls);
  await trials(urls);
}

run().catch((err) => {
  if (err instanceof ApiError) return leave(err);
  // A fault of this page itself: say so, and let the rater start the page again.
  root.dataset.state = "error";
  show("stage-message");
  $("message-text").textContent = err.message;
  $("message-continue").hidden = false;
  $("message-continue").addEventListener("click", () => window.location.reload(), { once: true });
});
