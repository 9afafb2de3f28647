// Statistics charts: data comes from the canvas's data-series attribute (no inline script,
// strict CSP); every chart has the same figures in a table next to it.
(function () {
  "use strict";
  var colours = ["#1d4f91", "#c2410c", "#8a94a6", "#2e7d32"];
  function draw(canvas) {
    var series = JSON.parse(canvas.getAttribute("data-series"));
    series.datasets.forEach(function (dataset, index) {
      dataset.borderColor = colours[index % colours.length];
      dataset.backgroundColor = colours[index % colours.length];
      dataset.tension = 0.2;
      dataset.spanGaps = true;
      if (index === 2) { dataset.borderDash = [4, 4]; }
    });
    var chart = new window.Chart(canvas, {
      type: canvas.getAttribute("data-chart") || "line",
      data: series,
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true } }
      }
    });
    canvas.setAttribute("data-rendered", String(chart.data.datasets.length));
  }
  document.querySelectorAll("canvas[data-series]").forEach(draw);
})();
