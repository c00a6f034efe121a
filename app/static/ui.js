// Page state and the small DOM helpers every section uses.

import { ApiError } from "./api.js";

const SEED_MAX = 4294967295;

export const $ = (sel, root = document) => root.querySelector(sel);

export const state = {
  imageSize: null,    // the model's image size in pixels, from /v1/model
  model: null,        // the picked model's GET /v1/models entry (name, model_id): permanent URLs hold both
  truncation: null,   // the truncation the grid was drawn with; reused by interpolation and arithmetic
  faces: new Map(),   // seed -> image URL, for thumbnails of exemplars
  selected: [],       // seeds, in the order they were selected
  blobUrls: { interp: [], arith: [], uploads: [] },
  uploads: [],        // {id, name, result}: the photos inverted by POST /invert, in order
  editLatent: null,   // {latent, label}: the Edit section acts on this uploaded face instead of a seed
};

export function showError(section, message) {
  const box = $(".error", section);
  box.textContent = message || "";
  box.hidden = !message;
}

/** Run ``fn`` with the section marked busy and its button disabled; show what went wrong in words. */
export async function busy(section, button, fn) {
  showError(section, "");
  button.disabled = true;
  section.setAttribute("aria-busy", "true");
  try {
    await fn();
  } catch (err) {
    showError(section, err instanceof ApiError ? err.message : `Something went wrong in the page: ${err}`);
    if (!(err instanceof ApiError)) console.warn(err);
  } finally {
    button.disabled = false;
    section.setAttribute("aria-busy", "false");
  }
}

export function parseSeed(text, label) {
  const s = String(text).trim();
  if (!/^\d+$/.test(s) || Number(s) > SEED_MAX) {
    throw new ApiError(`${label} must be a whole number from 0 to ${SEED_MAX}; got “${s}”.`);
  }
  return Number(s);
}

export function parseSeedList(text, label) {
  return text.split(/[\s,;]+/).filter(Boolean).map((p) => parseSeed(p, label));
}

/** Swap a section's blob: URLs for new ones (download links and images), freeing the old blobs. */
export function replaceBlobUrls(group, blobs) {
  state.blobUrls[group].forEach((u) => URL.revokeObjectURL(u));
  state.blobUrls[group] = blobs.map((b) => URL.createObjectURL(b));
  return state.blobUrls[group];
}

export function pngUrl(b64) {
  return `data:image/png;base64,${b64}`;
}

export function faceImage(src, alt, size) {
  const img = document.createElement("img");
  img.src = src;
  img.alt = alt;
  if (size) { img.width = size; img.height = size; }
  img.decoding = "async";
  return img;
}

// ---- selection: grid faces pressed by the user, in order ----------------------------------------

export function toggleSelected(seed) {
  const i = state.selected.indexOf(seed);
  if (i >= 0) state.selected.splice(i, 1);
  else state.selected.push(seed);
  updateSelection();
}

export function clearSelection() {
  state.selected = [];
  updateSelection();
}

export function updateSelection() {
  for (const btn of document.querySelectorAll("#grid .face")) {
    btn.setAttribute("aria-pressed", String(state.selected.includes(Number(btn.dataset.seed))));
  }
  const n = state.selected.length;
  $("#selection-info").textContent = n === 0 ? "No faces selected."
    : `${n} selected: seed${n > 1 ? "s" : ""} ${state.selected.join(", ")}`;
  $("#selection-clear").disabled = n === 0;
}
