// The dashboard's only script: plain DOM and fetch, no framework, no CDN, so it works offline.
// Charts are SVG rendered by the API (/charts/*.svg) and imported as parsed nodes; everything else
// this file writes is data set with textContent (never innerHTML), so review text cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
let nextCursor = null;
let listedParams = null; // the filters the list on screen was loaded with: "Load more" continues those

// The filters the list and the charts share: the brand, and the label, dates and search as last
// applied (the sort too, for the list). A brand change keeps them, and puts the form back to show them.
const FORM_FIELDS = ["label", "stars", "from", "to", "lang", "q", "sort"];
let applied = { label: "", stars: "", from: "", to: "", lang: "", q: "", sort: "newest" };

// The dates are whole UTC days, like the charts' buckets, on the time the charts use: scored
// (since/until) or published (published_since/published_until). "To" is the last day shown, so
// the API's exclusive bound is the day after it.
function dayAfter(day) {
  const next = new Date(`${day}T00:00:00Z`);
  next.setUTCDate(next.getUTCDate() + 1);
  return next.toISOString().slice(0, 10);
}

function filterParams() {
  const params = new URLSearchParams();
  const brand = $("brand").value.trim();
  if (brand) params.set("brand", brand);
  if ($("source").value) params.set("source", $("source").value);
  for (const name of ["label", "lang", "q"]) if (applied[name]) params.set(name, applied[name]);
  if (applied.stars) { // "4-5": the reviewer's stars from 4 to 5; "1-1": exactly one
    const [low, high] = applied.stars.split("-");
    params.set("min_rating", low);
    params.set("max_rating", high);
  }
  const prefix = $("time-field").value === "published_at" ? "published_" : "";
  if (applied.from) params.set(`${prefix}since`, `${applied.from}T00:00:00Z`);
  if (applied.to) params.set(`${prefix}until`, `${dayAfter(applied.to)}T00:00:00Z`);
  return params;
}

function applyFilters() {
  applied = Object.fromEntries(FORM_FIELDS.map((name) => [name, $(name).value.trim()]));
}

function showApplied() {
  for (const name of FORM_FIELDS) $(name).value = applied[name];
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => null);
  if (!response.ok && response.status !== 404) {
    throw new Error(body ? describeError(body, response.statusText) : response.statusText);
  }
  return { status: response.status, body, headers: response.headers };
}

function stars(n) {
  return "★".repeat(n) + "☆".repeat(5 - n);
}

// The brand box suggests the most reviewed brands, and as one types, the brands whose name
// holds the typed text (the API searches them all: a site can have thousands).
let brandQuery = null;
let brandTimer = null;

function showBrands(items) {
  $("brand-options").replaceChildren(...items.map((item) => {
    const option = document.createElement("option");
    option.value = item.brand;
    option.textContent = `${item.brand} (${item.count})`;
    return option;
  }));
}

async function loadBrands(text = "") {
  const params = new URLSearchParams({ limit: text ? "50" : "200" });
  if (text) params.set("name_contains", text);
  brandQuery = text;
  const { body } = await getJSON(`brands?${params}`);
  if (brandQuery === text) showBrands(body); // an answer to text typed since is dropped
}

// The sources, most reviewed first, from the all-time totals (one cheap query at load; with no
// bucket the stats hold one row per source).
async function loadSources() {
  const { body } = await getJSON("sentiments/stats?group_by=source");
  const options = body.rows.sort((a, b) => b.count - a.count).map((row) => {
    const option = document.createElement("option");
    option.value = row.group;
    option.textContent = `${row.group} (${row.count})`;
    return option;
  });
  $("source").append(...options);
}

function searchBrands(event) {
  // A suggestion picked from the list is a choice, not typing: apply it at once.
  if (event.inputType === "insertReplacementText" || event.inputType === undefined) refreshAll();
  clearTimeout(brandTimer);
  const text = $("brand").value.trim();
  brandTimer = setTimeout(() => loadBrands(text).catch((e) => setStatus(e.message, true)), 200);
}

function refreshCharts() {
  // The charts count the same reviews: by publication time, those without one are left out of all.
  const params = filterParams();
  params.set("time_field", $("time-field").value);
  drawChart("labels", `charts/labels.svg?${params}`);
  drawChart("ratings", `charts/stars.svg?${params}`);
  params.set("bucket", $("bucket").value);
  drawChart("timeline", `charts/timeline.svg?${params}`);
}

