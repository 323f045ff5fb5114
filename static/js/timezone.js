// Fills every <input data-browser-time-zone> with this browser's IANA time zone, so the
// dashboard can show days and hours in it (see the login and settings forms).
document.querySelectorAll("input[data-browser-time-zone]").forEach((input) => {
  try {
    input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    input.value = "";
  }
});
