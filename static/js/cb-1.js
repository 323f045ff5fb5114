/* Clickboard page-view tracker, version 1. Embed with
 *   <script defer src="https://YOUR-CLICKBOARD/static/js/cb-1.js" data-site="KEY"></script>
 * After the page has loaded, it sends one beacon: the page's URL (without its query), its referrer, the server's
 * response time (requestStart to responseStart) and the full load time (to loadEventEnd),
 * from the Navigation Timing API. No cookies, no storage, nothing else about the visitor;
 * nothing at all when the browser asks not to be tracked (Do Not Track, Global Privacy Control).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var key = script && script.getAttribute("data-site");
  if (!key || navigator.doNotTrack === "1" || navigator.globalPrivacyControl === true) return;
  var endpoint = new URL("/collect/" + encodeURIComponent(key), script.src).href;

  function send() {
    var timing = performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
    if (!timing || timing.loadEventEnd <= 0) return;
    var body = JSON.stringify({
      u: location.origin + location.pathname,  // no query or fragment: they can carry tokens
      r: document.referrer || null,
      s: Math.max(0, Math.round(timing.responseStart - timing.requestStart)),
      l: Math.max(0, Math.round(timing.loadEventEnd - timing.startTime))
    });
    // sendBeacon sends text/plain: a simple request, no CORS preflight. fetch is the fallback.
    if (navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return;
    if (window.fetch) fetch(endpoint, { method: "POST", body: body, keepalive: true, credentials: "omit" });
  }

  // loadEventEnd is set once every load handler has run: measure just after.
  if (document.readyState === "complete") setTimeout(send, 0);
  else window.addEventListener("load", function () { setTimeout(send, 0); });
})();
