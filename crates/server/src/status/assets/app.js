// netvantage status page: a little progressive enhancement. Everything works without it; with
// it, times read in the viewer's own time zone.
"use strict";
document.documentElement.dataset.js = "on";
document.addEventListener("DOMContentLoaded", function () {
  var format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) {
      el.title = el.textContent;
      el.textContent = format.format(at);
    }
  });
});
