// Live pages: while the page says something is running (an element with data-live-url), fetch
// that address now and then and swap in the fresh content of each [data-live-region] (by id):
// new data merged into the page, no reload; scroll position, open forms and focus elsewhere stay.
(function () {
  "use strict";

  function follow(url, interval) {
    var delay = interval;
    var timer = null;

    function schedule() {
      clearTimeout(timer);
      if (!document.hidden) timer = setTimeout(poll, delay);
    }

    function poll() {
      fetch(url, { credentials: "same-origin" })
        .then(function (response) {
          // A login page or a refusal means the session ended: stop.
          if (response.redirected || response.status === 403 || response.status === 404) return null;
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          if (html === null) return;
          delay = interval;
          var doc = new DOMParser().parseFromString(html, "text/html");
          document.querySelectorAll("[data-live-region]").forEach(function (region) {
            var fresh = doc.getElementById(region.id);
            if (fresh && fresh.innerHTML !== region.innerHTML) region.innerHTML = fresh.innerHTML;
          });
          if (doc.querySelector("[data-live-url]")) {
            schedule();
          } else {
            document.querySelectorAll("[data-live-url]").forEach(function (marker) {
              marker.removeAttribute("data-live-url");
            });
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
      if (!document.hidden && document.querySelector("[data-live-url]")) poll();
    });
    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var marker = document.querySelector("[data-live-url]");
    if (!marker) return;
    var interval = parseInt(marker.getAttribute("data-poll-ms"), 10) || 3000;
    follow(marker.getAttribute("data-live-url"), interval);
  });
})();
