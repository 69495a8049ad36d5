// Download every clip of the session into memory before the first trial, so playback never
// waits for the network. Progress is counted in bytes; failed clips can be retried alone.
const PARALLEL = 3;

async function fetchBlob(url, onBytes) {
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const type = res.headers.get("Content-Type") || "video/mp4";
  if (!res.body) {
    const blob = await res.blob();
    onBytes(blob.size);
    return blob;
  }
  const reader = res.body.getReader();
  const chunks = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    onBytes(value.length);
  }
  return new Blob(chunks, { type });
}

export class Preloader {
  constructor(items, onProgress) {
    this.items = items; // [{media, url, bytes}]
    this.onProgress = onProgress;
    this.urls = new Map(); // media token -> blob: URL
    this.loadedBytes = new Map();
    this.total = items.reduce((sum, it) => sum + (it.bytes || 0), 0);
  }

  report() {
    let bytes = 0;
    for (const b of this.loadedBytes.values()) bytes += b;
    const total = Math.max(this.total, bytes);
    this.onProgress({ done: this.urls.size, count: this.items.length, bytes, total });
  }

  // Loads whatever is not loaded yet; rejects with the first error after the others finished.
  async run() {
    const queue = this.items.filter((it) => !this.urls.has(it.media));
    const errors = [];
    const worker = async () => {
      while (queue.length) {
        const it = queue.shift();
        this.loadedBytes.set(it.media, 0);
        try {
          const blob = await fetchBlob(it.url, (n) => {
            this.loadedBytes.set(it.media, this.loadedBytes.get(it.media) + n);
            this.report();
          });
          this.urls.set(it.media, URL.createObjectURL(blob));
        } catch (err) {
          this.loadedBytes.set(it.media, 0);
          errors.push(err);
        }
        this.report();
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    if (errors.length) throw errors[0];
    return this.urls;
  }
}
