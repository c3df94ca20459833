/* The dashboard's charts (pipeline/outputs/dashboard/charts.py builds their options): each
   element of class "chart" is drawn with the options under its id in the JSON element
   #chart-options. No inline script, nothing fetched: the page's CSP allows 'self' scripts only. */
(function () {
  "use strict";
  var source = document.getElementById("chart-options");
  if (!source || !window.echarts) { return; }
  var options = JSON.parse(source.textContent);
  var drawn = [];
  Array.prototype.forEach.call(document.querySelectorAll(".chart"), function (el) {
    var option = options[el.id];
    if (!option) { return; }
    el.style.height = (parseInt(el.getAttribute("data-height"), 10) || 320) + "px";
    var chart = window.echarts.init(el, null, {renderer: "svg", locale: "ZH"});
    chart.setOption(option);
    drawn.push(chart);
  });
  window.addEventListener("resize", function () {
    drawn.forEach(function (chart) { chart.resize(); });
  });
  document.documentElement.setAttribute("data-charts", String(drawn.length));
})();
