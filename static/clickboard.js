// Clickboard's own script, loaded by the layout (deferred), after htmx. Pages work without
// it except for live refreshes; it keeps ARIA state true after htmx swaps, polls live
// regions, asks before destructive forms, fills in the browser's time zone and shows copy
// buttons. Everything here is a file because the Content-Security-Policy allows no inline
// script, no inline event handler and no eval.

// Inline validation swaps a form's error messages (each <p data-field="url" id="url-error">)
// in place: tie each to its field (aria-invalid, aria-describedby), untie fields without one.
document.addEventListener("htmx:afterSettle", (event) => {
  const box = event.detail.target;
  const form = box && box.closest && box.closest("form");
  if (!form || !box.hasAttribute("data-field-errors")) return;
  const messages = new Map([...box.querySelectorAll("[data-field][id]")].map((p) => [p.dataset.field, p.id]));
  form.querySelectorAll("input[name], select[name], textarea[name]").forEach((field) => {
    const errorId = `${field.name}-error`;
    const others = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter((id) => id && id !== errorId);
    if (messages.get(field.name) === errorId) {
      field.setAttribute("aria-invalid", "true");
      others.push(errorId);
    } else {
      field.removeAttribute("aria-invalid");
    }
    if (others.length) field.setAttribute("aria-describedby", others.join(" "));
    else field.removeAttribute("aria-describedby");
  });
});

// On a phone, a table with a header row is shown as stacked rows (clickboard.css, .table.stacks):
// each cell is labelled with its column's header, copied here into data-label.
function labelTableCells(root) {
  root.querySelectorAll("table.table").forEach((table) => {
    const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    if (headers.length < 3) return;
    table.classList.add("stacks");
    table.querySelectorAll("tbody tr").forEach((row) => {
      [...row.cells].forEach((cell, index) => {
        if (cell.colSpan === 1 && headers[index]) cell.dataset.label = headers[index];
      });
    });
  });
}
document.addEventListener("DOMContentLoaded", () => labelTableCells(document));
document.addEventListener("htmx:afterSettle", (event) => labelTableCells(event.detail.target.parentElement || document));

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

// Forms with data-confirm ask before they are sent (a delete, a revoke). An inline onsubmit
// would do the same, but the Content-Security-Policy forbids inline handlers.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Copy buttons: shown only where the Clipboard API exists; the text stays selectable without JS.
document.querySelectorAll("button.copy").forEach((button) => {
  if (!navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await navigator.clipboard.writeText(document.querySelector(button.dataset.copy).textContent.trim());
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
});

// Fills every <input data-browser-time-zone> with this browser's IANA time zone, so the
// dashboard can show days and hours in it (see the login and settings forms).
document.querySelectorAll("input[data-browser-time-zone]").forEach((input) => {
  try {
    input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    input.value = "";
  }
});
