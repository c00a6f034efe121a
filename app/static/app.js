// DCGAN faces playground: talks to the public API only (the same endpoints curl users call).
"use strict";

(() => {
  const SEED_MAX = 4294967295;
  const KEY_STORAGE = "dcgan-faces.api-key";
  const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const MAX_TERMS = 8; // app/schemas.py ArithmeticBody.terms

  // Field names in 422 details -> the words the page uses for them.
  const FIELD_LABELS = {
    n: "Faces", seed: "Start seed", truncation: "Truncation", format: "Format",
    seed_a: "Seed A", seed_b: "Seed B", steps: "Steps", method: "Path",
    terms: "Terms", seeds: "Exemplar seeds", weight: "Sign", name: "Name", neighbours: "Neighbours",
  };

  const $ = (sel, root = document) => root.querySelector(sel);
  const state = {
    apiKey: sessionStorage.getItem(KEY_STORAGE) || "",
    truncation: null,        // the truncation the grid was drawn with; reused by the other sections
    faces: new Map(),        // seed -> image URL, for thumbnails of selected exemplars
    selected: [],            // seeds, in the order they were selected
    blobUrls: { interp: [], arith: [] },
  };

  // ---- API access -------------------------------------------------------------------------

  class ApiError extends Error {}

  async function api(method, path, { query = {}, body } = {}) {
    const url = new URL(path, window.location.origin);
    for (const [k, v] of Object.entries(query)) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
    }
    const headers = { Accept: "application/json, image/*" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.apiKey) headers["X-API-Key"] = state.apiKey;
    let res;
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
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
        openKeyPanel();
        return state.apiKey
          ? "The server did not accept this API key. Check it under “API key” and try again."
          : "This server needs an API key. Enter it under “API key” at the top and try again.";
      case 413:
        return "The request is too large for this server. Ask for fewer images or fewer exemplars.";
      case 422:
        return "The server could not use these settings:\n" + describeValidation(detail);
      case 503: {
        const wait = res.headers.get("Retry-After");
        return "The server is busy or still loading its model" +
          (wait ? `; try again in ${wait} s.` : "; try again in a moment.") + plain(detail);
      }
      case 504:
        return "The server ran out of time for this request (it was too busy). Try again, or ask for fewer images.";
      default:
        return `The server answered with an error (HTTP ${res.status}).` + plain(detail);
    }
  }

  function plain(detail) {
    return typeof detail === "string" && detail ? ` (${detail})` : "";
  }

  function describeValidation(detail) {
    if (!Array.isArray(detail)) return typeof detail === "string" ? detail : "the request was not valid.";
    return detail.map((d) => {
      const loc = (d.loc || []).filter((p) => p !== "body" && p !== "query");
      const named = loc.filter((p) => typeof p === "string").pop();
      const field = FIELD_LABELS[named] || named || "Request";
      const where = loc.some((p) => typeof p === "number") && loc[0] === "terms" ? ` (term ${termLetter(loc)})` : "";
      return `• ${field}${where}: ${d.msg}`;
    }).join("\n");
  }

  function termLetter(loc) {
    const idx = loc.find((p) => typeof p === "number");
    return LETTERS[idx] || String(idx + 1);
  }

  // ---- small helpers ----------------------------------------------------------------------

  function showError(section, message) {
    const box = $(".error", section);
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function busy(section, button, fn) {
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

  function parseSeed(text, label) {
    const s = String(text).trim();
    if (!/^\d+$/.test(s) || Number(s) > SEED_MAX) {
      throw new ApiError(`${label} must be a whole number from 0 to ${SEED_MAX}; got “${s}”.`);
    }
    return Number(s);
  }

  function parseSeedList(text, label) {
    const parts = text.split(/[\s,;]+/).filter(Boolean);
    return parts.map((p) => parseSeed(p, label));
  }

  function replaceBlobUrls(group, blobs) {
    state.blobUrls[group].forEach((u) => URL.revokeObjectURL(u));
    state.blobUrls[group] = blobs.map((b) => URL.createObjectURL(b));
    return state.blobUrls[group];
  }

  function pngUrl(b64) {
    return `data:image/png;base64,${b64}`;
  }

  function faceImage(src, alt, size) {
    const img = document.createElement("img");
    img.src = src;
    img.alt = alt;
    if (size) { img.width = size; img.height = size; }
    img.decoding = "async";
    return img;
  }

  function openKeyPanel() {
    const panel = $("#key-panel");
    panel.open = true;
    $("#api-key").focus();
  }

  // ---- model info and API key -----------------------------------------------------------------

  async function loadModelInfo() {
    const info = $("#model-info");
    try {
      const m = await (await api("GET", "/v1/model")).json();
      const cfg = m.config || {};
      const prov = m.provenance || {};
      const bits = [m.model_id, cfg.image_size && `${cfg.image_size}×${cfg.image_size} px`,
        prov.dataset && `trained on ${prov.dataset}`, prov.steps && `${prov.steps} steps`,
        m.device && `running on ${m.device}`].filter(Boolean);
      info.textContent = `Model: ${bits.join(" · ")}`;
      if (m.max_images_per_request) $("#gen-n").max = String(m.max_images_per_request);
    } catch (err) {
      info.textContent = err.message;
    }
  }

  function setupKey() {
    const input = $("#api-key");
    input.value = state.apiKey;
    $("#key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.apiKey = input.value.trim();
      sessionStorage.setItem(KEY_STORAGE, state.apiKey);
      $("#key-panel").open = false;
      loadModelInfo();
    });
    $("#key-forget").addEventListener("click", () => {
      state.apiKey = "";
      input.value = "";
      sessionStorage.removeItem(KEY_STORAGE);
    });
  }

  // ---- generate and select ------------------------------------------------------------------

  async function generate() {
    const n = $("#gen-n").value;
    const seedText = $("#gen-seed").value.trim();
    const seed = seedText === "" ? null : parseSeed(seedText, "Start seed");
    const truncText = $("#gen-truncation").value.trim();
    const truncation = truncText === "" ? null : Number(truncText);
    const res = await api("POST", "/generate", { query: { n, seed, truncation, format: "json" } });
    const data = await res.json();
    const items = data.images;
    if (truncation !== state.truncation) {
      // Another truncation draws other faces for the same seeds: earlier picks no longer match.
      state.truncation = truncation;
      state.faces.clear();
      state.selected = [];
    }
    renderGrid(items);
  }

  function renderGrid(items) {
    const grid = $("#grid");
    grid.replaceChildren();
    for (const item of items) {
      const src = pngUrl(item.png);
      state.faces.set(item.seed, src);
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "face";
      btn.dataset.seed = String(item.seed);
      btn.setAttribute("aria-pressed", String(state.selected.includes(item.seed)));
      const label = document.createElement("span");
      label.className = "seed";
      label.textContent = String(item.seed);
      btn.append(faceImage(src, "Face, seed"), label);
      btn.addEventListener("click", () => toggleSelected(item.seed));
      const li = document.createElement("li");
      li.append(btn);
      grid.append(li);
    }
    updateSelection();
  }

  function toggleSelected(seed) {
    const i = state.selected.indexOf(seed);
    if (i >= 0) state.selected.splice(i, 1);
    else state.selected.push(seed);
    updateSelection();
  }

  function updateSelection() {
    for (const btn of document.querySelectorAll("#grid .face")) {
      btn.setAttribute("aria-pressed", String(state.selected.includes(Number(btn.dataset.seed))));
    }
    const n = state.selected.length;
    $("#selection-info").textContent = n === 0 ? "No faces selected."
      : `${n} selected: seed${n > 1 ? "s" : ""} ${state.selected.join(", ")}`;
    $("#selection-clear").disabled = n === 0;
  }

  // ---- interpolate --------------------------------------------------------------------------

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
    const seedA = parseSeed($("#interp-a").value, "Seed A");
    const seedB = parseSeed($("#interp-b").value, "Seed B");
    const body = {
      seed_a: seedA,
      seed_b: seedB,
      steps: Number($("#interp-steps").value),
      method: $("#interp-form").elements.method.value,
    };
    if (state.truncation !== null) body.truncation = state.truncation;
    // The animation and the strip are two requests; the server batches their frames together.
    const [gif, strip] = await Promise.all(["gif", "strip"].map(async (format) =>
      (await api("POST", "/interpolate", { body: { ...body, format } })).blob()));
    const [gifUrl, stripUrl] = replaceBlobUrls("interp", [gif, strip]);
    const what = `from seed ${seedA} to seed ${seedB}, ${body.steps} steps, ${body.method}`;
    Object.assign($("#interp-gif"), { src: gifUrl, alt: `Animation ${what}` });
    Object.assign($("#interp-strip"), { src: stripUrl, alt: `Frames ${what}` });
    const stem = `interpolation-${seedA}-${seedB}-${body.method}-${body.steps}`;
    Object.assign($("#interp-gif-dl"), { href: gifUrl, download: `${stem}.gif` });
    Object.assign($("#interp-strip-dl"), { href: stripUrl, download: `${stem}.png` });
    $("#interp-out").hidden = false;
  }

  // ---- arithmetic ---------------------------------------------------------------------------

  const DEFAULT_TERMS = [
    { name: "smiling woman", weight: 1 },
    { name: "neutral woman", weight: -1 },
    { name: "neutral man", weight: 1 },
  ];

  function addTerm({ name = "", weight = 1 } = {}) {
    const li = $("#term-template").content.firstElementChild.cloneNode(true);
    $(".term-name", li).value = name;
    $(".term-sign", li).value = String(weight);
    $(".term-seeds", li).addEventListener("input", () => renderThumbs(li));
    for (const el of [$(".term-sign", li), $(".term-name", li)]) el.addEventListener("input", relabelTerms);
    $(".term-add", li).addEventListener("click", () => {
      if (state.selected.length === 0) {
        showError($("#arithmetic"), "Select one or more faces in the grid first, then press “Add selected”.");
        return;
      }
      showError($("#arithmetic"), "");
      const input = $(".term-seeds", li);
      const have = input.value.split(/[\s,;]+/).filter(Boolean);
      const added = state.selected.map(String).filter((s) => !have.includes(s));
      input.value = [...have, ...added].join(", ");
      state.selected = [];
      updateSelection();
      renderThumbs(li);
    });
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

  function relabelTerms() {
    const terms = [...$("#arith-terms").children];
    const parts = [];
    terms.forEach((li, i) => {
      const letter = LETTERS[i] || String(i + 1);
      $(".term-letter", li).textContent = `Term ${letter}`;
      const sign = $(".term-sign", li).value === "-1" ? "−" : "+";
      const name = $(".term-name", li).value.trim() || letter;
      parts.push(i === 0 && sign === "+" ? name : `${sign} ${name}`);
    });
    $("#arith-expr").textContent = parts.join(" ");
    $("#arith-add-term").disabled = terms.length >= MAX_TERMS;
  }

  function renderThumbs(li) {
    const list = $(".thumbs", li);
    list.replaceChildren();
    const seeds = $(".term-seeds", li).value.split(/[\s,;]+/).filter((s) => /^\d+$/.test(s)).map(Number);
    for (const seed of seeds) {
      const item = document.createElement("li");
      const src = state.faces.get(seed);
      if (src) item.append(faceImage(src, `Exemplar, seed ${seed}`, 48));
      item.append(String(seed));
      list.append(item);
    }
  }

  function readTerms() {
    return [...$("#arith-terms").children].map((li, i) => {
      const letter = LETTERS[i] || String(i + 1);
      const seeds = parseSeedList($(".term-seeds", li).value, `Term ${letter} seeds`);
      if (seeds.length === 0) throw new ApiError(`Term ${letter} has no exemplars: add selected faces or type seeds.`);
      return {
        name: $(".term-name", li).value.trim() || letter,
        weight: Number($(".term-sign", li).value),
        seeds,
      };
    });
  }

  async function computeArithmetic() {
    const body = { terms: readTerms(), neighbours: Number($("#arith-neighbours").value) };
    if (state.truncation !== null) body.truncation = state.truncation;
    const [json, figure] = await Promise.all([
      api("POST", "/arithmetic", { body: { ...body, format: "json" } }).then((r) => r.json()),
      api("POST", "/arithmetic", { body: { ...body, format: "grid" } }).then((r) => r.blob()),
    ]);
    renderArithmetic(json, body.terms);
    const [figureUrl] = replaceBlobUrls("arith", [figure]);
    showScaled($("#arith-figure"), figureUrl, `Arithmetic figure: ${$("#arith-expr").textContent}`);
    Object.assign($("#arith-dl"), { href: figureUrl, download: "arithmetic.png" });
    $("#arith-out").hidden = false;
  }

  function row(label, images, cls) {
    const div = document.createElement("div");
    div.className = `arith-row ${cls || ""}`;
    const title = document.createElement("span");
    title.className = "row-label";
    title.textContent = label;
    const list = document.createElement("ul");
    list.className = "row-faces";
    for (const { src, alt, caption, cls: itemCls } of images) {
      const li = document.createElement("li");
      if (itemCls) li.className = itemCls;
      if (!src) { // a blank cell keeps the means of terms with fewer exemplars in one column
        li.setAttribute("aria-hidden", "true");
        li.classList.add("blank");
        list.append(li);
        continue;
      }
      const text = document.createElement("span");
      text.textContent = caption;
      li.append(faceImage(src, alt, 64), text);
      list.append(li);
    }
    div.append(title, list);
    return div;
  }

  function renderArithmetic(data, terms) {
    const rows = $("#arith-rows");
    rows.replaceChildren();
    const widest = Math.max(...data.terms.map((t) => t.exemplars.length));
    data.terms.forEach((term, i) => {
      const sign = term.weight < 0 ? "−" : "+";
      const images = term.exemplars.map((b64, k) => {
        const seed = terms[i].seeds[k];
        return { src: pngUrl(b64), alt: `${term.name}, seed ${seed}`, caption: String(seed) };
      });
      while (images.length < widest) images.push({});
      images.push({ src: pngUrl(term.mean), alt: `Mean of ${term.name}`, caption: "mean", cls: "mean" });
      rows.append(row(`${sign} ${term.name}`, images));
    });
    const expr = $("#arith-expr").textContent;
    const result = [{ src: pngUrl(data.result), alt: `Result: ${expr}`, caption: "result", cls: "result" }];
    data.neighbours.forEach((b64, k) => {
      result.push({ src: pngUrl(b64), alt: `Neighbour ${k + 1} of the result`, caption: `near ${k + 1}` });
    });
    rows.append(row("= result", result, "result-row"));
  }

  // Pixel-art scale: show small figures at twice their size, never wider than the page.
  function showScaled(img, src, alt) {
    img.onload = () => { img.style.width = `${img.naturalWidth * 2}px`; };
    Object.assign(img, { src, alt });
  }

  // ---- wiring --------------------------------------------------------------------------------

  function setup() {
    setupKey();
    const gen = $("#generate");
    $("#generate-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const grid = $("#grid");
      grid.setAttribute("aria-busy", "true");
      busy(gen, $("#generate-form button[type=submit]"), generate).finally(() => grid.setAttribute("aria-busy", "false"));
    });
    $("#selection-clear").addEventListener("click", () => { state.selected = []; updateSelection(); });

    const interp = $("#interpolate");
    $("#interp-use-selected").addEventListener("click", useSelectedForInterpolation);
    $("#interp-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      busy(interp, $("#interp-form button[type=submit]"), interpolate);
    });

    DEFAULT_TERMS.forEach(addTerm);
    $("#arith-add-term").addEventListener("click", () => addTerm({ weight: 1 }));
    $("#arith-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      busy($("#arithmetic"), $("#arith-form button[type=submit]"), computeArithmetic);
    });

    loadModelInfo();
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
