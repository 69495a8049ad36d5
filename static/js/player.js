// Players for one trial: two clips side by side kept in sync, one clip, or a sequence in one
// player (DCR: reference, then the processed clip). Logs plays, stalls, watch time and the
// largest drift between the two players; reports when every clip has played to its end.

// Drift between the players is corrected during playback: a small lag is caught up by
// speeding the lagging player up a little (invisible), a large one by a seek.
const DRIFT_NUDGE_MS = 40;
const DRIFT_SEEK_MS = 150;
const DRIFT_SETTLED_MS = 10;
const NUDGE_RATE = 1.08;
const GAP_PX = 16;
// Below this the clips would be too small to judge; the page scrolls instead.
const MIN_HEIGHT_PX = 120;
// Air kept under the confirm button so it is never flush with the window's edge.
const BOTTOM_MARGIN_PX = 8;

function whenReady(video) {
  return new Promise((resolve) => {
    const check = () => {
      if (video.readyState >= 3 && !video.seeking) {
        video.removeEventListener("canplay", check);
        video.removeEventListener("seeked", check);
        resolve();
      }
    };
    video.addEventListener("canplay", check);
    video.addEventListener("seeked", check);
    check();
  });
}

export class Players {
  // stage: the element holding the players and the controls under them (all must fit the window);
  // onScale(scale) is told the display scale whenever it changes (1 = native size).
  constructor(container, stage, t, onAllEnded, onScale) {
    this.container = container;
    this.stage = stage;
    this.t = t;
    this.onAllEnded = onAllEnded;
    this.onScale = onScale;
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
    this.corrections = 0;
    this.unlocked = false;
    this.step = 0;
    const count = layout === "pair" ? 2 : 1;
    for (let i = 0; i < count; i++) this.videos.push(this.makeVideo(i));
    this.watch = this.videos.map(() => 0);
    this.endedOnce = this.videos.map(() => false);
    this.videos.forEach((v, i) => { v.src = urls.get(clips[layout === "pair" ? i : 0].media); });
    this.setCaption(0);
    this.minScale = 1;
    window.addEventListener("resize", this.onResize);
    this.fit();
  }

  makeVideo(i) {
    const fig = document.createElement("figure");
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.preload = "auto";
    video.disablePictureInPicture = true;
    video.setAttribute("disableremoteplayback", "");
    video.tabIndex = -1;
    const cap = document.createElement("figcaption");
    cap.id = `caption-${i}`;
    video.setAttribute("aria-labelledby", cap.id);
    fig.append(video, cap);
    this.container.append(fig);
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
      if (!this.unlocked) {
        this.unlocked = true;
        this.onAllEnded();
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
    for (const v of this.videos) {
      v.pause();
      v.playbackRate = 1;
      v.currentTime = 0;
    }
    await Promise.all(this.videos.map(whenReady));
    if (run !== this.run) return;
    this.active = true;
    await Promise.all(this.videos.map((v) => v.play()));
    if (this.layout === "pair") requestAnimationFrame(() => this.keepInSync(run));
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
    if (!a.paused && !b.paused && !a.ended && !b.ended && !a.seeking && !b.seeking) {
      const drift = (a.currentTime - b.currentTime) * 1000;
      const size = Math.abs(drift);
      this.maxDrift = Math.max(this.maxDrift, size);
      const [lead, lag] = drift > 0 ? [a, b] : [b, a];
      if (size > DRIFT_SEEK_MS) {
        lag.currentTime = lead.currentTime;
        a.playbackRate = 1;
        b.playbackRate = 1;
        this.corrections += 1;
      } else if (size > DRIFT_NUDGE_MS) {
        lag.playbackRate = NUDGE_RATE;
        lead.playbackRate = 1;
        this.corrections += 1;
      } else if (size < DRIFT_SETTLED_MS) {
        a.playbackRate = 1;
        b.playbackRate = 1;
      }
    }
    requestAnimationFrame(() => this.keepInSync(run));
  }

  // Native size, scaled down only when the window is too small for the clips *and* the controls
  // under them (question, answers, confirm): the rater never has to scroll to answer. The
  // room the controls take is measured, not guessed, so longer labels or a translation still
  // fit. The smallest scale of the trial is recorded.
  fit() {
    const widest = Math.max(...this.clips.map((c) => c.w));
    const tallest = Math.max(...this.clips.map((c) => c.h));
    const count = this.videos.length;
    const availW = (this.container.clientWidth - GAP_PX * (count - 1)) / count;
    const shownH = this.videos[0].getBoundingClientRect().height;
    const box = this.container.getBoundingClientRect();
    const top = box.top + window.scrollY;
    const captions = box.height - shownH;
    const below = this.stage.getBoundingClientRect().bottom - box.bottom;
    const availH = window.innerHeight - top - captions - below - BOTTOM_MARGIN_PX;
    this.scale = Math.min(1, availW / widest, Math.max(availH, MIN_HEIGHT_PX) / tallest);
    for (const v of this.videos) {
      v.style.width = `${Math.floor(widest * this.scale)}px`;
      v.style.height = `${Math.floor(tallest * this.scale)}px`;
    }
    this.minScale = Math.min(this.minScale, this.scale);
    if (this.onScale) this.onScale(this.scale);
    return this.scale;
  }

  stats() {
    return {
      plays: this.plays,
      stalls: this.stalls,
      max_drift_ms: this.layout === "pair" ? Math.round(this.maxDrift * 10) / 10 : null,
      watch_ms: Math.round(Math.max(...this.watch)),
      watch_per_player_ms: this.watch.map(Math.round),
      drift_corrections: this.corrections,
      scale: Math.round(this.minScale * 1000) / 1000,
    };
  }

  allEnded() {
    return this.videos.every((v) => v.ended);
  }

  teardown() {
    this.active = false;
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
