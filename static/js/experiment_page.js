/* A/B page: one small Plotly bar chart per metric, control next to candidate, from the JSON
 * embedded in the page (the same dict as data.json). The tables are rendered by the server. */
(function () {
  "use strict";

  var source = document.getElementById("experiment-data");
  if (!source || !window.Plotly) return;
  var data = JSON.parse(source.textContent);
  var arms = data.arms.map(function (a) { return a.arm; });
  var COLORS = ["#3a6ea5", "#e07b39"];
  var CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };

  function num(v) { return v === null || v === undefined || v === "" ? null : parseFloat(v); }

  function layout(title, extra) {
    return Object.assign({
      title: { text: title, font: { size: 14 }, x: 0.01 },
      margin: { t: 40, r: 16, b: 40, l: 64 },
      height: 280, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
      font: { family: "system-ui, sans-serif", size: 12, color: "#1d2330" },
      showlegend: false,
    }, extra || {});
  }

  function bars(id, title, values, extra, errors) {
    var el = document.getElementById(id);
    if (!el) return;
    if (values.every(function (v) { return v === null; })) {
      el.classList.add("empty");
      el.textContent = title + ": no data in this range.";
      return;
    }
    var trace = { type: "bar", x: arms, y: values, marker: { color: COLORS } };
    if (errors) trace.error_y = errors;
    Plotly.newPlot(el, [trace], layout(title, extra), CONFIG);
  }

  bars("chart-cost", "Cost per call (USD)", data.arms.map(function (a) { return num(a.cost_per_call); }));
  var el = document.getElementById("chart-latency");
  if (el && data.arms.some(function (a) { return a.latency_ms_p50 !== null; })) {
    Plotly.newPlot(el, [
      { type: "bar", name: "p50", x: arms, y: data.arms.map(function (a) { return a.latency_ms_p50; }), marker: { color: "#3a6ea5" } },
      { type: "bar", name: "p95", x: arms, y: data.arms.map(function (a) { return a.latency_ms_p95; }), marker: { color: "#e07b39" } },
    ], layout("Latency p50 / p95 (ms)", { barmode: "group", showlegend: true, legend: { orientation: "h", y: -0.2 } }), CONFIG);
  } else if (el) {
    el.classList.add("empty");
    el.textContent = "Latency: no data in this range.";
  }
  bars("chart-errors", "Error rate (%)", data.arms.map(function (a) { return num(a.error_rate_pct); }),
    { yaxis: { rangemode: "nonnegative" } });
  var q = data.arms.map(function (a) { return a.quality; });
  bars("chart-quality", "Feedback score (mean, 95% CI)", q.map(function (x) { return x.mean; }),
    { yaxis: { range: [0, 1] } },
    { type: "data", symmetric: false,
      array: q.map(function (x) { return x.mean === null ? 0 : x.high - x.mean; }),
      arrayminus: q.map(function (x) { return x.mean === null ? 0 : x.mean - x.low; }) });
})();
