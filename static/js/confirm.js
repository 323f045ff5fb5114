// Forms with data-confirm ask before they are sent (a delete, a revoke). An inline onsubmit
// would do the same, but the Content-Security-Policy forbids inline handlers.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
