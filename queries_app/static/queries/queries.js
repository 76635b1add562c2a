// Results pages: show the start form's fields for the chosen kind, and follow a live
// query's progress without reloading the page.
(function () {
  "use strict";

  function followKind(form) {
    var kind = form.querySelector("select[name=kind]");
    if (!kind) return;
    function update() {
      form.querySelectorAll(".field[data-kinds]").forEach(function (field) {
        var kinds = field.getAttribute("data-kinds").split(" ");
        field.classList.toggle("is-hidden", kinds.indexOf(kind.value) === -1);
      });
      form.querySelectorAll(".used-by").forEach(function (hint) { hint.hidden = true; });
    }
    kind.addEventListener("change", update);
    update();
  }

  function replaceFrom(doc, id) {
    var fresh = doc.getElementById(id);
    var current = document.getElementById(id);
    if (fresh && current) current.innerHTML = fresh.innerHTML;
  }

  // Once the query has ended, its results are fetched and swapped in (status panel too).
  function loadResults() {
    return fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        replaceFrom(doc, "query-status");
        replaceFrom(doc, "results");
        document.getElementById("query-status").removeAttribute("data-progress-url");
      })
      .catch(function () { window.location.reload(); });
  }

  // A step stored its results while the run goes on: show them now, keep following.
  function refreshResults() {
    return fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        replaceFrom(new DOMParser().parseFromString(html, "text/html"), "results");
      })
      .catch(function () { /* the next step tries again */ });
  }

  function followProgress(panel) {
    var url = panel.getAttribute("data-progress-url");
    var interval = parseInt(panel.getAttribute("data-poll-ms"), 10) || 2000;
    var delay = interval;
    var timer = null;
    var lastHtml = null;
    var lastNews = null;
    // The results on the page are those of this step (see the progress endpoint).
    var lastVersion = panel.getAttribute("data-results-version");
    var announcer = document.getElementById("progress-announcer");

    function schedule() {
      clearTimeout(timer);
      if (!document.hidden) timer = setTimeout(poll, delay);
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          // A login page or a 404 means the session ended or the query is gone: stop.
          if (response.redirected || response.status === 404 || response.status === 403) return null;
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          if (!data) return;
          delay = interval;
          if (data.status_html !== lastHtml) {
            panel.innerHTML = data.status_html;
            lastHtml = data.status_html;
          }
          // Announce what changed in words, not every tick of the duration.
          var news = data.status_label + (data.progress_text ? ": " + data.progress_text : "");
          if (announcer && news !== lastNews) {
            if (lastNews !== null) announcer.textContent = news;
            lastNews = news;
          }
          if (data.reload_results) {
            loadResults();
          } else {
            if (data.results_version !== lastVersion) refreshResults();
            lastVersion = data.results_version;
            schedule();
          }
        })
        .catch(function () {
          // The server may be restarting: try again, less often.
          delay = Math.min(delay * 2, 30000);
          schedule();
        });
    }

    document.addEventListener("visibilitychange", function () {
      clearTimeout(timer);
      if (!document.hidden && panel.hasAttribute("data-progress-url")) poll();
    });
    schedule();
  }

  // Leave filters that are not set out of the address, so that it stays readable. Listened
  // for on the document: the filter form may arrive later, with the results.
  document.addEventListener("submit", function (event) {
    if (event.target.id !== "container-filters") return;
    Array.prototype.forEach.call(event.target.elements, function (field) {
      if (field.name && field.value === "") field.disabled = true;
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("start-form");
    if (form) followKind(form);
    var panel = document.getElementById("query-status");
    if (panel && panel.hasAttribute("data-progress-url")) followProgress(panel);
  });
})();
