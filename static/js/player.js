// Players for one trial: two clips kept in sync (side by side, or in the same place taking
// turns: the toggle view), one clip, or a sequence in one player (DCR: reference, then the
// processed clip). Logs plays, stalls, watch time and the drift between the two players;
// reports when every clip has played to its end.
//
// Keeping two players together without freezing either: a player is only ever seeked while
// both are paused (at the start, on Replay, or after a large slip), because a seek during
// playback makes that player wait for a keyframe while the other runs on. Small drift is
// corrected by letting the lagging player run slightly faster; when one player has to wait
// for data the other waits with it.
import { nativeSize, pairView } from "./display.js";

// Drift below this is left alone (a frame at 60 fps is 16.7 ms).
const DEADBAND_S = 0.008;
// The lagging player runs at 1 + GAIN × drift (s), at most 1 + MAX_NUDGE: 10 ms → 1.05,
// 40 ms → 1.2, caught up within about 0.2 s (a starved decoder, or the first frames after a
// start, can put one player a few frames behind).
const GAIN_PER_S = 5;
const MAX_NUDGE = 0.25;
// More than this apart (after a long wait for data): pause both, seek, start again together.
const RESYNC_S = 0.5;
// A playing player whose clock has stood still this long is stuck, whatever its readyState
// says: a decoder starved of CPU can stop the clock for a few hundred ms without the element
// reporting that it waits. The other player then waits for it rather than running on alone.
const STUCK_MS = 100;
// Below HAVE_FUTURE_DATA a playing video is waiting for data.
const HAVE_FUTURE_DATA = 3;
const HAVE_ENOUGH_DATA = 4;
// How long start() waits for enough data to play through before settling for enough to play.
const READY_WAIT_MS = 3000;
// How long the toggle view's A/B badge stays fully visible after a switch.
const BADGE_CLEAR_MS = 1500;
// Below this the clips would be too small to judge; the page scrolls instead.
const MIN_HEIGHT_PX = 120;
// Air kept under the confirm button so it is never flush with the window's edge.
const BOTTOM_MARGIN_PX = 8;

// Resolves when the video has enough data to play through (or, after READY_WAIT_MS, to play).
function whenReady(video) {
  return new Promise((resolve) => {
    const started = performance.now();
    const events = ["canplay", "canplaythrough", "seeked", "loadeddata"];
    let timer = null;
    const check = () => {
      const waited = performance.now() - started >= READY_WAIT_MS;
      const enough = video.readyState >= (waited ? HAVE_FUTURE_DATA : HAVE_ENOUGH_DATA);
      if (enough && !video.seeking) {
        events.forEach((ev) => video.removeEventListener(ev, check));
        clearInterval(timer);
        resolve();
      }
    };
    events.forEach((ev) => video.addEventListener(ev, check));
    timer = setInterval(check, 100);
    check();
  });
}

const running = (v) => !v.paused && !v.ended;

export class Players {
  // stage: the element holding the players and the controls under them.
  // display: the study's display settings (display.js); onView(view, scale) is told how the
  // clips are shown whenever that changes (scale 1 = native size); onToggle(shown) after a switch.
  constructor(container, stage, t, display, onAllEnded, onView) {
    this.container = container;
    this.stage = stage;
    this.t = t;
    this.display = display;
    this.onAllEnded = onAllEnded;
    this.onView = onView;
    this.videos = [];
    this.active = false;
    this.onResize = () => this.fit();
  }