// The charts are drawn into the page rather than shown as <img>, so the <title> of each bar and
// label (the bucket's count and mean) shows as a tooltip, which an <img> never does. The SVG is
// this server's, with every piece of data text escaped; still, once imported, an SVG's event
// attributes would run in this page (an <img> runs nothing), so only the elements and attributes
// the server draws with are kept (`inertChart`), and the page's Content-Security-Policy allows no
// inline script. Each chart draws only the answer to its newest request (older ones are
// aborted), and a refused one says why in its own box and in the status line (e.g. hourly
// buckets over a year: 400 too_many_rows).
const SVG_NS = "http://www.w3.org/2000/svg";
const CHART_ELEMENTS = new Set(["svg", "title", "text", "rect", "line", "polyline", "circle"]);
const CHART_ATTRIBUTES = new Set([
  "xmlns", "width", "height", "viewBox", "role", "aria-label", "class", "x", "y", "x1", "x2", "y1", "y2",
  "cx", "cy", "r", "points", "fill", "stroke", "stroke-width", "font-family", "font-size", "font-weight",
  "text-anchor", "data-label",
]);

function inertChart(svg) {
  for (const element of [svg, ...svg.querySelectorAll("*")]) {
    if (element.namespaceURI !== SVG_NS || !CHART_ELEMENTS.has(element.localName)) {
      element.remove();
      continue;
    }
    for (const attribute of [...element.attributes]) {
      if (!CHART_ATTRIBUTES.has(attribute.name)) element.removeAttribute(attribute.name);
    }
  }
  return svg;
}

const chartRequests = {};

async function drawChart(id, url) {
  const previous = chartRequests[id];
  if (previous) previous.abort(); // a superseded chart is not worth the server's work
  const mine = (chartRequests[id] = new AbortController());
  const figure = $(id);
  figure.dataset.src = url;
  figure.dataset.state = "loading";
  let why;
  try {
    const response = await fetch(url, { signal: mine.signal });
    const text = await response.text();
    if (mine !== chartRequests[id]) return;
    if (response.ok) {
      const svg = new DOMParser().parseFromString(text, "image/svg+xml").documentElement;
      if (svg.namespaceURI === SVG_NS && svg.localName === "svg") {
        figure.replaceChildren(document.importNode(inertChart(svg), true));
        figure.dataset.state = "drawn";
        return;
      }
      why = "the server sent no chart";
    } else {
      let body = null;
      try { body = JSON.parse(text); } catch { /* not the API's error shape */ }
      why = body ? describeError(body, response.statusText) : response.statusText;
    }
  } catch {
    if (mine !== chartRequests[id]) return; // aborted by a newer request, or its answer came late
    why = "the server did not answer";
  }
  const note = document.createElement("p");
  note.className = "chart-error";
  note.textContent = `${figure.dataset.name}: ${why}`;
  figure.replaceChildren(note);
  figure.dataset.state = "error";
  setStatus(note.textContent, true);
}

function reviewRow(item) {
  const tr = document.createElement("tr");
  tr.dataset.id = item.id;
  const cells = [
    new Date(item.created_on).toLocaleString(),
    item.brand || "—",
    item.sentence,
    item.label,
    item.sentiment_score.toFixed(2),
    stars(item.suggested_rating),
    item.rating ? stars(item.rating) : "—",
  ];
  cells.forEach((value, i) => {
    const td = document.createElement("td");
    if (i === 2) {
      td.className = "text";
      const clamp = document.createElement("div"); // four lines; a click shows the whole review
      clamp.className = "clamp";
      clamp.textContent = value;
      clamp.addEventListener("click", () => clamp.classList.toggle("open"));
      td.appendChild(clamp);
    } else {
      td.textContent = value;
    }
    if (i === 0 && item.published_at) td.title = `Published ${new Date(item.published_at).toLocaleString()}`;
    if (i === 3) td.className = item.label;
    if (i >= 5) td.className = "stars";
    tr.appendChild(td);
  });
  return tr;
}

function emptyRow(text = "No reviews match these filters.", columns = 7) {
  const tr = document.createElement("tr");
  const td = document.createElement("td");
  td.colSpan = columns;
  td.className = "empty";
  td.textContent = text;
  tr.appendChild(td);
  return tr;
}

// Each list request gets a number; only the newest one's answer is drawn. Without it a slow
// answer for the brand picked before landed after the one picked now: the table showed the old
// brand under the new one's name, and "Load more" sent the old list's cursor with the new filters.
let listRequest = 0;
let listFailed = false; // the list on screen is the empty one a failed load left

