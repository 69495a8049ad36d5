// Rater pages are sent with Cache-Control: no-store, so Back/Forward asks the server again. A
// browser that still restores a page from its back/forward cache gets it reloaded: what it
// shows (which trial, which step) may no longer be true.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) window.location.reload();
});