  // layout: "pair" | "single" | "sequence"; clips: [{media, w, h, role}]; urls: Map token -> blob URL.
  setup(layout, clips, urls) {
    this.teardown();
    this.layout = layout;
    this.clips = clips;
    this.urls = urls;
    this.plays = 0;
    this.stalls = 0;
    this.maxDrift = 0;
    this.drifts = [];
    this.corrections = 0;
    this.resyncs = 0;
    this.toggles = 0;
    this.unlocked = false;
    this.step = 0;
    this.visible = 0;
    this.dpr = window.devicePixelRatio || 1;
    const w = Math.max(...clips.map((c) => c.w));
    const h = Math.max(...clips.map((c) => c.h));
    this.view = layout === "pair"
      ? pairView(this.display, w, h, document.documentElement.clientWidth, window.innerHeight, this.dpr)
      : (this.display.display === "scaled" ? "scaled" : "single");
    this.container.dataset.view = this.view;
    const count = layout === "pair" ? 2 : 1;
    const box = this.view === "toggle" ? this.makeFigure("stack") : null;
    for (let i = 0; i < count; i++) this.videos.push(this.makeVideo(i, box));
    this.watch = this.videos.map(() => 0);
    this.endedOnce = this.videos.map(() => false);
    this.seen = this.videos.map((_, i) => i === 0 || this.view !== "toggle");
    this.videos.forEach((v, i) => { v.src = urls.get(clips[layout === "pair" ? i : 0].media); });
    if (this.view === "toggle") this.show(0);
    else this.setCaption(0);
    this.minScale = 1;
    window.addEventListener("resize", this.onResize);
    this.fit();
  }

  makeFigure(kind) {
    const fig = document.createElement("figure");
    fig.className = kind;
    const cap = document.createElement("figcaption");
    fig.append(cap);
    this.container.append(fig);
    return fig;
  }

  makeVideo(i, box) {
    const fig = box || this.makeFigure("single");
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.preload = "auto";
    video.disablePictureInPicture = true;
    video.setAttribute("disableremoteplayback", "");
    video.tabIndex = -1;
    const cap = fig.querySelector("figcaption");
    cap.id = `caption-${i}`;
    video.setAttribute("aria-labelledby", cap.id);
    fig.insertBefore(video, cap);
    this.listen(video, i);
    return video;
  }

  setCaption(step) {
    const names = { left: "trial.left", right: "trial.right", reference: "trial.reference",
      processed: "trial.processed", clip: "trial.clip" };
    this.videos.forEach((v, i) => {
      const clip = this.clips[this.layout === "pair" ? i : step];
      v.parentElement.querySelector("figcaption").textContent = this.t(names[clip.role]);
    });
  }

  // The toggle view: show clip i (0 = A, the left clip of the answer scale; 1 = B).
  show(i) {
    this.visible = i;
    this.videos.forEach((v, k) => v.classList.toggle("hidden-clip", k !== i));
    const name = this.t(i === 0 ? "trial.clip_a" : "trial.clip_b");
    const cap = this.videos[0].parentElement.querySelector("figcaption");
    cap.textContent = this.t("trial.showing", { clip: name });
    cap.dataset.clip = i === 0 ? "A" : "B";
    // The badge sits on the picture being judged: clear for a moment after each switch, then faint.
    cap.classList.remove("faded");
    clearTimeout(this.fadeTimer);
    this.fadeTimer = setTimeout(() => cap.classList.add("faded"), BADGE_CLEAR_MS);
  }

  // Switch A/B in the toggle view. A clip counts as seen when it was on screen while playing.
  toggle() {
    if (this.view !== "toggle" || !this.videos.length) return;
    this.show(1 - this.visible);
    this.toggles += 1;
    if (this.videos.some(running)) this.seen[this.visible] = true;
  }

  seenBoth() {
    return this.seen.every(Boolean);
  }

  listen(video, i) {
    let since = null;
    const stop = () => {
      if (since !== null) this.watch[i] += performance.now() - since;
      since = null;
    };
    video.addEventListener("playing", () => { since = performance.now(); });
    video.addEventListener("pause", stop);
    video.addEventListener("ended", () => {
      stop();
      this.clipEnded(i);
    });
    const stalled = () => {
      // A seek we made ourselves is not a stall; waiting after the clip ends is not one either.
      if (this.active && !video.seeking && !video.ended && since !== null) this.stalls += 1;
      stop();
    };
    video.addEventListener("waiting", stalled);
    video.addEventListener("stalled", stalled);
  }