async function loadReviews(append = false) {
  let params;
  if (append && listedParams) {
    // A cursor only continues the query that made it: edited but unapplied fields wait for Apply.
    if (!nextCursor) return;
    params = new URLSearchParams(listedParams);
    params.set("cursor", nextCursor);
  } else {
    params = filterParams();
    params.set("sort", applied.sort);
    params.set("limit", "20");
  }
  const mine = ++listRequest;
  $("more").disabled = true; // a second click would fetch the same page again
  const tbody = $("reviews").querySelector("tbody");
  try {
    const { body } = await getJSON(`sentiments/?${params}`);
    if (mine !== listRequest) return;
    if (!append) {
      tbody.replaceChildren();
      params.delete("cursor");
      listedParams = params.toString();
      if (!body.items.length) tbody.appendChild(emptyRow());
    }
    for (const item of body.items) tbody.appendChild(reviewRow(item));
    listFailed = false;
    nextCursor = body.next_cursor;
    $("more").hidden = !nextCursor;
  } catch (error) {
    if (mine !== listRequest) return; // the answer of a view left since: not this view's error
    // Rows of the filters before must not stay on screen under the new ones.
    if (!append) {
      tbody.replaceChildren();
      nextCursor = null;
      $("more").hidden = true;
      listFailed = true;
    }
    throw error;
  } finally {
    if (mine === listRequest) $("more").disabled = false;
  }
}

// Brands moving: each brand's mean score over the last N days against the N days before, under
// the applied filters except the dates; "To", when set, is the last day of the window. Every
// request is numbered like the list's, so an answer for the view before never lands over this one.
let moversRequest = 0;

// The sign of what is shown: -0.004 at two digits is "0.00", not "−0.00".
function signed(value, digits) {
  const shown = Number(value.toFixed(digits));
  const text = Math.abs(shown).toFixed(digits);
  return shown > 0 ? `+${text}` : shown < 0 ? `−${text}` : text;
}

function shortDay(iso) {
  return new Date(iso).toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
}

function moverRow(item, picked) {
  const tr = document.createElement("tr");
  tr.dataset.brand = item.brand;
  const pick = document.createElement("button");
  pick.type = "button";
  pick.textContent = item.brand;
  pick.title = `Show ${item.brand} in the charts and the list`;
  if (item.brand === picked) {
    tr.className = "picked";
    pick.setAttribute("aria-pressed", "true");
  }
  pick.addEventListener("click", () => {
    $("brand").value = item.brand;
    refreshAll();
  });
  const now = item.current;
  const before = item.previous;
  const cells = [
    pick,
    `${now.count} (${before.count})`,
    `${now.mean_score.toFixed(2)} (${before.mean_score.toFixed(2)})`,
    signed(item.change, 2),
    `${Math.round(now.negative_share * 100)}% (${signed(item.negative_share_change * 100, 0)} pt)`,
  ];
  cells.forEach((value, i) => {
    const td = document.createElement("td");
    if (value instanceof Node) td.appendChild(value);
    else td.textContent = value;
    if (i === 3) td.className = value.startsWith("−") ? "negative" : value.startsWith("+") ? "positive" : "";
    tr.appendChild(td);
  });
  return tr;
}

async function loadMovers() {
  const params = filterParams();
  const picked = params.get("brand");
  // The panel compares brands: the picked one is marked in the list, not made the whole list.
  for (const name of ["brand", "since", "until", "published_since", "published_until"]) params.delete(name);
  params.set("time_field", $("time-field").value);
  params.set("days", $("movers-days").value);
  params.set("order", $("movers-order").value);
  params.set("limit", "10");
  if (applied.to) params.set("end", `${dayAfter(applied.to)}T00:00:00Z`);
  const mine = ++moversRequest;
  const tbody = $("movers").querySelector("tbody");
  try {
    const { body } = await getJSON(`brands/trends?${params}`);
    if (mine !== moversRequest) return;
    // A window that ends after now holds today so far: its counts are not yet whole.
    const until = Date.parse(body.current.until);
    const last = until > Date.now() ? "now" : shortDay(new Date(until - 1).toISOString());
    $("movers-window").textContent =
      `${shortDay(body.current.since)} – ${last} (UTC) against the ${body.days} days before;` +
      ` brands with at least ${body.min_count} reviews in each`;
    tbody.replaceChildren(...body.brands.map((item) => moverRow(item, picked)));
    if (!body.brands.length) tbody.appendChild(emptyRow("No brand has enough reviews in both windows.", 5));
    $("movers").dataset.state = "loaded";
  } catch (error) {
    if (mine !== moversRequest) return;
    tbody.replaceChildren();
    $("movers-window").textContent = ""; // it described the windows of the answer before
    $("movers").dataset.state = "error";
    throw new Error(`Brands moving: ${error.message}`);
  }
}

function showScore(target, row) {
  target.replaceChildren();
  const label = document.createElement("strong");
  label.className = row.label;
  label.textContent = row.label;
  const detail = document.createElement("span");
  detail.textContent = ` score ${row.sentiment_score.toFixed(2)} · confidence ${row.confidence.toFixed(2)} · suggested `;
  const rating = document.createElement("span");
  rating.className = "stars";
  rating.dataset.rating = row.suggested_rating;
  rating.textContent = stars(row.suggested_rating);
  target.append(label, detail, rating);
  target.dataset.state = "scored";
}

