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

  /* Money as the pages show it (finops.money.usd_display): to the cent with thousands separators
   * from a cent up, two significant digits under a cent, $0.00 for zero. */
  function usd(value) {
    var v = num(value);
    if (v === null || isNaN(v)) return "";
    var sign = v < 0 ? "-" : "";
    var a = Math.abs(v);
    if (a === 0) return "$0.00";
    if (a >= 0.01) {
      return sign + "$" + a.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
    var small = Number(a.toPrecision(2));
    if (small >= 0.01) return sign + "$0.01";
    return sign + "$" + small.toFixed(Math.max(2, 1 - Math.floor(Math.log10(small))));
  }

  /* The one tick format of every money axis: "$5,000.00" (cents, thousands separators) when the
   * largest value is a dollar or more; below, enough decimals for two significant digits of it
   * (never Plotly's SI "$200µ"). */
  function moneyAxis(values, extra) {
    var top = 0;
    values.forEach(function (v) { var n = Math.abs(num(v)); if (n > top) top = n; });
    var decimals = top >= 1 || top === 0 ? 2 : Math.max(2, 1 - Math.floor(Math.log10(top)));
    return Object.assign({ tickformat: "$,." + decimals + "f", separatethousands: true }, extra || {});
  }

  /* Day charts: a tick per day (per week or month on long ranges), labelled by date, never by
   * hour; bars take xperiod/xperiodalignment so that each is centred on its day. */
  var DAY_MS = 86400000;
  function dayAxis(days) {
    var n = typeof days === "number" ? days : (days || []).length;
    var dtick = n <= 16 ? DAY_MS : n <= 70 ? 7 * DAY_MS : "M1";
    return { type: "date", dtick: dtick, tickformat: "%b %-d", ticklabelmode: "instant",
      hoverformat: "%Y-%m-%d" };
  }
  /* The axis of a budget window (cumulative or burn-down lines): ticks on local midnights. */
  function windowAxis(w) {
    return dayAxis(Math.round((Date.parse(w.end) - Date.parse(w.start)) / DAY_MS) + 1);
  }

  function traceValues(traces) {
    return traces.reduce(function (all, t) { return all.concat(t.y || []); }, []);
  }

  var DAY_BAR = { xperiod: DAY_MS, xperiodalignment: "middle" };

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
        text: p.y.map(function (v) { return usd(f(v)); }), hovertemplate: "%{x}<br>forecast: %{text}<extra></extra>",
        line: { color: "#e07b39", dash: "dash", width: 2 } });
    }
    var label = remaining ? "remaining" : "spent";
    traces.push({ x: b.actual.x, y: b.actual.y.map(f), mode: "lines+markers", name: label,
      text: b.actual.y.map(function (v) { return usd(f(v)); }),
      hovertemplate: "%{x}<br>" + label + ": %{text}<extra></extra>",
      line: { color: "#3a6ea5", width: 2 }, marker: { size: 4 } });
    if (limit > 0) {
      traces.push({ x: [b.window.start_x, b.window.end_x], y: remaining ? [0, 0] : [limit, limit],
        mode: "lines", name: remaining ? "budget used up" : "budget " + usd(b.limit),
        hovertemplate: "budget " + usd(b.limit) + "<extra></extra>",
        line: { color: "#c94c4c", width: 1.5 } });
    }
    return traces;
  }

  function dayTotals(days, series) {
    return days.map(function (day, i) {
      return series.reduce(function (sum, s) { return sum + (num(s.values[i]) || 0); }, 0);
    });
  }

  function stacked(days, series, title, withUrls) {
    return {
      traces: series.map(function (s, i) {
        return Object.assign({
          type: "bar", x: days, y: s.values.map(num), name: s.name,
          marker: { color: COLORS[i % COLORS.length] },
          customdata: withUrls ? days.map(function () { return s.url || ""; }) : undefined,
          text: s.values.map(usd), textposition: "none",
          hovertemplate: "%{x}<br>" + s.name.replace(/%/g, "%%") + ": %{text}<extra></extra>",
        }, DAY_BAR);
      }),
      layout: layout(title, { barmode: "stack", xaxis: dayAxis(days),
        yaxis: moneyAxis(dayTotals(days, series), { title: { text: "USD" } }) }),
    };
  }

  function hbar(rows, title) {
    var top = rows.slice(0, 10).reverse();
    return {
      traces: top.length ? [{ type: "bar", orientation: "h", x: top.map(function (r) { return num(r.cost); }),
        y: top.map(function (r) { return r.name; }), marker: { color: "#3a6ea5" },
        text: top.map(function (r) { return usd(r.cost); }), textposition: "none",
        hovertemplate: "%{y}: %{text}<extra></extra>" }] : [],
      layout: layout(title, { margin: { t: 40, r: 16, b: 40, l: 150 },
        xaxis: moneyAxis(top.map(function (r) { return r.cost; })), yaxis: { automargin: true } }),
    };
  }

  function perCallVsSuccess(rows, title) {
    rows = rows.filter(function (r) { return r.cost_per_success !== null; });
    if (!rows.length) return { traces: [], layout: layout(title) };
    var names = rows.map(function (r) { return r.name; });
    var perCall = rows.map(function (r) { return r.cost_per_call; });
    var perSuccess = rows.map(function (r) { return r.cost_per_success; });
    return {
      traces: [
        { type: "bar", x: names, y: perCall.map(num), name: "cost per call",
          text: perCall.map(usd), textposition: "none",
          hovertemplate: "%{x}<br>cost per call: %{text}<extra></extra>", marker: { color: "#3a6ea5" } },
        { type: "bar", x: names, y: perSuccess.map(num), name: "cost per successful response",
          text: perSuccess.map(usd), textposition: "none",
          hovertemplate: "%{x}<br>cost per successful response: %{text}<extra></extra>",
          marker: { color: "#e07b39" } },
      ],
      layout: layout(title, { barmode: "group", yaxis: moneyAxis(perCall.concat(perSuccess)) }),
    };
  }

  function overview(d) {
    var month = d.month;
    var traces = burnTraces(month, false);
    // The other org budgets: monthly ones as they are, others prorated to the month (and named so).
    (month.budget_lines || []).forEach(function (line) {
      traces.push({ x: [month.window.start_x, month.window.end_x], y: [num(line.limit), num(line.limit)],
        mode: "lines", name: line.label, hovertemplate: line.note.replace(/%/g, "%%") + "<extra></extra>",
        line: { color: "#8a6bbe", width: 1.5, dash: "dot" } });
    });
    draw("chart-month", traces, layout("Spend this month (" + month.window.start + " to " + month.window.end + ")",
      { xaxis: windowAxis(month.window), yaxis: moneyAxis(traceValues(traces), { title: { text: "USD" } }) }));

    var days = d.daily.days;
    var teams = stacked(days, d.daily.series, "Daily spend by team", true);
    if (d.anomalies.length) {
      var totals = {};
      var dayTotal = dayTotals(days, d.daily.series);
      days.forEach(function (day, i) { totals[day] = dayTotal[i]; });
      var shown = d.anomalies.filter(function (a) { return a.day in totals; });
      teams.traces.push({ type: "scatter", mode: "markers", name: "anomaly",
        x: shown.map(function (a) { return a.day; }), y: shown.map(function (a) { return totals[a.day]; }),
        text: shown.map(function (a) { return a.team + (a.feature ? "/" + a.feature : "") + ": " + usd(a.spent); }),
        xperiod: DAY_MS, xperiodalignment: "middle",
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
      var burn = burnTraces(b, true);
      draw("chart-budget-" + i, burn, layout(b.label + " (" + b.period + ")",
        { xaxis: windowAxis(b.window), yaxis: moneyAxis(traceValues(burn), { title: { text: "USD remaining" } }) }));
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
    var ok = rows.map(function (r) { return num(r.cost) - num(r.failed_cost); });
    var failed = rows.map(function (r) { return num(r.failed_cost); });
    draw("chart-failed", rows.some(function (r) { return num(r.cost) > 0; }) ? [
      Object.assign({ type: "bar", x: x, y: ok, name: "successful attempts", text: ok.map(usd), textposition: "none",
        hovertemplate: "%{x}<br>successful attempts: %{text}<extra></extra>", marker: { color: "#3a6ea5" } }, DAY_BAR),
      Object.assign({ type: "bar", x: x, y: failed, name: "failed attempts", text: failed.map(usd), textposition: "none",
        hovertemplate: "%{x}<br>failed attempts: %{text}<extra></extra>", marker: { color: "#c94c4c" } }, DAY_BAR),
    ] : [], layout("Daily spend: successful vs failed attempts", { barmode: "stack", xaxis: dayAxis(x),
      yaxis: moneyAxis(rows.map(function (r) { return r.cost; })) }));
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
