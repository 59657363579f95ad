/* Dashboards: draws the Plotly charts of the organisation overview and the team page from their
 * JSON endpoint (the container's data-url, same range parameters as the page). Money arrives as
 * fixed-point strings; it becomes a float here only to be plotted. The tables under the charts
 * are rendered by the server and need none of this. */
(function () {
  "use strict";

  var root = document.getElementById("dashboard");
  if (!root || !window.Plotly) return;
  var status = document.getElementById("dash-status");
  var COLORS = ["#3a6ea5", "#e07b39", "#4f9d69", "#c94c4c", "#8a6bbe", "#b5892e", "#4aa3b5",
    "#d16ba5", "#7f7f7f", "#9bb53a", "#5e4fa2", "#f0a04b"];
  var CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function num(value) {
    return value === null || value === undefined || value === "" ? null : parseFloat(value);
  }

  function layout(title, extra) {
    var base = {
      title: { text: title, font: { size: 14 }, x: 0.01 },
      margin: { t: 40, r: 16, b: 48, l: 64 },
      height: 340,
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff",
      font: { family: "system-ui, sans-serif", size: 12, color: "#1d2330" },
      legend: { orientation: "h", y: -0.18 },
      hovermode: "closest",
    };
    return Object.assign(base, extra || {});
  }

  function draw(id, traces, lay) {
    var el = document.getElementById(id);
    if (!el) return null;
    if (!traces.length) {
      el.classList.add("empty");
      el.textContent = "No data in this range.";
      return null;
    }
    Plotly.newPlot(el, traces, lay, CONFIG);
    return el;
  }

  /* A budget's window: spent so far, forecast and its band; cumulative (spend against the
   * limit) or remaining (burn-down: limit minus spend). */
  function burnTraces(b, remaining) {
    var limit = num(b.limit);
    var f = remaining ? function (v) { return limit - num(v); } : num;
    var traces = [];
    if (b.projection) {
      var p = b.projection;
      traces.push({ x: p.x, y: p[remaining ? "low" : "high"].map(f), mode: "lines",
        line: { width: 0 }, hoverinfo: "skip", showlegend: false });
      traces.push({ x: p.x, y: p[remaining ? "high" : "low"].map(f), mode: "lines",
        line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(224,123,57,0.18)",
        name: "90% band", hoverinfo: "skip" });
      traces.push({ x: p.x, y: p.y.map(f), mode: "lines", name: "forecast",
        line: { color: "#e07b39", dash: "dash", width: 2 } });
    }
    traces.push({ x: b.actual.x, y: b.actual.y.map(f), mode: "lines+markers", name: remaining ? "remaining" : "spent",
      line: { color: "#3a6ea5", width: 2 }, marker: { size: 4 } });
    if (limit > 0) {
      traces.push({ x: [b.window.start_x, b.window.end_x], y: remaining ? [0, 0] : [limit, limit],
        mode: "lines", name: remaining ? "budget used up" : "budget " + b.limit.replace(/\.?0+$/, ""),
        line: { color: "#c94c4c", width: 1.5 } });
    }
    return traces;
  }

  function stacked(days, series, title, withUrls) {
    return {
      traces: series.map(function (s, i) {
        return {
          type: "bar", x: days, y: s.values.map(num), name: s.name,
          marker: { color: COLORS[i % COLORS.length] },
          customdata: withUrls ? days.map(function () { return s.url || ""; }) : undefined,
          hovertemplate: "%{x}<br>" + s.name.replace(/%/g, "%%") + ": %{y:$.4f}<extra></extra>",
        };
      }),
      layout: layout(title, { barmode: "stack", yaxis: { title: { text: "USD" }, tickprefix: "$" } }),
    };
  }

  function hbar(rows, title) {
    var top = rows.slice(0, 10).reverse();
    return {
      traces: top.length ? [{ type: "bar", orientation: "h", x: top.map(function (r) { return num(r.cost); }),
        y: top.map(function (r) { return r.name; }), marker: { color: "#3a6ea5" },
        hovertemplate: "%{y}: %{x:$.4f}<extra></extra>" }] : [],
      layout: layout(title, { margin: { t: 40, r: 16, b: 40, l: 150 }, xaxis: { tickprefix: "$" },
        yaxis: { automargin: true } }),
    };
  }

  function perCallVsSuccess(rows, title) {
    rows = rows.filter(function (r) { return r.cost_per_success !== null; });
    if (!rows.length) return { traces: [], layout: layout(title) };
    var names = rows.map(function (r) { return r.name; });
    return {
      traces: [
        { type: "bar", x: names, y: rows.map(function (r) { return num(r.cost_per_call); }), name: "cost per call",
          marker: { color: "#3a6ea5" } },
        { type: "bar", x: names, y: rows.map(function (r) { return num(r.cost_per_success); }),
          name: "cost per successful response", marker: { color: "#e07b39" } },
      ],
      layout: layout(title, { barmode: "group", yaxis: { tickprefix: "$", tickformat: ".6f" } }),
    };
  }

  function overview(d) {
    var month = d.month;
    var traces = burnTraces(month, false);
    (d.budgets || []).forEach(function (b) {
      if (b.period === "month" && b.id !== month.id && num(b.limit) > 0) {
        traces.push({ x: [b.window.start_x, b.window.end_x], y: [num(b.limit), num(b.limit)], mode: "lines",
          name: b.label, line: { color: "#8a6bbe", width: 1.5, dash: "dot" } });
      }
    });
    draw("chart-month", traces, layout("Spend this month (" + month.window.start + " to " + month.window.end + ")",
      { yaxis: { title: { text: "USD" }, tickprefix: "$" } }));

    var days = d.daily.days;
    var teams = stacked(days, d.daily.series, "Daily spend by team", true);
    if (d.anomalies.length) {
      var totals = {};
      days.forEach(function (day, i) {
        totals[day] = d.daily.series.reduce(function (sum, s) { return sum + num(s.values[i]); }, 0);
      });
      var shown = d.anomalies.filter(function (a) { return a.day in totals; });
      teams.traces.push({ type: "scatter", mode: "markers", name: "anomaly",
        x: shown.map(function (a) { return a.day; }), y: shown.map(function (a) { return totals[a.day]; }),
        text: shown.map(function (a) { return a.team + (a.feature ? "/" + a.feature : "") + ": $" + a.spent; }),
        marker: { symbol: "triangle-down", size: 12, color: "#c94c4c" }, hovertemplate: "%{text}<extra>anomaly</extra>" });
    }
    var el = draw("chart-teams", teams.traces, teams.layout);
    if (el) {
      // Drill-down: a click on a team's bar opens that team's page (same range).
      el.on("plotly_click", function (ev) {
        var url = ev.points && ev.points[0] && ev.points[0].customdata;
        if (url) window.location.href = url;
      });
    }
    var eff = perCallVsSuccess(d.teams, "Cost per call vs per successful response, by team");
    draw("chart-efficiency", eff.traces, eff.layout);
    [["feature", "features"], ["endpoint", "endpoints"], ["model", "models"], ["key", "keys"]].forEach(function (pair) {
      var chart = hbar(d.top[pair[0]], "Top " + pair[1]);
      draw("chart-top-" + pair[0], chart.traces, chart.layout);
    });
  }

  function team(d) {
    d.budgets.forEach(function (b, i) {
      draw("chart-budget-" + i, burnTraces(b, true), layout(b.label + " (" + b.period + ")",
        { yaxis: { title: { text: "USD remaining" }, tickprefix: "$" } }));
    });
    var days = d.over_time.days;
    ["feature", "endpoint", "model", "key"].forEach(function (dim) {
      var chart = stacked(days, d.over_time[dim], "Daily spend by " + dim, false);
      draw("chart-time-" + dim, chart.traces, chart.layout);
    });
    var eff = perCallVsSuccess(d.models, "Cost per call vs per successful response, by model");
    draw("chart-overhead", eff.traces, eff.layout);
    var rows = d.daily;
    var x = rows.map(function (r) { return r.day; });
    draw("chart-failed", rows.some(function (r) { return num(r.cost) > 0; }) ? [
      { type: "bar", x: x, y: rows.map(function (r) { return num(r.cost) - num(r.failed_cost); }),
        name: "successful attempts", marker: { color: "#3a6ea5" } },
      { type: "bar", x: x, y: rows.map(function (r) { return num(r.failed_cost); }),
        name: "failed attempts", marker: { color: "#c94c4c" } },
    ] : [], layout("Daily spend: successful vs failed attempts", { barmode: "stack", yaxis: { tickprefix: "$" } }));
    var lat = d.models.filter(function (m) { return m.latency_ms_p50 !== null; });
    draw("chart-latency", lat.length ? [
      { type: "bar", x: lat.map(function (m) { return m.name; }), y: lat.map(function (m) { return m.latency_ms_p50; }),
        name: "p50", marker: { color: "#3a6ea5" } },
      { type: "bar", x: lat.map(function (m) { return m.name; }), y: lat.map(function (m) { return m.latency_ms_p95; }),
        name: "p95", marker: { color: "#e07b39" } },
    ] : [], layout("Latency by model (successful calls)", { barmode: "group", yaxis: { title: { text: "ms" } } }));
  }

  fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(function (data) {
      (data.page === "overview" ? overview : team)(data);
      root.classList.add("charts-ready");
    })
    .catch(function (err) {
      if (status) status.textContent = "Charts could not be loaded (" + err.message + "); the tables below have every number.";
    });
})();
