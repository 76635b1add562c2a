// The board: on a narrow screen the filter form folds behind one button (open while filters
// are set, so what is applied stays in view).
(function () {
  "use strict";

  function foldFilters(form, button) {
    var set = Array.prototype.filter.call(form.elements, function (field) {
      return field.name && field.name !== "sort" && field.type !== "hidden" && field.value !== "";
    }).length;
    var label = button.querySelector(".filters-count");
    if (label) label.textContent = set ? " (" + set + " set)" : "";
    function show(open) {
      form.classList.toggle("is-folded", !open);
      button.setAttribute("aria-expanded", open ? "true" : "false");
    }
    button.addEventListener("click", function () {
      show(form.classList.contains("is-folded"));
    });
    show(false);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("board-filters");
    var button = document.getElementById("filters-toggle");
    if (form && button) foldFilters(form, button);
  });
})();
