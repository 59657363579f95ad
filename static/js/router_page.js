/* Router page: draws the traffic and quality-vs-strong-share charts from the JSON embedded in
 * the page (the same dict as data.json), and drives the what-if slider: every grid point was
 * computed by the server, so moving the slider only looks one up (no round trip). Money arrives
 * as fixed-point strings and is shown as the server formatted it. */
(function () {
  "use strict";

  var root = document.getElementById("router-page");
  var source = document.getElementById("router-data");
  if (!root || !source) return;
  var data = JSON.parse(source.textContent);
  var CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  var COLORS = { strong: "#c94c4c", weak: "#4f9d69", "": "#7f7f7f" };

  function layout(title, extra) {
    return Object.assign({
      title: { text: title, font: { size: 14 }, x: 0.01 },
      margin: { t: 40, r: 16, b: 48, l: 64 },
      height: 340,
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff",
      font: { family: "system-ui, sans-serif", size: 12, color: "#1d2330" },
      legend: { orientation: "h", y: -0.2 },
      hovermode: "closest",
    }, extra || {});
  }

  function pct(ratio) {
    return ratio === null || ratio === undefined ? "–" : (ratio * 100).toFixed(1) + "%";
  }

  function empty(el, text) {
    el.classList.add("empty");
    el.textContent = text;
  }

  function drawTraffic() {
    var el = document.getElementById("chart-traffic");
    if (!el || !window.Plotly) return;
    var rows = data.traffic.by_model;
    if (!rows.length) return empty(el, "No production calls through this router in this range.");
    Plotly.newPlot(el, rows.map(function (r) {
      return {
        type: "bar", orientation: "h", name: (r.decision || "none") + " → " + r.model,
        x: [r.calls], y: ["calls"], marker: { color: COLORS[r.decision] || COLORS[""] },
        hovertemplate: r.model + " (" + (r.decision || "none") + "): %{x} calls, " +
          (r.share_pct || "0") + "%<extra></extra>",
      };
    }), layout("Production calls by decision → model", { barmode: "stack", height: 220 }), CONFIG);
  }

  var curveEl = document.getElementById("chart-curve");
  var markerTrace = null;

  function drawCurve() {
    if (!curveEl || !window.Plotly || !data.curve) return;
    var pts = data.curve.points;
    var traces = [
      { x: [0, 1], y: [0, 1], mode: "lines", name: "random routing",
        line: { color: "#7f7f7f", dash: "dot", width: 1.5 } },
      { x: pts.map(function (p) { return p[0]; }), y: pts.map(function (p) { return p[1]; }),
        mode: "lines+markers", name: data.curve.scorer + " scorer (APGR " + data.curve.apgr + ")",
        line: { color: "#3a6ea5", width: 2 }, marker: { size: 4 },
        customdata: pts.map(function (p) { return p[2]; }),
        hovertemplate: "strong share %{x:.0%}<br>PGR %{y:.3f}<br>quality %{customdata:.3f}<extra></extra>" },
      { x: [], y: [], mode: "markers", name: "what-if threshold",
        marker: { color: "#e07b39", size: 12, symbol: "diamond" } },
    ];
    markerTrace = 2;
    Plotly.newPlot(curveEl, traces, layout("Performance gap recovered vs share of strong calls", {
      xaxis: { title: { text: "share of calls to the strong model" }, tickformat: ".0%", range: [0, 1] },
      yaxis: { title: { text: "PGR" }, range: [-0.05, 1.1] },
    }), CONFIG);
  }

  function pointAt(threshold) {
    var grid = data.whatif.grid, best = grid[0];
    grid.forEach(function (p) {
      if (Math.abs(p.threshold - threshold) < Math.abs(best.threshold - threshold)) best = p;
    });
    return best;
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  function update(threshold) {
    var p = pointAt(threshold);
    setText("whatif-value", p.threshold.toFixed(2) + (p.threshold >= 1 ? " (all weak)" : ""));
    setText("whatif-share", p.strong_share_pct === null ? "–" : p.strong_share_pct.toFixed(1) + "%");
    setText("whatif-cost", p.cost_usd);
    setText("whatif-retained", pct(p.retained));
    setText("whatif-pgr", p.pgr === null ? "–" : p.pgr.toFixed(3));
    if (curveEl && markerTrace !== null && p.strong_share_pct !== null && p.pgr !== null) {
      Plotly.restyle(curveEl, { x: [[p.strong_share_pct / 100]], y: [[p.pgr]] }, [markerTrace]);
    }
  }

  drawTraffic();
  drawCurve();
  var slider = document.getElementById("whatif-threshold");
  var controls = document.getElementById("whatif-controls");
  if (slider && controls && data.whatif.grid.length) {
    controls.hidden = false;
    slider.addEventListener("input", function () { update(parseFloat(slider.value)); });
    update(parseFloat(slider.value));
  }
})();
