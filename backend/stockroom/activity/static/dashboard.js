/* Stockroom activity dashboard: signs in, then draws the JSON endpoints with Chart.js.
 * The access token lives in sessionStorage (gone when the tab closes). Event data is only ever
 * written with textContent, never as HTML. */
"use strict";

(function () {
  const API = document.body.dataset.api || "/api/v1";
  const TOKEN_KEY = "stockroom.access_token";
  const COLORS = ["#2f6fdf", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4", "#bf399e",
    "#6c8893", "#ee6868", "#8c9e2c"];
  const charts = {};
  let nextCursor = null;

  const $ = (id) => document.getElementById(id);

  function setState(state) {
    document.body.dataset.state = state;
    $("login").hidden = state !== "login";
    $("forbidden").hidden = state !== "forbidden";
    $("dashboard").hidden = state !== "ready" && state !== "drawing";
    $("session").hidden = state === "login";
  }

  class HttpError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(path, params) {
    const url = new URL(API + path, window.location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    const response = await fetch(url, {
      headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY), Accept: "application/json" },
    });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new HttpError(response.status, detail);
    }
    return response.json();
  }

  async function login(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    $("login-error").textContent = "";
    const response = await fetch(API + "/auth/login-json", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: form.get("email"), password: form.get("password") }),
    });
    if (!response.ok) {
      $("login-error").textContent = response.status === 429
        ? "Too many failed attempts; try again later."
        : "Wrong email or password.";
      return;
    }
    const body = await response.json();
    sessionStorage.setItem(TOKEN_KEY, body.access_token);
    event.target.reset();
    await start();
  }

  function logout() {
    sessionStorage.removeItem(TOKEN_KEY);
    Object.values(charts).forEach((chart) => chart.destroy());
    for (const key of Object.keys(charts)) delete charts[key];
    setState("login");
  }

  const isoHoursAgo = (hours) => new Date(Date.now() - hours * 3600e3).toISOString();

  function label(iso, bucket) {
    const d = new Date(iso);
    const day = d.toISOString().slice(5, 10);
    return bucket === "hour" ? day + " " + d.toISOString().slice(11, 16) : day;
  }

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
    charts[id] = new Chart($(id), config);
  }

  async function drawActivity() {
    const bucket = $("activity-bucket").value;
    const rows = await api("/dashboard/activity", {
      bucket, from: isoHoursAgo(bucket === "hour" ? 24 : 24 * 30),
    });
    const buckets = [...new Set(rows.map((r) => r.bucket_start))].sort();
    const types = [...new Set(rows.map((r) => r.type))].sort();
    const datasets = types.map((type, i) => ({
      label: type,
      backgroundColor: COLORS[i % COLORS.length],
      data: buckets.map((b) => (rows.find((r) => r.bucket_start === b && r.type === type) || { count: 0 }).count),
    }));
    draw("activity-chart", {
      type: "bar",
      data: { labels: buckets.map((b) => label(b, bucket)), datasets },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
  }

  async function drawFlow() {
    const rows = await api("/dashboard/stock-flow", { bucket: "day", from: isoHoursAgo(24 * 14) });
    const warehouses = [...new Set(rows.map((r) => r.warehouse_id))].sort();
    const sum = (w, key) => rows.filter((r) => r.warehouse_id === w).reduce((a, r) => a + r[key], 0);
    // Bars are labelled by warehouse code; ids created the same day share their first characters.
    const codes = new Map(rows.filter((r) => r.warehouse_code).map((r) => [r.warehouse_id, r.warehouse_code]));
    draw("flow-chart", {
      type: "bar",
      data: {
        labels: warehouses.map((w) => codes.get(w) || w),
        datasets: [
          { label: "units in", backgroundColor: "#19a979", data: warehouses.map((w) => sum(w, "units_in")) },
          { label: "units out", backgroundColor: "#e8743b", data: warehouses.map((w) => sum(w, "units_out")) },
        ],
      },
      options: { scales: { y: { beginAtZero: true } } },
    });
  }

  async function drawActors() {
    const rows = await api("/dashboard/top-actors", { limit: 10 });
    draw("actors-chart", {
      type: "bar",
      data: {
        labels: rows.map((r) => r.email || r.actor_id.slice(0, 8)),
        datasets: [{ label: "events", backgroundColor: "#2f6fdf", data: rows.map((r) => r.events) }],
      },
      options: { indexAxis: "y", scales: { x: { beginAtZero: true } } },
    });
  }

  async function drawSummary() {
    const summary = await api("/dashboard/summary");
    document.querySelectorAll("#cards [data-field]").forEach((el) => {
      el.textContent = String(summary[el.dataset.field]);
    });
  }

  function filterParams() {
    const form = new FormData($("filters"));
    const params = {};
    for (const [key, value] of form.entries()) {
      if (!value) continue;
      params[key] = key === "from" || key === "to" ? value + "Z" : value;
    }
    return params;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
  }

  async function loadEvents(reset) {
    const tbody = $("events").querySelector("tbody");
    $("filter-error").textContent = "";
    const params = Object.assign({ limit: 50 }, filterParams());
    if (!reset && nextCursor) params.cursor = nextCursor;
    let page;
    try {
      page = await api("/activity", params);
    } catch (error) {
      if (error.status === 422) { $("filter-error").textContent = error.message; return; }
      throw error;
    }
    if (reset) tbody.replaceChildren();
    for (const item of page.items) {
      const row = document.createElement("tr");
      cell(row, item.occurred_at.replace("T", " ").replace("+00:00", "").replace("Z", ""));
      cell(row, item.type);
      cell(row, item.actor ? item.actor.email || item.actor.id : "system");
      cell(row, item.entity ? item.entity.type + " " + item.entity.id.slice(0, 8) : "");
      const details = Object.assign({}, item.changes ? { changes: item.changes } : {}, item.data ? { data: item.data } : {});
      cell(row, Object.keys(details).length ? JSON.stringify(details) : "", "details");
      tbody.appendChild(row);
    }
    nextCursor = page.next_cursor;
    $("more").hidden = !nextCursor;
  }

  function handleFailure(error) {
    if (error instanceof HttpError && error.status === 401) { logout(); return; }
    if (error instanceof HttpError && error.status === 403) { setState("forbidden"); return; }
    $("failure").hidden = false;
    $("failure").textContent = "The dashboard could not load: " + error.message;
    document.body.dataset.state = "error";
  }

  async function start() {
    if (!sessionStorage.getItem(TOKEN_KEY)) { setState("login"); return; }
    $("failure").hidden = true;
    try {
      const me = await api("/users/me").catch(() => null);
      $("who").textContent = me && me.email ? me.email : "";
      await drawSummary();  // 403 here: no audit:read
      setState("drawing");
      await Promise.all([drawActivity(), drawFlow(), drawActors(), loadEvents(true)]);
      document.body.dataset.chartsRendered = String(Object.keys(charts).length);
      setState("ready");
    } catch (error) {
      handleFailure(error);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (e) => { login(e).catch(handleFailure); });
    $("logout").addEventListener("click", logout);
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); loadEvents(true).catch(handleFailure); });
    $("more").addEventListener("click", () => { loadEvents(false).catch(handleFailure); });
    $("activity-bucket").addEventListener("change", () => { drawActivity().catch(handleFailure); });
    start();
  });
})();
