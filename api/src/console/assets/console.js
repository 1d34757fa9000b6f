// Keeps the console's live parts current: when the server says something
// changed, fetch this page again and swap in each [data-live] element.
(function () {
  "use strict";
  var state = document.getElementById("live-state");
  var live = document.querySelectorAll("[data-live]");
  if (!state || !window.EventSource) {
    return;
  }
  var busy = false;
  var again = false;

  function show(text, on) {
    state.textContent = text;
    document.body.setAttribute("data-live", on ? "on" : "off");
  }

  function refresh() {
    if (!live.length) {
      return;
    }
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        live.forEach(function (element) {
          var replacement = fresh.getElementById(element.id);
          if (replacement) {
            element.innerHTML = replacement.innerHTML;
          }
        });
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {
        show("Not live: reload the page", false);
      })
      .finally(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var events = new EventSource("/console/events");
  events.addEventListener("ready", function () {
    show("Live", true);
    refresh();
  });
  events.addEventListener("change", refresh);
  events.onerror = function () {
    show("Reconnecting…", false);
  };
  // Durations ("open for 4 min") move on without any change.
  window.setInterval(refresh, 30000);
})();
