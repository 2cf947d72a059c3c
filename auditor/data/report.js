// Sort and filter the report's tables in place. Data comes from the DOM (escaped by the
// writer); this script never builds HTML from strings.
(function () {
  "use strict";
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };

  function sortValue(row, index, type) {
    var cell = row.cells[index];
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
    if (type === "num") {
      var n = parseFloat(raw);
      return isNaN(n) ? -Infinity : n;
    }
    return raw.trim().toLowerCase();
  }

  each(document.querySelectorAll("table.sortable"), function (table) {
    var body = table.tBodies[0];
    var heads = table.tHead.rows[0].cells;
    each(heads, function (th, index) {
      th.tabIndex = 0;
      th.setAttribute("aria-sort", "none");
      var sort = function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        each(heads, function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var type = th.getAttribute("data-type") || "text";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = sortValue(a, index, type), y = sortValue(b, index, type);
          return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
        });
        each(rows, function (row) { body.appendChild(row); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
    table.setAttribute("data-sortable", "ready");
  });

  each(document.querySelectorAll("form.filters"), function (form) {
    var table = document.getElementById(form.getAttribute("data-table"));
    var count = form.querySelector("output");
    if (!table) { return; }
    var rows = table.tBodies[0].rows;
    var apply = function () {
      var query = form.elements.q.value.trim().toLowerCase();
      var kind = form.elements.kind.value, severity = form.elements.severity.value;
      var shown = 0;
      each(rows, function (row) {
        var ok = (!query || row.textContent.toLowerCase().indexOf(query) !== -1) &&
          (!kind || row.getAttribute("data-kind") === kind) &&
          (!severity || row.getAttribute("data-severity") === severity);
        row.hidden = !ok;
        if (ok) { shown += 1; }
      });
      count.textContent = "Showing " + shown + " of " + rows.length + " findings";
    };
    form.addEventListener("input", apply);
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    apply();
    table.setAttribute("data-filter", "ready");
  });

  // "copy" buttons put a finding's Wireshark display filter on the clipboard
  var copyFallback = function (text) {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (ignore) { /* nothing more to try */ }
    document.body.removeChild(area);
  };
  each(document.querySelectorAll("button.copy"), function (button) {
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      var done = function () { button.textContent = "copied"; };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { copyFallback(text); done(); });
      } else {
        copyFallback(text);
        done();
      }
    });
  });

  each(document.querySelectorAll("img.plot"), function (img) {
    img.addEventListener("click", function () { img.classList.toggle("full"); });
  });
  document.documentElement.setAttribute("data-report", "ready");
}());
