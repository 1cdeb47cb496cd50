// kubeops console: progressive enhancement only; every page works without this file. Part of kubeops (Apache-2.0).
// A run page carries data-live="/runs/<id>/events": server-sent events replace its body with the server's fresh
// rendering each time the record changes, and the stream ends when the run does.
(function () {
  "use strict";
  function follow(el) {
    if (!window.EventSource) { return; }
    var source = new EventSource(el.getAttribute("data-live"));
    source.addEventListener("update", function (event) {
      el.innerHTML = event.data;
      el.setAttribute("data-updated", String(Date.now()));
    });
    source.addEventListener("end", function () {
      source.close();
      el.removeAttribute("data-live");
      el.setAttribute("data-ended", "yes");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var nodes = document.querySelectorAll("[data-live]");
    for (var i = 0; i < nodes.length; i++) { follow(nodes[i]); }
  });
})();
