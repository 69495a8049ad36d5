// The study page: preload every clip, then the practice trials, then the real trials, one at a
// time, until the server says the session is complete. The server decides everything that
// matters (which trial is next, what an answer means); this page only shows and measures.
import { ApiError, getJSON, postJSON } from "./api.js";
import { makeT, readConfig } from "./i18n.js";
import { Players } from "./player.js";
import { Preloader } from "./preload.js";
import { VoteControls } from "./vote.js";

const cfg = readConfig();
const t = makeT(cfg.strings);
const $ = (id) => document.getElementById(id);
const root = $("study");
const net = t("common.error_network");

const players = new Players($("players"), $("stage-trial"), t, () => onUnlocked(),
  (scale) => { $("scaled-note").hidden = scale >= 1; });
const controls = new VoteControls($("stage-trial"), cfg.scale, cfg.reasons, t);

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

// Starts (or restarts) every clip of the trial from the beginning, together. If the browser
// refuses to start playback by itself, the rater is told to press Replay.
function play() {
  players.start().catch(() => { $("watch-hint").textContent = t("trial.autoplay_blocked"); });
}
$("replay").addEventListener("click", () => {
  if (players.videos.length) play();
});

let unlockedAt = null;
function onUnlocked() {
  unlockedAt = performance.now();
  root.dataset.state = "answer";
  $("watch-hint").textContent = t("trial.answer_now");
  controls.unlock();
}

function show(stage) {
  for (const id of ["stage-preload", "stage-message", "stage-trial"]) $(id).hidden = id !== stage;
}

function setProgress(k, n, training) {
  $("progress-text").textContent = training ? t("training.progress", { k, n }) : t("trial.progress", { k, n });
  $("progress").max = n;
  $("progress").value = k - 1;
  root.dataset.trial = training ? `practice-${k}` : String(k);
}

// Resolves at the button's next click.
function clicked(button) {
  return new Promise((resolve) => button.addEventListener("click", resolve, { once: true }));
}

// Retries a step until it works, showing the error and a Retry button in between.
async function withRetry(work, box, text, button) {
  for (;;) {
    try {
      return await work();
    } catch (err) {
      text.textContent = err.message;
      box.hidden = false;
      button.focus();
      await clicked(button);
      box.hidden = true;
    }
  }
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
  const urls = await withRetry(
    () => loader.run().catch((err) => { throw new Error(t("preload.failed", { detail: err.message })); }),
    $("preload-error"), $("preload-error-text"), $("preload-retry"),
  );
  status.textContent = t("preload.ready");
  bar.value = bar.max;
  return urls;
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

// Shows one trial (or practice item) and resolves with the answer and what was measured.
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
  play();
  const result = await answer;
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
      scale: stats.scale,
      dpr: window.devicePixelRatio,
      trial_ms: Math.round(performance.now() - shownAt),
    },
  };
}

async function practise(items, urls) {
  for (const item of items) {
    const answer = await present(item, urls, true);
    let verdict;
    for (;;) {
      try {
        verdict = await postJSON(cfg.api.training, { item: item.item, response: answer.response }, net);
        break;
      } catch (err) {
        $("vote-status").textContent = err.message;
        $("confirm").disabled = false;
        await waitClick($("confirm"));
      }
    }
    const lines = [verdict.correct ? t("training.correct") : t("training.incorrect")];
    if (!verdict.correct) lines.push(t("training.expected", { label: verdict.expected_label }));
    if (verdict.feedback) lines.push(verdict.feedback);
    $("feedback-text").textContent = lines.join(" ");
    $("feedback").hidden = false;
    root.dataset.state = "feedback";
    await waitClick($("feedback-continue"));
  }
  await postJSON(cfg.api.training_done, {}, net);
  players.teardown();
  await message(t("training.done"));
}

async function save(trial, answer) {
  root.dataset.state = "saving";
  $("vote-status").textContent = t("trial.saving");
  const body = { trial: trial.trial, ...answer };
  for (;;) {
    try {
      return await postJSON(cfg.api.vote, body, net);
    } catch (err) {
      // Resubmitting is safe: the server treats an identical vote as the same vote.
      const fatal = err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429;
      $("vote-status").textContent = fatal ? err.message : t("trial.save_failed", { detail: err.message });
      if (fatal) throw err;
      $("confirm").disabled = false;
      await clicked($("confirm"));
    }
  }
}

async function run() {
  const plan = await withRetry(() => getJSON(cfg.api.session, net),
    $("preload-error"), $("preload-error-text"), $("preload-retry"));
  setProgress(Math.min((plan.next ?? plan.n) + 1, plan.n), plan.n, false);
  const urls = await preload(plan.media);
  // Said before the practice starts: practice answers are checked, not recorded.
  if (plan.training.length) $("preload-status").textContent += ` ${t("training.intro")}`;
  root.dataset.state = "ready";
  await waitClick($("start"));
  if (plan.training.length) await practise(plan.training, urls);
  for (;;) {
    const trial = await getJSON(cfg.api.trial, net);
    if (trial.done) {
      window.location.assign(trial.redirect);
      return;
    }
    const answer = await present(trial, urls, false);
    const saved = await save(trial, answer);
    if (saved.done) {
      root.dataset.state = "done";
      window.location.assign(saved.redirect);
      return;
    }
  }
}

run().catch((err) => {
  root.dataset.state = "error";
  show("stage-message");
  $("message-text").textContent = err.message;
  $("message-continue").hidden = true;
});
