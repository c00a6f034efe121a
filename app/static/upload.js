// Your face: a photo (file picker or drag-and-drop) -> POST /invert -> its aligned crop beside the
// reconstruction, with PSNR/SSIM. Each upload can then be edited (the Edit section's sliders act on its
// latent) and any two uploads interpolated (POST /interpolate with latent_a/latent_b).

import { ApiError, api, upload } from "./api.js";
import { $, busy, pngUrl, replaceBlobUrls, showError, state } from "./ui.js";

const ACCEPTED = ["image/jpeg", "image/png", "image/webp", "image/gif"];
let counter = 0;

function figure(src, alt, caption, cls) {
  const fig = document.createElement("figure");
  fig.className = cls;
  const img = Object.assign(document.createElement("img"), { src, alt });
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}

function describe(r) {
  const how = r.mode === "fast" ? "fast (encoder only)" : `faithful, ${r.steps} steps`;
  return `PSNR ${r.psnr.toFixed(1)} dB · SSIM ${r.ssim.toFixed(3)} · ${how} · ${r.seconds.toFixed(2)} s`;
}

function faceNote(r) {
  const f = r.face;
  if (!r.align) return "Taken as an aligned crop (not aligned).";
  const found = f.faces_found > 1 ? `${f.faces_found} faces found: the largest was used.` : "One face found.";
  const note = f.note ? f.note[0].toUpperCase() + f.note.slice(1) + "." : "";
  return [found, note].filter(Boolean).join(" ");
}

function card(entry) {
  const { name, result: r } = entry;
  const li = document.createElement("li");
  li.className = "upload";
  li.dataset.upload = String(entry.id);
  const title = document.createElement("p");
  title.className = "upload-name";
  title.textContent = `${entry.id}. ${name}`;
  const pair = document.createElement("div");
  pair.className = "upload-pair";
  pair.append(
    figure(pngUrl(r.aligned), `Aligned crop of ${name}`, "Aligned photo", "aligned"),
    figure(pngUrl(r.reconstruction), `Reconstruction of ${name}`, "Reconstruction", "reconstruction"),
  );
  const figures = document.createElement("p");
  figures.className = "fidelity";
  figures.textContent = describe(r);
  const note = document.createElement("p");
  note.className = "hint";
  note.textContent = faceNote(r);
  const edit = Object.assign(document.createElement("button"), { type: "button", textContent: "Edit this face" });
  edit.className = "upload-edit";
  edit.addEventListener("click", () => {
    window.dispatchEvent(new CustomEvent("dcgan:edit-latent", { detail: { latent: r.latent, label: name } }));
    $("#edit").scrollIntoView({ behavior: "smooth", block: "start" });
  });
  const actions = document.createElement("div");
  actions.className = "controls";
  actions.append(edit);
  li.append(title, pair, figures, note, actions);
  return li;
}

function refreshInterpolation() {
  const n = state.uploads.length;
  $("#upload-interp").disabled = n < 2;
  $("#upload-interp-hint").textContent = n < 2
    ? "Upload two photos to interpolate between them."
    : `Interpolates between upload ${state.uploads[n - 2].id} and upload ${state.uploads[n - 1].id}.`;
}

async function invertFile(file) {
  if (file.type && !ACCEPTED.includes(file.type)) {
    throw new ApiError(`“${file.name}” is a ${file.type} file: choose a JPEG, PNG, WebP or GIF photo.`);
  }
  const form = new FormData();
  form.append("image", file, file.name);
  const query = { mode: $("#upload-mode").value, align: $("#upload-align").checked ? "true" : "false" };
  const r = await (await upload("/invert", form, query)).json();
  const entry = { id: ++counter, name: file.name || "photo", result: r };
  state.uploads.push(entry);
  $("#upload-list").prepend(card(entry));
  $("#upload-out").hidden = false;
  refreshInterpolation();
}

async function interpolateUploads() {
  const [a, b] = state.uploads.slice(-2);
  const body = { latent_a: a.result.latent, latent_b: b.result.latent, steps: 8, method: "slerp" };
  const [gif, strip] = await Promise.all(["gif", "strip"].map(async (format) =>
    (await api("POST", "/interpolate", { body: { ...body, format } })).blob()));
  const [gifUrl, stripUrl] = replaceBlobUrls("uploads", [gif, strip]);
  const what = `from upload ${a.id} (${a.name}) to upload ${b.id} (${b.name})`;
  Object.assign($("#upload-interp-gif"), { src: gifUrl, alt: `Animation ${what}` });
  Object.assign($("#upload-interp-strip"), { src: stripUrl, alt: `Frames ${what}` });
  $("#upload-interp-out").hidden = false;
}

function take(files) {
  const section = $("#upload");
  const list = [...files];
  if (!list.length) return;
  const button = $("#upload-pick");
  busy(section, button, async () => {
    for (const file of list) await invertFile(file);  // one at a time: the server runs few inversions at once
  });
}

export function setupUpload() {
  const input = $("#upload-file");
  input.addEventListener("change", () => { take(input.files); input.value = ""; });
  $("#upload-pick").addEventListener("click", () => input.click());
  const zone = $("#upload-drop");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (ev) => { ev.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    take(ev.dataTransfer ? ev.dataTransfer.files : []);
  });
  $("#upload-interp").addEventListener("click", () => busy($("#upload"), $("#upload-interp"), interpolateUploads));
  refreshInterpolation();
  showError($("#upload"), "");
}