  clipEnded(i) {
    if (this.layout === "sequence" && this.step < this.clips.length - 1) {
      this.step += 1;
      this.playStep();
      return;
    }
    this.endedOnce[i] = true;
    if (this.endedOnce.every(Boolean)) {
      this.active = false;
      if (!this.unlocked && this.seenBoth()) {
        this.unlocked = true;
        this.onAllEnded(true);
      } else if (!this.unlocked) {
        this.endedOnce = this.videos.map(() => false);
        this.onAllEnded(false); // the toggle view ended with clip B never shown
      }
    }
  }

  // (Re)start from the beginning: all players together.
  async start() {
    this.plays += 1;
    this.active = false;
    this.step = 0;
    // Each start owns one sync loop; a replay retires the loop of the previous start.
    const run = (this.run = (this.run || 0) + 1);
    if (this.layout === "sequence") return this.playStep();
    await this.rewind(0);
    if (run !== this.run) return;
    this.active = true;
    await Promise.all(this.videos.map((v) => v.play()));
    if (this.view === "toggle" && this.videos.some(running)) this.seen[this.visible] = true;
    if (this.layout === "pair") requestAnimationFrame(() => this.keepInSync(run));
  }

  // Pause every player, put them all at time t, and wait until each can play through.
  async rewind(t) {
    this.stuck = null;
    this.movedAt = null;
    for (const v of this.videos) {
      v.pause();
      v.playbackRate = 1;
      if (Math.abs(v.currentTime - t) > 1e-3) v.currentTime = t;
    }
    await Promise.all(this.videos.map(whenReady));
  }

  async playStep() {
    const v = this.videos[0];
    const url = this.urls.get(this.clips[this.step].media);
    if (v.src !== url) v.src = url;
    v.currentTime = 0;
    this.setCaption(this.step);
    await whenReady(v);
    this.active = true;
    await v.play();
  }

  keepInSync(run) {
    if (!this.active || run !== this.run) return;
    const [a, b] = this.videos;
    const now = performance.now();
    this.trackClocks(now);
    const waiting = this.videos.filter((v) => !v.ended && (v.seeking || v.readyState < HAVE_FUTURE_DATA));
    if (this.holding) {
      if (!waiting.length) this.release(run);
    } else if (waiting.length && this.videos.some(running)) {
      // One player is waiting for data: the other waits too, instead of running away from it.
      this.holding = true;
      this.stalls += 1;
      this.videos.forEach((v) => { if (!v.ended) v.pause(); });
    } else if (this.stuck) {
      // The leader waits until the stuck player has caught up with it, not just until it moves:
      // released earlier, the pair would play on a stall's length apart.
      const { video, leader } = this.stuck;
      if (!running(video) || video.currentTime >= leader.currentTime - DEADBAND_S) this.release(run);
    } else if (running(a) && running(b)) {
      const stuck = this.videos.findIndex((_, i) => now - this.movedAt[i] > STUCK_MS);
      if (stuck >= 0 && now - this.movedAt[1 - stuck] <= STUCK_MS) this.waitFor(stuck);
      else this.correct(a, b, run);
    } else if (a.ended !== b.ended) {
      this.videos.forEach((v) => { v.playbackRate = 1; });
    }
    requestAnimationFrame(() => this.keepInSync(run));
  }

  // When each player's clock last moved (a paused or ended player counts as moving: it is not stuck).
  trackClocks(now) {
    if (!this.clocks) this.clocks = this.videos.map(() => -1);
    if (!this.movedAt) this.movedAt = this.videos.map(() => now);
    this.videos.forEach((v, i) => {
      if (v.currentTime !== this.clocks[i] || !running(v)) this.movedAt[i] = now;
      this.clocks[i] = v.currentTime;
    });
  }

  // Player i is stuck: pause the other (the leader) until i has caught up with it.
  waitFor(i) {
    const [video, leader] = [this.videos[i], this.videos[1 - i]];
    this.stuck = { video, leader };
    this.stalls += 1;
    leader.pause();
  }

  async release(run) {
    this.holding = false;
    this.stuck = null;
    this.movedAt = null; // a fresh start for the stuck-clock check: the held players stood still on purpose
    if (run !== this.run) return;
    await Promise.all(this.videos.filter((v) => !v.ended).map((v) => v.play().catch(() => {})));
  }

