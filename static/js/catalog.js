// Model catalog: output price against median latency, one point per model.
// The numbers are in the server-rendered table; this chart only plots them.
(function () {
  "use strict";
  var holder = document.getElementById("catalog-chart");
  var data = document.getElementById("catalog-data");
  if (!holder || !data || typeof Plotly === "undefined") return;
  var points = JSON.parse(data.textContent);
  // A unit price as the table shows it (finops.money.usd_per_mtok): up to four decimals.
  function price(value) {
    var n = Number(value);
    var text = n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 4 });
    return (n < 0 ? "-$" + text.slice(1) : "$" + text) + " / Mtok";
  }
  var trace = {
    type: "scatter",
    mode: "markers+text",
    x: points.map(function (p) { return p.p50_ms; }),
    y: points.map(function (p) { return Number(p.output); }),
    text: points.map(function (p) { return p.model; }),
    textposition: "top center",
    customdata: points.map(function (p) { return [price(p.input), p.p95_ms, p.requests, price(p.output)]; }),
    hovertemplate:
      "%{text}<br>p50 %{x} ms, p95 %{customdata[1]} ms<br>" +
      "in %{customdata[0]} / out %{customdata[3]}<br>%{customdata[2]} requests<extra></extra>",
    marker: {
      size: points.map(function (p) { return 8 + Math.min(30, Math.sqrt(p.requests)); }),
      opacity: 0.7,
    },
  };
  Plotly.newPlot(holder, [trace], {
    margin: { t: 10, r: 10, b: 50, l: 60 },
    xaxis: { title: { text: "latency p50 (ms)" } },
    yaxis: { title: { text: "output price ($/Mtok)" }, rangemode: "tozero", tickformat: "$,.2f" },
  }, { responsive: true, displaylogo: false });
})();
