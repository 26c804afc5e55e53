// A small line chart on a <canvas>: no library, no network. drawChart(canvas, points, opts)
// with points = [[t_seconds, value], ...] (t ascending); drawLines(canvas, [{label, points}], opts)
// for several series with a legend. The x axis runs from opts.t0 to opts.t1
// (default: the first and last point), labelled as time since t0; the y axis is padded around the
// data unless opts.min/opts.max pin it.
"use strict";

(function () {
  const PAD = { left: 44, right: 8, top: 8, bottom: 20 };

  // Round tick values (1, 2, 2.5 or 5 times a power of ten) and their labels, formatted with as
  // many decimals as the step has.
  function niceTicks(lo, hi, count) {
    const span = hi - lo || 1;
    const mag = Math.pow(10, Math.floor(Math.log10(span / count)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
    const decimals = (String(+step.toPrecision(6)).split(".")[1] || "").length;
    const ticks = [];
    for (let i = Math.ceil(lo / step); i * step <= hi + step * 1e-9; i++) {
      const v = i * step;
      ticks.push([v, Math.abs(v) >= 10000 ? (v / 1000).toFixed(0) + "k" : v.toFixed(decimals)]);
    }
    return ticks;
  }

  function yRange(values, opts) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (opts.min !== undefined) lo = Math.min(lo, opts.min);
    if (opts.max !== undefined) hi = Math.max(hi, opts.max);
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    const pad = (hi - lo) * 0.05;
    if (opts.min === undefined || lo < opts.min) lo -= pad;
    if (opts.max === undefined || hi > opts.max) hi += pad;
    return [lo, hi];
  }

  function setup(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 320, h = canvas.clientHeight || 160;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    return [ctx, w, h];
  }

  function drawAxes(ctx, w, h, xr, yr) {
    ctx.strokeStyle = "#e3e6eb";
    ctx.fillStyle = "#6b7280";
    ctx.lineWidth = 1;
    const sx = (x) => PAD.left + ((x - xr[0]) / (xr[1] - xr[0] || 1)) * (w - PAD.left - PAD.right);
    const sy = (y) => h - PAD.bottom - ((y - yr[0]) / (yr[1] - yr[0])) * (h - PAD.top - PAD.bottom);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const [v, label] of niceTicks(yr[0], yr[1], 4)) {
      ctx.beginPath(); ctx.moveTo(PAD.left, sy(v)); ctx.lineTo(w - PAD.right, sy(v)); ctx.stroke();
      ctx.fillText(label, PAD.left - 4, sy(v));
    }
    // x in seconds; label in seconds for short spans, minutes or hours for longer ones
    const unit = xr[1] < 120 ? [1, "s"] : xr[1] < 7200 ? [60, "m"] : [3600, "h"];
    ctx.textBaseline = "top";
    for (const [v, text] of niceTicks(xr[0] / unit[0], xr[1] / unit[0], 5)) {
      const label = text + unit[1];
      const half = ctx.measureText(label).width / 2;
      const x = Math.min(Math.max(sx(v * unit[0]), PAD.left + half), w - PAD.right - half);
      ctx.textAlign = "center";
      ctx.fillText(label, x, h - PAD.bottom + 4);
    }
    return [sx, sy];
  }

  // Line colours in order: the first line keeps the single-line charts' blue.
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

  function drawLine(ctx, sx, sy, points, t0, color) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.8;
    ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo(sx(p[0] - t0), sy(p[1])) : ctx.moveTo(sx(p[0] - t0), sy(p[1]))));
    ctx.stroke();
    ctx.fillStyle = color;
    const last = points[points.length - 1];
    ctx.beginPath(); ctx.arc(sx(last[0] - t0), sy(last[1]), 2.5, 0, 2 * Math.PI); ctx.fill();
  }

  // Several series on one chart: lines = [{label, points}, ...]; a legend names them when
  // there is more than one (or the one has a label).
  function drawLines(canvas, lines, opts) {
    opts = opts || {};
    const [ctx, w, h] = setup(canvas);
    lines = lines.filter((l) => l.points.length);
    if (!lines.length) {
      ctx.fillStyle = "#9ca3af";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("no data yet", w / 2, h / 2);
      return;
    }
    const all = lines.flatMap((l) => l.points);
    const t0 = opts.t0 !== undefined ? opts.t0 : Math.min(...all.map((p) => p[0]));
    const tEnd = opts.t1 !== undefined ? opts.t1 : Math.max(...all.map((p) => p[0]));
    const xr = [0, Math.max(tEnd - t0, 1)];
    const [sx, sy] = drawAxes(ctx, w, h, xr, yRange(all.map((p) => p[1]), opts));
    lines.forEach((l, i) => drawLine(ctx, sx, sy, l.points, t0, l.color || opts.color || COLORS[i % COLORS.length]));
    if (lines.length > 1 || lines[0].label) {
      ctx.textAlign = "right";
      ctx.textBaseline = "top";
      // a light box under the legend, so a line running through the corner does not hide it
      const width = Math.max(...lines.map((l) => ctx.measureText(l.label || "").width));
      ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
      ctx.fillRect(w - PAD.right - width - 6, PAD.top, width + 6, 13 * lines.length + 4);
      lines.forEach((l, i) => {
        ctx.fillStyle = l.color || COLORS[i % COLORS.length];
        ctx.fillText(l.label || "", w - PAD.right - 2, PAD.top + 2 + 13 * i);
      });
    }
  }

  function drawChart(canvas, points, opts) {
    drawLines(canvas, [{ points: points }], opts);
  }

  window.drawChart = drawChart;
  window.drawLines = drawLines;
})();
