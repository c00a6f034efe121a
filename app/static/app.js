// DCGAN faces playground: talks to the public API only (the same endpoints curl users call).
// Sections: model info and API key, Generate (grid + selection), Interpolate; Arithmetic is in arithmetic.js,
// Edit (a slider per direction) in edit.js, Your face (a photo -> POST /invert) in upload.js.

import { api, getApiKey, getModel, setApiKey, setModel } from "./api.js";
import { setupArithmetic } from "./arithmetic.js";
import { setupEdit } from "./edit.js";
import { setupUpload } from "./upload.js";
import {
  $, busy, clearSelection, faceImage, parseSeed, pngUrl, replaceBlobUrls, showError, state, toggleSelected,
  updateSelection,
} from "./ui.js";

// ---- model info and API key ---------------------------------------------------------------------

async function loadModelInfo() {
  const info = $("#model-info");
  try {
    const m = await (await api("GET", "/v1/model")).json(); // the limits, the device
    Object.assign(m, await pickModel()); // the picked model's name, id, config and provenance
    const cfg = m.config || {};
    const prov = m.provenance || {};
    const bits = [m.model_id, cfg.image_size && `${cfg.image_size}×${cfg.image_size} px`,
      prov.dataset && `trained on ${prov.dataset}`, prov.steps && `${prov.steps} steps`,
      m.device && `running on ${m.device}`].filter(Boolean);
    info.textContent = `Model: ${bits.join(" · ")}`;
    state.imageSize = cfg.image_size || null;
    if (m.max_images_per_request) $("#gen-n").max = String(m.max_images_per_request);
    if (m.max_interpolation_steps) $("#interp-steps").max = String(m.max_interpolation_steps);
  } catch (err) {
    info.textContent = err.message;
  }
}

/** Fill the model picker from GET /v1/models; returns the picked model's entry. Picking another reloads
 * the page, so every section starts over on that model. */
async function pickModel() {
  const { models } = await (await api("GET", "/v1/models")).json();
  if (!models.some((m) => m.name === getModel())) setModel(""); // unloaded since: back to the default
  const picker = $("#model-picker");
  picker.replaceChildren(...models.map((m) => {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = m.default ? `${m.name} (default)` : m.name;
    return option;
  }));
  const picked = models.find((m) => m.name === getModel()) || models.find((m) => m.default) || models[0];
  picker.value = picked.name;
  picker.onchange = () => { setModel(picker.value); window.location.reload(); };
  state.model = picked;
  return picked;
}

function setupKey() {
  const input = $("#api-key");
  input.value = getApiKey();
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setApiKey(input.value.trim());
    $("#key-panel").open = false;
    loadModelInfo();
  });
  $("#key-forget").addEventListener("click", () => { setApiKey(""); input.value = ""; });
  window.addEventListener("dcgan:key-needed", () => {  // the server answered 401: ask for the key
    $("#key-panel").open = true;
    input.focus();
  });
}

// ---- generate and select ------------------------------------------------------------------------

async function generate() {
  const n = $("#gen-n").value;
  const seedText = $("#gen-seed").value.trim();
  const seed = seedText === "" ? null : parseSeed(seedText, "Start seed");
  const truncText = $("#gen-truncation").value.trim();
  const truncation = truncText === "" ? null : Number(truncText);
  const res = await api("POST", "/generate", { query: { n, seed, truncation, format: "json" } });
  const { images } = await res.json(); // [{seed, png}]: without a start seed, the seeds the server drew
  if (truncation !== state.truncation) {
    // Another truncation draws other faces for the same seeds: earlier picks no longer match.
    state.truncation = truncation;
    state.faces.clear();
    state.selected = [];
  }
  renderGrid(images);
}

function renderGrid(images) {
  const grid = $("#grid");
  grid.replaceChildren();
  for (const { seed, png } of images) {
    const src = pngUrl(png);
    state.faces.set(seed, src);
    const btn = document.createElement("button"); // a real button: Enter and Space select it too
    btn.type = "button";
    btn.className = "face";
    btn.dataset.seed = String(seed);
    const label = document.createElement("span");
    label.className = "seed";
    label.textContent = String(seed);
    btn.append(faceImage(src, "Face, seed"), label);
    btn.addEventListener("click", () => toggleSelected(seed));
    const li = document.createElement("li");
    li.append(btn);
    if (state.model && seed !== null) li.append(permalink(seed));
    grid.append(li);
  }
  updateSelection();
}

/** A link to the face's permanent URL: this model version, this seed; browsers and CDNs cache it forever. */
function permalink(seed) {
  const { name, model_id: id } = state.model;
  const url = new URL(`/v1/models/${name}@${id}/faces/${seed}.png`, window.location.origin);
  if (state.truncation !== null) url.searchParams.set("truncation", String(state.truncation));
  const a = document.createElement("a");
  a.className = "permalink";
  a.href = url.pathname + url.search;
  a.textContent = "link";
  a.title = "Permanent URL of this face (cacheable forever)";
  a.setAttribute("aria-label", `Permanent URL of face ${seed}`);
  return a;
}

// ---- interpolate --------------------------------------------------------------------------------

function useSelectedForInterpolation() {
  const section = $("#interpolate");
  if (state.selected.length < 2) {
    showError(section, "Select two faces in the grid first (click them), or type two seeds.");
    return;
  }
  showError(section, "");
  [$("#interp-a").value, $("#interp-b").value] = state.selected.slice(0, 2).map(String);
}

async function interpolate() {
  const body = {
    seed_a: parseSeed($("#interp-a").value, "Seed A"),
    seed_b: parseSeed($("#interp-b").value, "Seed B"),
    steps: Number($("#interp-steps").value),
    method: $("#interp-form").elements.method.value,
  };
  if (state.truncation !== null) body.truncation = state.truncation;
  // The animation and the strip are two requests; the server batches their frames together.
  const [gif, strip] = await Promise.all(["gif", "strip"].map(async (format) =>
    (await api("POST", "/interpolate", { body: { ...body, format } })).blob()));
  const [gifUrl, stripUrl] = replaceBlobUrls("interp", [gif, strip]);
  const what = `from seed ${body.seed_a} to seed ${body.seed_b}, ${body.steps} steps, ${body.method}`;
  Object.assign($("#interp-gif"), { src: gifUrl, alt: `Animation ${what}` });
  Object.assign($("#interp-strip"), { src: stripUrl, alt: `Frames ${what}` });
  const stem = `interpolation-${body.seed_a}-${body.seed_b}-${body.method}-${body.steps}`;
  Object.assign($("#interp-gif-dl"), { href: gifUrl, download: `${stem}.gif` });
  Object.assign($("#interp-strip-dl"), { href: stripUrl, download: `${stem}.png` });
  $("#interp-out").hidden = false;
}

// ---- wiring -------------------------------------------------------------------------------------

function setup() {
  setupKey();
  $("#generate-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const grid = $("#grid");
    grid.setAttribute("aria-busy", "true");
    busy($("#generate"), $("#generate-form button[type=submit]"), generate)
      .finally(() => grid.setAttribute("aria-busy", "false"));
  });
  $("#selection-clear").addEventListener("click", clearSelection);
  $("#interp-use-selected").addEventListener("click", useSelectedForInterpolation);
  $("#interp-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy($("#interpolate"), $("#interp-form button[type=submit]"), interpolate);
  });
  setupArithmetic();
  setupEdit();
  setupUpload();
  loadModelInfo();
}

setup(); // a module script runs once the document is parsed
