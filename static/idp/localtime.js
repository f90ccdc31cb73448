// <time datetime="..." data-local> shown in the reader's own time zone and language (the page
// says UTC without script).
"use strict";
(function () {
  var lang = document.documentElement.lang || undefined;
  var format = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
  document.querySelectorAll("time[data-local]").forEach(function (element) {
    var when = new Date(element.getAttribute("datetime"));
    if (!isNaN(when.getTime())) element.textContent = format.format(when);
  });
})();