  correct(a, b, run) {
    const drift = a.currentTime - b.currentTime;
    const size = Math.abs(drift);
    this.maxDrift = Math.max(this.maxDrift, size * 1000);
    this.drifts.push(size * 1000);
    if (size > RESYNC_S) {
      this.resync(Math.max(a.currentTime, b.currentTime), run);
      return;
    }
    const [lead, lag] = drift > 0 ? [a, b] : [b, a];
    const rate = size < DEADBAND_S ? 1 : 1 + Math.min(MAX_NUDGE, GAIN_PER_S * size);
    const rounded = Math.round(rate * 100) / 100;
    if (lead.playbackRate !== 1) lead.playbackRate = 1;
    if (lag.playbackRate !== rounded) {
      if (rounded !== 1 && lag.playbackRate === 1) this.corrections += 1;
      lag.playbackRate = rounded;
    }
  }

  // A large slip: stop both, line them up while paused, start both again.
  async resync(t, from) {
    if (from !== this.run) return;
    this.resyncs += 1;
    this.active = false;
    const run = (this.run += 1); // retires the loop that found the slip
    await this.rewind(t);
    if (run !== this.run) return;
    this.active = true;
    await Promise.all(this.videos.map((v) => v.play().catch(() => {})));
    requestAnimationFrame(() => this.keepInSync(run));
  }

  // Native size (one video pixel per screen pixel) unless the study asks for "scaled": then
  // the clips shrink so that they and the controls under them fit the window. A native view
  // shrinks only when the window is smaller than the clips themselves (the rater made it
  // smaller after the screen check). The smallest scale of the trial is recorded.
  fit() {
    const widest = Math.max(...this.clips.map((c) => c.w));
    const tallest = Math.max(...this.clips.map((c) => c.h));
    const [natW, natH] = nativeSize(widest, tallest, this.dpr);
    const columns = this.view === "side-by-side" || this.view === "scaled" ? this.videos.length : 1;
    const gap = columns > 1 ? this.display.gap : 0;
    const availW = (this.container.clientWidth - gap * (columns - 1)) / columns;
    const availH = this.view === "scaled" ? this.roomBelowControls() : window.innerHeight;
    this.scale = Math.min(1, availW / natW, Math.max(availH, MIN_HEIGHT_PX) / natH);
    for (const v of this.videos) {
      v.style.width = `${natW * this.scale}px`;
      v.style.height = `${natH * this.scale}px`;
    }
    this.minScale = Math.min(this.minScale, this.scale);
    if (this.onView) this.onView(this.view, this.scale);
    return this.scale;
  }

  // Height left for the clips when they, their captions and the answer controls must all fit.
  roomBelowControls() {
    const shownH = this.videos[0].getBoundingClientRect().height;
    const box = this.container.getBoundingClientRect();
    const top = box.top + window.scrollY;
    const captions = box.height - shownH;
    const below = this.stage.getBoundingClientRect().bottom - box.bottom;
    return window.innerHeight - top - captions - below - BOTTOM_MARGIN_PX;
  }

  stats() {
    const sorted = [...this.drifts].sort((x, y) => x - y);
    const p95 = sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(0.95 * sorted.length))] : null;
    return {
      plays: this.plays,
      stalls: this.stalls,
      max_drift_ms: this.layout === "pair" ? Math.round(this.maxDrift * 10) / 10 : null,
      p95_drift_ms: this.layout === "pair" && p95 !== null ? Math.round(p95 * 10) / 10 : null,
      watch_ms: Math.round(Math.max(...this.watch)),
      watch_per_player_ms: this.watch.map(Math.round),
      drift_corrections: this.corrections + this.resyncs,
      scale: Math.round(this.minScale * 1000) / 1000,
      view: this.view,
      toggles: this.toggles,
    };
  }

  teardown() {
    this.active = false;
    this.stuck = null;
    this.movedAt = null;
    this.clocks = null;
    this.holding = false;
    this.run = (this.run || 0) + 1;
    for (const v of this.videos) {
      v.pause();
      v.removeAttribute("src");
      v.load();
    }
    this.videos = [];
    this.container.replaceChildren();
    window.removeEventListener("resize", this.onResize);
  }
}
