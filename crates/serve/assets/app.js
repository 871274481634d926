// OpenSOC console: keyboard navigation in the alert queue, row clicks, and a refresh
// (through the API) while entries wait for the model. No inline script (the CSP forbids it).
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.alert-row"));
  var current = -1;

  function select(i) {
    if (!rows.length) return;
    i = Math.max(0, Math.min(rows.length - 1, i));
    if (current >= 0) rows[current].classList.remove("selected");
    current = i;
    rows[i].classList.add("selected");
    rows[i].focus({ preventScroll: true });
    rows[i].scrollIntoView({ block: "nearest" });
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA";
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.key === "j" || e.key === "ArrowDown") { select(current + 1); e.preventDefault(); }
    else if (e.key === "k" || e.key === "ArrowUp") { select(current - 1); e.preventDefault(); }
    else if (e.key === "Enter" && current >= 0) { window.location.href = rows[current].dataset.href; }
    else if (e.key === "/") {
      var search = document.getElementById("search");
      if (search) { search.focus(); e.preventDefault(); }
    }
  });

  rows.forEach(function (row, i) {
    row.addEventListener("click", function (e) {
      if (e.target.tagName === "A") return;
      window.location.href = row.dataset.href;
    });
    row.addEventListener("focus", function () { if (current !== i) select(i); });
  });

  // Entries still waiting for the model: ask the API how many are left, and reload when
  // that changes, unless the analyst is in the middle of something.
  var counts = document.getElementById("counts");
  if (counts && Number(counts.dataset.queued) > 0) {
    var shown = Number(counts.dataset.queued);
    var poll = window.setInterval(function () {
      fetch("/api/v1/stats", { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (stats) {
          if (!stats || stats.queued === shown) return;
          if (typing(document.activeElement) || current >= 0) return;
          window.clearInterval(poll);
          window.location.reload();
        })
        .catch(function () {});
    }, 1500);
  }
})();
