// A button with data-wait="N" (N > 0) stays disabled for N seconds, its remaining seconds shown
// beside its label: the page says when a code may be sent or typed again instead of refusing it.
"use strict";
document.querySelectorAll("button[data-wait]").forEach(function (button) {
  var left = parseInt(button.getAttribute("data-wait"), 10);
  if (!(left > 0)) return;
  var label = button.textContent;
  var tick = function () {
    if (left <= 0) {
      button.disabled = false;
      button.textContent = label;
      return;
    }
    button.disabled = true;
    button.textContent = label + " (" + left + ")";
    left -= 1;
    window.setTimeout(tick, 1000);
  };
  tick();
});