// The API's one error shape: a message, and for a 422 the fields it refused.
function describeError(body, fallback) {
  if (!body.error) return fallback;
  const fields = (body.error.details || []).map((d) => `${d.loc[d.loc.length - 1]}: ${d.msg}`);
  return fields.length ? `${body.error.message} (${fields.join("; ")})` : body.error.message;
}

async function submitReview(event) {
  event.preventDefault();
  const target = $("submit-result");
  const payload = { text: $("submit-text").value };
  if ($("submit-brand").value.trim()) payload.brand = $("submit-brand").value.trim();
  if ($("submit-rating").value) payload.rating = Number($("submit-rating").value);
  target.classList.remove("error");
  target.dataset.state = "sending";
  target.textContent = "Sending…";
  try {
    const response = await fetch("sentiments/?wait=2", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    const body = await response.json();
    if (response.status === 422 && body.error && body.error.code === "rejected") {
      throw new NotScored(body.error.message); // the broker took it; the worker refused it
    }
    if (!response.ok) throw new Error(describeError(body, response.statusText));
    if (body.status === "scored") {
      showScore(target, body.sentiment);
      $("submit-form").reset();
      refreshAll();
      return;
    }
    target.dataset.state = "pending";
    target.textContent = "Queued for scoring; waiting for the worker…";
    // Relative to the page, like every other call here, so a mount under a path prefix works; the
    // Location's `after` (the submission's time) keeps an earlier submission's rejection out.
    const query = new URLSearchParams(body.location.split("?")[1] || "");
    query.set("wait", "5");
    const location = `sentiments/by-key/${encodeURIComponent(body.review_key)}?${query}`;
    for (let attempt = 0; attempt < 12; attempt++) {
      const { status, body: row } = await getJSON(location);
      if (status === 404 && row && row.error && row.error.code === "rejected") throw new NotScored(row.error.message);
      if (status === 200) {
        showScore(target, row);
        $("submit-form").reset();
        refreshAll();
        return;
      }
    }
    target.textContent = "Still queued: the worker has not scored it yet. It will appear in the list once scored.";
  } catch (error) {
    target.dataset.state = "error";
    target.textContent = `${error instanceof NotScored ? "Not scored" : "Not submitted"}: ${error.message}`;
    target.classList.add("error");
  }
}

class NotScored extends Error {}

function refreshAll() {
  setStatus(""); // an error shown for the view before is not this view's
  showApplied();
  refreshCharts();
  loadMovers().catch((e) => setStatus(e.message, true));
  $("export").href = `sentiments/export?${new URLSearchParams([["format", "csv"], ...filterParams()])}`;
  loadReviews().catch((e) => setStatus(e.message, true));
}

document.addEventListener("DOMContentLoaded", async () => {
  $("brand").addEventListener("change", refreshAll);
  $("brand").addEventListener("input", searchBrands);
  $("source").addEventListener("change", refreshAll);
  // These change the charts only; but a list a failed load emptied is loaded again too (after
  // an outage the status cleared and the charts came back over an empty table).
  $("bucket").addEventListener("change", () => {
    if (listFailed) return refreshAll();
    setStatus("");
    refreshCharts();
  });
  // A date range follows the time field, so with one applied the list changes too; the brands
  // moving are counted on it either way.
  $("time-field").addEventListener("change", () => {
    if (listFailed || applied.from || applied.to) return refreshAll();
    setStatus("");
    refreshCharts();
    loadMovers().catch((e) => setStatus(e.message, true));
  });
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    // A half-typed date, or one outside the inputs' min/max (a year past 9999 breaks the date
    // arithmetic and compares wrongly as text), never gets here: the browser's own form
    // validation refuses to submit it and says why beside the field.
    // ISO dates of four-digit years compare as text; the API would refuse the range too, in its own names.
    if ($("from").value && $("to").value && $("from").value > $("to").value) {
      return setStatus("From is after To: the filters were not applied", true);
    }
    applyFilters();
    refreshAll();
  });
  for (const id of ["movers-days", "movers-order"]) {
    $(id).addEventListener("change", () => {
      setStatus(""); // an error shown for the view before is not this view's
      loadMovers().catch((e) => setStatus(e.message, true));
    });
  }
  $("more").addEventListener("click", () => loadReviews(true).catch((x) => setStatus(x.message, true)));
  $("submit-form").addEventListener("submit", submitReview);
  try {
    await loadBrands();
    refreshAll();
    setStatus("ready");
    document.body.dataset.ready = "true";
    // The source picker is a convenience: without it the page still works, on all sources.
    loadSources().catch((e) => setStatus(`Could not list the sources: ${e.message}`, true));
  } catch (error) {
    setStatus(`Could not load data: ${error.message}`, true);
  }
});
