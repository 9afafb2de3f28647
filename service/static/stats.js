// Statistics charts: data comes from the canvas's data-series attribute (no inline script,
// strict CSP); every chart has the same figures in a table next to it.
// Numbers follow the page's language (French: « 66,7 % », « 1 234 »); counts get whole
// ticks only (no « 0.5 ouverture »); data-unit="percent" marks a chart of rates.
(function () {
  "use strict";
  var colours = ["#1d4f91", "#c2410c", "#8a94a6", "#2e7d32"];
  var locale = document.documentElement.lang || "fr";
  var decimal = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
  function percent(value) { return decimal.format(value) + "\u00a0%"; }
  function draw(canvas) {
    var series = JSON.parse(canvas.getAttribute("data-series"));
    var isPercent = canvas.getAttribute("data-unit") === "percent";
    series.datasets.forEach(function (dataset, index) {
      dataset.borderColor = colours[index % colours.length];
      dataset.backgroundColor = colours[index % colours.length];
      dataset.tension = 0.2;
      dataset.spanGaps = true;
      if (index === 2) { dataset.borderDash = [4, 4]; }
    });
    var ticks = isPercent ? { callback: percent } : { precision: 0 };
    var tooltip = isPercent ? {
      callbacks: {
        label: function (item) { return item.dataset.label + " : " + percent(item.parsed.y); }
      }
    } : {};
    var chart = new window.Chart(canvas, {
      type: canvas.getAttribute("data-chart") || "line",
      data: series,
      options: {
        locale: locale,
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, ticks: ticks } },
        plugins: { tooltip: tooltip }
      }
    });
    canvas.setAttribute("data-rendered", String(chart.data.datasets.length));
  }
  document.querySelectorAll("canvas[data-series]").forEach(draw);
})();
