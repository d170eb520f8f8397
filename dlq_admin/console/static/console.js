/*! payproc console.js 1.0.0 | Apache-2.0 (part of payproc) | no dependencies
 *
 * Progressive enhancement only; every page works without it.
 * - [data-refresh-url]: fetch that JSON every body[data-refresh-ms] ms and write each
 *   {"counts": {name: text}} into the elements [data-count=name] (textContent only, never
 *   HTML), and {"values": {name: number}} into <progress>/<meter> [data-value=name].
 *   {"reload": true} reloads the page (a job changed state, so its buttons change).
 */
(function () {
  "use strict";
  var every = parseInt(document.body.getAttribute("data-refresh-ms"), 10) || 5000;
  function apply(root, data) {
    var counts = data.counts || {};
    Object.keys(counts).forEach(function (name) {
      root.querySelectorAll('[data-count="' + name + '"]').forEach(function (el) {
        if (el.textContent !== counts[name]) { el.textContent = counts[name]; }
      });
    });
    var values = data.values || {};
    Object.keys(values).forEach(function (name) {
      root.querySelectorAll('[data-value="' + name + '"]').forEach(function (el) {
        el.value = values[name];
      });
    });
    if (data.reload) { window.location.reload(); }
  }
  document.querySelectorAll("[data-refresh-url]").forEach(function (root) {
    var url = root.getAttribute("data-refresh-url");
    var busy = false;
    window.setInterval(function () {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data) { apply(document, data); } })
        .catch(function () { /* keep the last figures */ })
        .then(function () { busy = false; });
    }, every);
  });
})();
