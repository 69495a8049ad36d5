// Layout rules shared by the screen check and the study page. The server checks the same
// formula (study_app/rater/flow.py, window_need) when the check is submitted.
//
// Native size means one video pixel per screen pixel: a clip w pixels wide takes w / dpr CSS
// pixels. display (from the manifest): "auto" | "side-by-side" | "toggle" | "scaled".

const css = (px, dpr) => Math.ceil(px / (dpr > 0 ? dpr : 1) - 1e-6);

// The smallest inner window, in CSS pixels, that the screen check accepts.
export function windowNeed(d, dpr) {
  if (d.display === "scaled") return [d.min_w || d.clip_w, d.min_h || d.clip_h];
  const two = d.layout === "pair" && d.display === "side-by-side";
  const w = css(d.clip_w * (two ? 2 : 1), dpr) + (two ? d.gap : 0);
  return [Math.max(w, d.min_w || 0), Math.max(css(d.clip_h, dpr), d.min_h || 0)];
}

// How a pair of clips w × h is shown in a window of width × height:
// "side-by-side" (native size), "toggle" (native size, one at a time in the same place) or
// "scaled" (side by side, shrunk to fit when the window is smaller than the clips).
export function pairView(d, w, h, width, height, dpr) {
  if (d.display !== "auto") return d.display;
  const fits = 2 * css(w, dpr) + d.gap <= width && css(h, dpr) <= height;
  return fits ? "side-by-side" : "toggle";
}

// The CSS size of a clip at native size.
export function nativeSize(w, h, dpr) {
  return [w / (dpr > 0 ? dpr : 1), h / (dpr > 0 ? dpr : 1)];
}
