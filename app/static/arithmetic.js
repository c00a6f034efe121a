// Arithmetic: the DCGAN paper's A − B + C on concept means, each term filled with exemplar faces.

import { ApiError, LETTERS, api } from "./api.js";
import {
  $, busy, clearSelection, faceImage, parseSeedList, pngUrl, replaceBlobUrls, showError, state,
} from "./ui.js";

const MAX_TERMS = 8; // app/schemas.py ArithmeticBody.terms
const DEFAULT_TERMS = [
  { name: "smiling woman", weight: 1 },
  { name: "neutral woman", weight: -1 },
  { name: "neutral man", weight: 1 },
];

const letter = (i) => LETTERS[i] || String(i + 1);
const seedsIn = (li) => $(".term-seeds", li).value.split(/[\s,;]+/).filter(Boolean);

function addTerm({ name = "", weight = 1 } = {}) {
  const li = $("#term-template").content.firstElementChild.cloneNode(true);
  $(".term-name", li).value = name;
  $(".term-sign", li).value = String(weight);
  $(".term-seeds", li).addEventListener("input", () => renderThumbs(li));
  for (const el of [$(".term-sign", li), $(".term-name", li)]) el.addEventListener("input", relabelTerms);
  $(".term-add", li).addEventListener("click", () => addSelected(li));
  $(".term-clear", li).addEventListener("click", () => { $(".term-seeds", li).value = ""; renderThumbs(li); });
  $(".term-remove", li).addEventListener("click", () => {
    if ($("#arith-terms").children.length <= 2) {
      showError($("#arithmetic"), "Arithmetic needs at least two terms.");
      return;
    }
    li.remove();
    relabelTerms();
  });
  $("#arith-terms").append(li);
  relabelTerms();
}

/** Append the selected grid faces to a term's exemplars (once each), then clear the selection. */
function addSelected(li) {
  if (state.selected.length === 0) {
    showError($("#arithmetic"), "Select one or more faces in the grid first, then press “Add selected”.");
    return;
  }
  showError($("#arithmetic"), "");
  const have = seedsIn(li);
  const added = state.selected.map(String).filter((s) => !have.includes(s));
  $(".term-seeds", li).value = [...have, ...added].join(", ");
  clearSelection();
  renderThumbs(li);
}

function relabelTerms() {
  const terms = [...$("#arith-terms").children];
  const parts = terms.map((li, i) => {
    $(".term-letter", li).textContent = `Term ${letter(i)}`;
    const sign = $(".term-sign", li).value === "-1" ? "−" : "+";
    const name = $(".term-name", li).value.trim() || letter(i);
    return i === 0 && sign === "+" ? name : `${sign} ${name}`;
  });
  $("#arith-expr").textContent = parts.join(" ");
  $("#arith-add-term").disabled = terms.length >= MAX_TERMS;
}

function renderThumbs(li) {
  const list = $(".thumbs", li);
  list.replaceChildren();
  for (const seed of seedsIn(li).filter((s) => /^\d+$/.test(s)).map(Number)) {
    const item = document.createElement("li");
    const src = state.faces.get(seed);
    if (src) item.append(faceImage(src, `Exemplar, seed ${seed}`, 48));
    item.append(String(seed));
    list.append(item);
  }
}

function readTerms() {
  return [...$("#arith-terms").children].map((li, i) => {
    const seeds = parseSeedList($(".term-seeds", li).value, `Term ${letter(i)} seeds`);
    if (seeds.length === 0) throw new ApiError(`Term ${letter(i)} has no exemplars: add selected faces or type seeds.`);
    return { name: $(".term-name", li).value.trim() || letter(i), weight: Number($(".term-sign", li).value), seeds };
  });
}

async function compute() {
  const body = { terms: readTerms(), neighbours: Number($("#arith-neighbours").value) };
  if (state.truncation !== null) body.truncation = state.truncation;
  // The images one by one (JSON) for the rows, and the paper-style figure (PNG) to download.
  const [json, figure] = await Promise.all([
    api("POST", "/arithmetic", { body: { ...body, format: "json" } }).then((r) => r.json()),
    api("POST", "/arithmetic", { body: { ...body, format: "grid" } }).then((r) => r.blob()),
  ]);
  renderRows(json, body.terms);
  const [figureUrl] = replaceBlobUrls("arith", [figure]);
  const img = $("#arith-figure");
  // Faces under 64 px are shown twice their size (pixelated); CSS caps the width at 100%.
  const scale = state.imageSize && state.imageSize < 64 ? 2 : 1;
  img.onload = () => { img.style.width = `${img.naturalWidth * scale}px`; };
  Object.assign(img, { src: figureUrl, alt: `Arithmetic figure: ${$("#arith-expr").textContent}` });
  Object.assign($("#arith-dl"), { href: figureUrl, download: "arithmetic.png" });
  $("#arith-out").hidden = false;
}

/** One labelled row of captioned faces; an item without ``src`` is a blank cell. */
function row(label, items, cls = "") {
  const div = document.createElement("div");
  div.className = `arith-row ${cls}`;
  const title = document.createElement("span");
  title.className = "row-label";
  title.textContent = label;
  const list = document.createElement("ul");
  list.className = "row-faces";
  for (const { src, alt, caption, cls: itemCls } of items) {
    const li = document.createElement("li");
    if (itemCls) li.className = itemCls;
    if (src) {
      const text = document.createElement("span");
      text.textContent = caption;
      li.append(faceImage(src, alt, 64), text);
    } else {
      li.classList.add("blank");
      li.setAttribute("aria-hidden", "true");
    }
    list.append(li);
  }
  div.append(title, list);
  return div;
}

/** Exemplar rows ending in their mean (means aligned in one column), then the result and its neighbours. */
function renderRows(data, terms) {
  const rows = $("#arith-rows");
  rows.replaceChildren();
  const widest = Math.max(...data.terms.map((t) => t.exemplars.length));
  data.terms.forEach((term, i) => {
    const items = term.exemplars.map((b64, k) => {
      const seed = terms[i].seeds[k];
      return { src: pngUrl(b64), alt: `${term.name}, seed ${seed}`, caption: String(seed) };
    });
    while (items.length < widest) items.push({});
    items.push({ src: pngUrl(term.mean), alt: `Mean of ${term.name}`, caption: "mean", cls: "mean" });
    rows.append(row(`${term.weight < 0 ? "−" : "+"} ${term.name}`, items));
  });
  const expr = $("#arith-expr").textContent;
  const result = [{ src: pngUrl(data.result), alt: `Result: ${expr}`, caption: "result", cls: "result" }];
  data.neighbours.forEach((b64, k) => {
    result.push({ src: pngUrl(b64), alt: `Neighbour ${k + 1} of the result`, caption: `near ${k + 1}` });
  });
  rows.append(row("= result", result, "result-row"));
}

export function setupArithmetic() {
  DEFAULT_TERMS.forEach(addTerm);
  $("#arith-add-term").addEventListener("click", () => addTerm());
  $("#arith-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy($("#arithmetic"), $("#arith-form button[type=submit]"), compute);
  });
}
