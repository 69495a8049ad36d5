// JSON calls to the study API. A refusal carries the server's message; a network failure says so.
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function call(url, options, networkMessage) {
  let res;
  try {
    res = await fetch(url, { credentials: "same-origin", ...options });
  } catch {
    throw new ApiError(networkMessage, 0);
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    throw new ApiError(`HTTP ${res.status}`, res.status);
  }
  if (!res.ok) throw new ApiError(data && data.error ? data.error : `HTTP ${res.status}`, res.status);
  return data;
}

export function getJSON(url, networkMessage) {
  return call(url, { headers: { Accept: "application/json" } }, networkMessage);
}

export function postJSON(url, body, networkMessage) {
  return call(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  }, networkMessage);
}
