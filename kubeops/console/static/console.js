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
  // A list with data-refresh="<ms>" (Runs) re-reads the same URL in the background and swaps its rows in.
  function refresh(table) {
    var every = parseInt(table.getAttribute("data-refresh"), 10) || 3000;
    window.setInterval(function () {
      if (document.hidden) { return; }
      fetch(window.location.href, {credentials: "same-origin"}).then(function (r) {
        return r.ok ? r.text() : null;
      }).then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("#" + table.id + " tbody");
        var old = table.querySelector("tbody");
        if (fresh && old && fresh.innerHTML !== old.innerHTML) { old.innerHTML = fresh.innerHTML; }
      }).catch(function () { /* the next tick tries again */ });
    }, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var nodes = document.querySelectorAll("[data-live]");
    for (var i = 0; i < nodes.length; i++) { follow(nodes[i]); }
    var tables = document.querySelectorAll("[data-refresh]");
    for (var j = 0; j < tables.length; j++) { refresh(tables[j]); }
  });
})();
