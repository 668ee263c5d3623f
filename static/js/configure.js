// The Configure page's source table: "Select all / none", a count of the ticked sources, and
// one Tab stop per row (its checkbox): inside a row the arrow keys move between its controls,
// and up/down to the same control of the rows around it (the ARIA grid's roving tabindex).
// Without this script every control is a Tab stop, as plain HTML has it.
(function () {
  "use strict";

  var CONTROLS = "input, button, a[href], select";

  function rows() {
    var body = document.getElementById("source-rows");
    return body ? Array.prototype.slice.call(body.rows) : [];
  }

  function controls(row) {
    return Array.prototype.slice.call(row.querySelectorAll(CONTROLS));
  }

  function boxes() {
    return Array.prototype.slice.call(
      document.querySelectorAll('#source-rows input[type="checkbox"][name="source"]')
    );
  }

  function updateCount() {
    var all = boxes();
    var ticked = all.filter(function (box) { return box.checked; }).length;
    var count = document.querySelector('[data-role="selected-count"]');
    if (count) count.textContent = ticked + " of " + all.length + " selected";
  }

  function setUp() {
    rows().forEach(function (row) {
      controls(row).forEach(function (control, index) {
        control.tabIndex = index === 0 ? 0 : -1;
      });
    });
    var bar = document.querySelector('[data-role="select-all"]');
    if (bar) bar.hidden = false;
    updateCount();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-select]");
    if (!button) return;
    var tick = button.dataset.select === "all";
    boxes().forEach(function (box) { box.checked = tick; });
    updateCount();
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches('#source-rows input[name="source"]')) {
      updateCount();
    }
  });

  document.addEventListener("keydown", function (event) {
    var row = event.target.closest && event.target.closest("#source-rows tr");
    if (!row || event.altKey || event.ctrlKey || event.metaKey) return;
    var own = controls(row);
    var index = own.indexOf(event.target);
    if (index < 0) return;
    var target = null;
    if (event.key === "ArrowRight") target = own[index + 1];
    else if (event.key === "ArrowLeft") target = own[index - 1];
    else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      var all = rows();
      var next = all[all.indexOf(row) + (event.key === "ArrowDown" ? 1 : -1)];
      if (next) {
        var theirs = controls(next);
        target = theirs[Math.min(index, theirs.length - 1)];
      }
    }
    if (!target) return;
    event.preventDefault();
    // The control reached becomes its row's one Tab stop (a row left keeps its own).
    controls(target.closest("tr")).forEach(function (control) { control.tabIndex = -1; });
    target.tabIndex = 0;
    target.focus();
  });

  document.addEventListener("DOMContentLoaded", setUp);
  // Rows come and go over htmx (add, toggle, delete).
  document.addEventListener("htmx:afterSettle", setUp);
})();
