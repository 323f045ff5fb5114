// Clickboard's own script, loaded by the layout (deferred). Nothing here is needed
// for a page to work; it only keeps ARIA state true after htmx swaps.

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
