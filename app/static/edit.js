// Edit: one slider per direction the model offers (GET /v1/directions), the face redrawn live (POST /edit).
// Every slider's value is a strength in sigma; the sliders add up: z + sum(value * n).

import { api } from "./api.js";
import { $, parseSeed, pngUrl, showError, state } from "./ui.js";

const DEBOUNCE_MS = 120;  // redraw once the slider rests this long: one request per gesture, not per pixel
let timer = null;
let latest = 0;           // only the newest answer is shown, whatever order they arrive in

function sliderLabel(d) {
  if (d.kind === "sefa") {
    const like = d.correlates_with ? `, closest to ${d.correlates_with.replaceAll("_", " ")}` : "";
    return `${d.name} (unsupervised${like})`;
  }
  return d.name.replaceAll("_", " ");
}

function slider(d) {
  const row = document.createElement("label");
  row.className = "slider";
  const name = document.createElement("span");
  name.textContent = sliderLabel(d);
  const input = Object.assign(document.createElement("input"), {
    type: "range", min: "-3", max: "3", step: "0.25", value: "0",
  });
  input.dataset.direction = d.name;
  const value = document.createElement("output");
  value.textContent = "0";
  input.addEventListener("input", () => {
    value.textContent = Number(input.value).toFixed(2).replace(/\.?0+$/, "") || "0";
    schedule();
  });
  row.append(name, input, value);
  return row;
}

async function loadDirections() {
  const list = $("#edit-sliders");
  try {
    const { directions } = await (await api("GET", "/v1/directions")).json();
    list.replaceChildren(...directions.map(slider));
  } catch (err) {
    showError($("#edit"), err.message);
  }
}

function currentEdit() {
  const weights = [...document.querySelectorAll("#edit-sliders input")]
    .map((i) => ({ name: i.dataset.direction, weight: Number(i.value) }))
    .filter((w) => w.weight !== 0);
  // No slider moved: strength 0 along any direction is the plain face itself, byte for byte.
  const direction = weights.length ? weights : $("#edit-sliders input").dataset.direction;
  const body = { direction, strengths: [weights.length ? 1 : 0], format: "json" };
  if (state.editLatent !== null) {  // an uploaded face: its latent, as POST /invert gave it
    body.latent = state.editLatent.latent;
  } else {
    body.seed = parseSeed($("#edit-seed").value, "Face seed");
    if (state.truncation !== null) body.truncation = state.truncation;
  }
  return body;
}

/** The face the sliders act on: an upload's latent ({latent, label}), or null for the seed field. */
function useLatent(face) {
  state.editLatent = face;
  const source = $("#edit-source");
  source.hidden = face === null;
  source.textContent = face === null ? "" : `Editing your upload “${face.label}”. Type a seed to edit a generated face.`;
  if (face !== null) $("#edit-seed").value = "";
  $("#edit-seed").required = face === null;
}

async function redraw() {
  const section = $("#edit");
  const ticket = ++latest;
  try {
    const body = currentEdit();
    const { frames } = await (await api("POST", "/edit", { body })).json();
    if (ticket !== latest) return;
    showError(section, "");
    const img = $("#edit-result");
    const whose = body.latent ? `your upload “${state.editLatent.label}”` : `seed ${body.seed}`;
    Object.assign(img, { src: pngUrl(frames[0].png), alt: `Face of ${whose}, edited` });
    img.dataset.request = JSON.stringify(body);
    $("#edit-out").hidden = false;
  } catch (err) {
    if (ticket === latest) showError(section, err.message);
  }
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(redraw, DEBOUNCE_MS);
}

export function setupEdit() {
  $("#edit-use-selected").addEventListener("click", () => {
    if (!state.selected.length) {
      showError($("#edit"), "Select a face in the grid first (click it), or type its seed.");
      return;
    }
    useLatent(null);
    $("#edit-seed").value = String(state.selected[0]);
    redraw();
  });
  $("#edit-seed").addEventListener("change", () => { useLatent(null); redraw(); });
  window.addEventListener("dcgan:edit-latent", (ev) => { useLatent(ev.detail); redraw(); });
  $("#edit-form").addEventListener("submit", (ev) => { ev.preventDefault(); redraw(); });  // Enter in the seed
  $("#edit-reset").addEventListener("click", () => {
    for (const input of document.querySelectorAll("#edit-sliders input")) {
      input.value = "0";
      input.nextElementSibling.textContent = "0";
    }
    redraw();
  });
  loadDirections();
}
