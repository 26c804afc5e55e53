// The dashboard: polls GET /v1/runs/{id} and /v1/runs/{id}/series every 2 s, draws the charts,
// and starts/stops runs. Everything shown is set with textContent (never innerHTML), so run
// data cannot inject markup. The API token lives in sessionStorage (this tab only).
"use strict";

(function () {
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);
  const state = { runId: null, since: 0, points: [], configShown: false };

  function token() { return sessionStorage.getItem("dashrl-token") || ""; }

  function say(text, isError) {
    const m = $("message");
    m.textContent = text || "";
    m.classList.toggle("error", !!isError);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && token()) headers.Authorization = "Bearer " + token();
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const d = data.detail;
      const why = typeof d === "string" ? d : d && d.message ? d.message : JSON.stringify(d || data);
      throw new Error(resp.status + ": " + why);
    }
    return data;
  }

  function fmt(v, digits) {
    if (v === null || v === undefined) return "-";
    return typeof v === "number" && digits !== undefined ? v.toFixed(digits) : String(v);
  }

  function renderRun(run) {
    const badge = $("state");
    badge.textContent = run.state;
    badge.className = "badge " + run.state;
    $("s-version").textContent = fmt(run.policy_version);
    $("s-step").textContent = fmt(run.learner_step) + (run.max_steps ? " / " + run.max_steps : "");
    $("s-samples").textContent = fmt(run.samples);
    $("s-reward").textContent = fmt(run.reward_mean, 3);
    $("s-acc").textContent = fmt(run.eval_accuracy, 3);
    const names = Object.keys(run.evals || {});
    $("s-acc").title = names.map((n) => n + " " + fmt(run.evals[n], 3)).join(", ");
    $("acc-caption").textContent = names.length > 1 ? "eval accuracy (" + names.join(", ") + ")" : "eval accuracy";
    $("s-stok").textContent = fmt(run.tokens_per_s.sampler, 0);
    $("s-ltok").textContent = fmt(run.tokens_per_s.learner, 0);
    $("s-stale").textContent = fmt(run.staleness, 2);
    $("s-kept").textContent = fmt(run.kept_fraction, 2);
    $("s-queue").textContent = fmt(run.queue_depth);
    $("stop").disabled = ["stopped", "finished", "failed"].includes(run.state);
    renderServices(run.services);
    renderFailure(run.failure);
    if (!state.configShown && run.config) {
      const cfg = Object.assign({}, run.config);
      delete cfg.run_id;
      $("config").value = JSON.stringify(cfg, null, 2);
      state.configShown = true;
    }
  }

  function renderServices(services) {
    const body = $("services");
    body.replaceChildren();
    for (const s of services) {
      const tr = document.createElement("tr");
      const age = s.age_s < 120 ? s.age_s.toFixed(1) + " s ago" : new Date(s.last_heartbeat * 1000).toLocaleString();
      for (const [text, cls] of [[s.service], [s.instance_id], [s.state], [age, s.stale ? "stale" : ""]]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function renderFailure(failure) {
    $("failure").hidden = !failure;
    if (!failure) return;
    $("failure-what").textContent = failure.service + " failed (exit code " + fmt(failure.exit_code) + ")";
    $("failure-log").textContent = failure.log_tail;
  }

  function column(key) {
    return state.points.filter((p) => typeof p[key] === "number").map((p) => [p.t, p[key]]);
  }

  // The keys of a chart with data-prefix (e.g. "eval_accuracy:" -> one line per named eval),
  // in the order they first appear; [] when the run has none (then data-key's one line).
  function prefixed(prefix) {
    const keys = [];
    for (const p of state.points) for (const k of Object.keys(p)) if (k.startsWith(prefix) && !keys.includes(k)) keys.push(k);
    return keys;
  }

  function drawCharts() {
    for (const canvas of document.querySelectorAll("canvas[data-key]")) {
      // one time axis for every chart: from the first to the last sample of the run
      const opts = state.points.length ? { t0: state.points[0].t, t1: state.points[state.points.length - 1].t } : {};
      if (canvas.dataset.min !== undefined) opts.min = Number(canvas.dataset.min);
      if (canvas.dataset.max !== undefined) opts.max = Number(canvas.dataset.max);
      const keys = canvas.dataset.prefix ? prefixed(canvas.dataset.prefix) : [];
      if (keys.length > 1) {
        const lines = keys.map((k) => ({ label: k.slice(canvas.dataset.prefix.length), points: column(k) }));
        window.drawLines(canvas, lines, opts);
      } else {
        window.drawChart(canvas, column(canvas.dataset.key), opts);
      }
    }
  }

  async function loadRuns(select) {
    const data = await api("GET", "/v1/runs?limit=50");
    const menu = $("run-select");
    menu.replaceChildren();
    for (const run of data.runs) {
      const opt = document.createElement("option");
      opt.value = run.id;
      opt.textContent = run.id + " (" + run.state + ")";
      menu.appendChild(opt);
    }
    const wanted = select || state.runId || new URLSearchParams(location.hash.slice(1)).get("run");
    const ids = data.runs.map((r) => r.id);
    selectRun(ids.includes(wanted) ? wanted : ids[0] || null);
  }

  function selectRun(runId) {
    if (runId !== state.runId) {
      state.runId = runId;
      state.since = 0;
      state.points = [];
      state.configShown = false;
    }
    $("run-select").value = runId || "";
    if (runId) history.replaceState(null, "", "#run=" + encodeURIComponent(runId));
    drawCharts();
  }

  async function poll() {
    if (!state.runId) return;
    const runId = state.runId;
    const [run, series] = await Promise.all([
      api("GET", "/v1/runs/" + encodeURIComponent(runId)),
      api("GET", "/v1/runs/" + encodeURIComponent(runId) + "/series?since=" + state.since),
    ]);
    if (runId !== state.runId) return;
    renderRun(run);
    if (series.points.length) {
      state.points = state.points.concat(series.points).slice(-5000);
      state.since = series.points[series.points.length - 1].t;
    }
    drawCharts();
  }

  async function tick() {
    try {
      await poll();
    } catch (err) {
      say("update failed: " + err.message, true);
    }
    setTimeout(tick, POLL_MS);
  }

  async function startRun() {
    let config;
    try {
      config = JSON.parse($("config").value);
    } catch (err) {
      say("the config is not valid JSON: " + err.message, true);
      return;
    }
    try {
      const created = await api("POST", "/v1/runs", config);
      say("started run " + created.id);
      await loadRuns(created.id);
    } catch (err) {
      say("start failed: " + err.message, true);
    }
  }

  async function stopRun() {
    if (!state.runId) return;
    try {
      const res = await api("POST", "/v1/runs/" + encodeURIComponent(state.runId) + "/stop", { reason: "stopped from the dashboard" });
      say("run " + res.id + ": " + res.state);
    } catch (err) {
      say("stop failed: " + err.message, true);
    }
  }

  function init() {
    $("token").value = token();
    $("token").addEventListener("change", (e) => sessionStorage.setItem("dashrl-token", e.target.value));
    $("run-select").addEventListener("change", (e) => selectRun(e.target.value));
    $("start").addEventListener("click", startRun);
    $("stop").addEventListener("click", stopRun);
    window.addEventListener("resize", drawCharts);
    loadRuns().catch((err) => say("cannot list runs: " + err.message, true)).finally(tick);
    setInterval(() => loadRuns().catch(() => {}), 15000);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
