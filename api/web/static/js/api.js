// The HTTP API and the websocket, as the page calls them: the API key rides along, and a
// refusal becomes an ApiError carrying the API's own words ({"error": "..."}), so every
// caller can show the person exactly what the server said.

const KEY_STORAGE = "oddasr.apiKey";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

// Listeners told about a 401, so the page can show its key field wherever the call came from.
const unauthorizedListeners = [];
export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
  } catch {
    // not JSON (a proxy's page): the status line is all there is
  }
  if (response.status === 401) {
    unauthorizedListeners.forEach((listener) => listener(message));
    // The API's words name HTTP headers, which a person on the page cannot set: say what to do here.
    message = apiKey()
      ? "The API key was refused (unknown, mistyped or revoked): paste a valid one in the API key field above."
      : "Paste your API key in the API key field above.";
  }
  return new ApiError(response.status, message);
}

// Relative URLs, so the page works behind a proxy that serves the API under a prefix.
export async function request(path, { method = "GET", body } = {}) {
  let response;
  try {
    response = await fetch(path.replace(/^\//, ""), { method, body, headers: withKey() });
  } catch (error) {
    throw new ApiError(0, `the server could not be reached (${error.message})`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

export function submitJob(file, { language, hotwordSet, hotwords, diarize }) {
  const form = new FormData();
  form.append("audio", file, file.name);
  if (language) form.append("language", language);
  if (hotwordSet) form.append("hotword_set", hotwordSet);
  if (hotwords) form.append("hotwords", hotwords);
  if (diarize) form.append("diarize", "true");
  return getJson("/v1/jobs", { method: "POST", body: form });
}

export const listHotwordSets = () => getJson("/v1/hotwords");
export const getJob = (id) => getJson(`/v1/jobs/${encodeURIComponent(id)}`);
export const deleteJob = (id) => getJson(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });

export function listJobs({ status, limit, offset }) {
  const query = new URLSearchParams({ limit, offset });
  if (status) query.set("status", status);
  return getJson(`/v1/jobs?${query}`);
}

// The job's stored audio, whole, as a blob the page can play and seek in freely (a plain
// <audio src> could not send the API key).
export async function audioBlob(id) {
  return (await request(`/v1/jobs/${encodeURIComponent(id)}/audio`)).blob();
}

export async function transcriptBlob(id, format) {
  const response = await request(`/v1/jobs/${encodeURIComponent(id)}/transcript?format=${format}`);
  return response.blob();
}

// Browsers cannot set headers on a websocket: the key goes in the `api_key` query parameter.
export function streamUrl() {
  const url = new URL("v1/stream", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey();
  if (key) url.searchParams.set("api_key", key);
  return url.toString();
}
