// The public API, as the playground calls it: fetch + API key + errors turned into plain words.

const KEY_STORAGE = "dcgan-faces.api-key";
const MODEL_STORAGE = "dcgan-faces.model";
export const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

// Field names in 422 details -> the words the page uses for them.
const FIELD_LABELS = {
  n: "Faces", seed: "Start seed", truncation: "Truncation", format: "Format",
  seed_a: "Seed A", seed_b: "Seed B", steps: "Steps", method: "Path",
  terms: "Terms", seeds: "Exemplar seeds", weight: "Sign", name: "Name", neighbours: "Neighbours",
  direction: "Direction", strengths: "Strength", keep: "Kept directions",
  image: "Photo", mode: "Mode", align: "Align",
};

/** An error whose message is meant for the user as it stands. */
export class ApiError extends Error {}

let apiKey = sessionStorage.getItem(KEY_STORAGE) || "";
let model = sessionStorage.getItem(MODEL_STORAGE) || ""; // "" = the server's default model

/** The model every call names (``model=``); "" for the server's default. Kept for this tab. */
export function getModel() {
  return model;
}

export function setModel(name) {
  model = name;
  if (name) sessionStorage.setItem(MODEL_STORAGE, name);
  else sessionStorage.removeItem(MODEL_STORAGE);
}

export function getApiKey() {
  return apiKey;
}

/** Keep the key for this tab only (sessionStorage); "" forgets it. */
export function setApiKey(key) {
  apiKey = key;
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/**
 * Call the API; resolves to the Response when it is 2xx, else throws ApiError with a readable message.
 * A 401/403 also fires a "dcgan:key-needed" event on window, so the page can ask for the key.
 */
export async function api(method, path, { query = {}, body } = {}) {
  const url = new URL(path, window.location.origin);
  if (model) url.searchParams.set("model", model);
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
  }
  const headers = { Accept: "application/json, image/*" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (apiKey) headers["X-API-Key"] = apiKey;
  return send(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** POST a multipart form (a photo) to ``path``; like ``api``, resolves to a 2xx Response or throws ApiError. */
export async function upload(path, form, query = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, String(v));
  const headers = { Accept: "application/json" };  // the browser sets the multipart Content-Type and boundary
  if (apiKey) headers["X-API-Key"] = apiKey;
  return send(url, { method: "POST", headers, body: form });
}

async function send(url, init) {
  let res;
  try {
    res = await fetch(url, init);
  } catch {
    throw new ApiError("Could not reach the server. Is it still running?");
  }
  if (!res.ok) throw new ApiError(await describeError(res));
  return res;
}

async function describeError(res) {
  let detail = null;
  try { detail = (await res.json()).detail; } catch { /* not JSON: the status alone says enough */ }
  switch (res.status) {
    case 401:
    case 403:
      window.dispatchEvent(new CustomEvent("dcgan:key-needed"));
      return apiKey
        ? "The server did not accept this API key. Check it under “API key” and try again."
        : "This server needs an API key. Enter it under “API key” at the top and try again.";
    case 413:
      return typeof detail === "string" && detail.startsWith("the upload")
        ? `The photo is too large for this server: ${detail}.`
        : "The request is too large for this server. Ask for fewer images or fewer exemplars.";
    case 422:
      return (isPhoto(detail) ? "The server could not use this photo:\n" : "The server could not use these settings:\n") +
        describeValidation(detail);
    case 503: {
      const wait = res.headers.get("Retry-After");
      if (!wait && typeof detail === "string" && detail) return `The server cannot do this: ${detail}.`;
      return "The server is busy or still loading its model" +
        (wait ? `; try again in ${wait} s.` : "; try again in a moment.") + plain(detail);
    }
    case 504:
      return "The server ran out of time for this request (it was too busy). Try again, or ask for fewer images." +
        plain(detail);
    default:
      return `The server answered with an error (HTTP ${res.status}).` + plain(detail);
  }
}

function plain(detail) {
  return typeof detail === "string" && detail ? ` (${detail})` : "";
}

function isPhoto(detail) {
  return Array.isArray(detail) && detail.length > 0 && detail.every((d) => (d.loc || []).includes("image"));
}

/** FastAPI's detail list -> one line per problem, naming the field (and the term, for arithmetic). */
function describeValidation(detail) {
  if (!Array.isArray(detail)) return typeof detail === "string" ? detail : "the request was not valid.";
  return detail.map((d) => {
    const loc = (d.loc || []).filter((p) => p !== "body" && p !== "query");
    const named = loc.filter((p) => typeof p === "string").pop();
    const field = FIELD_LABELS[named] || named || "Request";
    const index = loc.find((p) => typeof p === "number");
    const where = loc[0] === "terms" && index !== undefined ? ` (term ${LETTERS[index] || index + 1})` : "";
    return `• ${field}${where}: ${d.msg}`;
  }).join("\n");
}
