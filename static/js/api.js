// JSON calls to the study API. Network failures, 5xx and 429 are retried with backoff (every
// call the rater pages make is safe to repeat: the server treats an identical vote as the
// same vote); then the error is thrown for the page to show with a Retry button. A refusal
// (4xx) carries the server's message and is not retried.
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }

  // Worth another try later: the network, an overloaded or restarting server.
  get transient() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

// Waits before the 2nd, 3rd and 4th attempt (ms); jitter spreads a crowd's retries apart.
const BACKOFF_MS = [400, 1200, 3000];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function once(url, options, messages) {
  let res;
  try {
    res = await fetch(url, { credentials: "same-origin", cache: "no-store", ...options });
  } catch {
    throw new ApiError(messages.network, 0);
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    throw new ApiError(messages.http(res.status), res.status);
  }
  if (!res.ok) throw new ApiError(data && data.error ? data.error : messages.http(res.status), res.status);
  return data;
}

// messages: {network: text, http: (status) => text}; onRetry(err, attempt) is told before each wait.
async function call(url, options, messages, onRetry) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await once(url, options, messages);
    } catch (err) {
      if (!(err instanceof ApiError) || !err.transient || attempt >= BACKOFF_MS.length) throw err;
      if (onRetry) onRetry(err, attempt + 1);
      await sleep(BACKOFF_MS[attempt] * (0.75 + Math.random() / 2));
    }
  }
}

export function getJSON(url, messages, onRetry) {
  return call(url, { headers: { Accept: "application/json" } }, messages, onRetry);
}

export function postJSON(url, body, messages, onRetry) {
  return call(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  }, messages, onRetry);
}
