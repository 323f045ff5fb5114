// Live regions: every element with data-live-seconds asks htmx to refresh it (its hx-trigger
// is "cb:poll") at that interval, only while the tab is visible. htmx's own filter syntax
// ("every 5s [document.visibilityState === 'visible']") is evaluated with eval, which the
// Content-Security-Policy forbids; this file is the whole of what it did.
(function () {
  function poll() {
    if (document.visibilityState !== "visible") return;
    const now = Date.now();
    document.querySelectorAll("[data-live-seconds]").forEach((region) => {
      const due = Number(region.dataset.liveDue || 0);
      if (now >= due) {
        region.dataset.liveDue = String(now + Number(region.dataset.liveSeconds) * 1000);
        if (due) htmx.trigger(region, "cb:poll");
      }
    });
  }
  setInterval(poll, 250);
  document.addEventListener("visibilitychange", poll);
})();
