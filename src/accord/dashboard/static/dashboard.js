// The dashboard's only script (no inline script: the CSP forbids it).
// Draws each plot from its inert JSON block; on the page of a running run, polls
// the live endpoint, redraws progress and curves, and reloads the page when the
// set of plots changes or the run ends (new sections appear then).
(function () {
  "use strict";
  var config = { displaylogo: false, responsive: true };

  function draw(id, figure) {
    if (window.Plotly && document.getElementById(id)) {
      window.Plotly.react(id, figure.data, figure.layout, config);
    }
  }

  document
    .querySelectorAll('script[type="application/json"][data-plot]')
    .forEach(function (block) {
      draw(block.getAttribute("data-plot"), JSON.parse(block.textContent));
    });

  var root = document.querySelector("[data-live]");
  if (!root) {
    return;
  }
  var url = root.getAttribute("data-live");
  var interval = Number(root.getAttribute("data-interval")) || 2000;
  var recorded = root.getAttribute("data-recorded");

  function text(id, value) {
    var element = document.getElementById(id);
    if (element) {
      element.textContent = String(value);
    }
  }

  function shownPlots() {
    return Array.prototype.map
      .call(document.querySelectorAll(".plot[id]"), function (e) {
        return e.id;
      })
      .sort()
      .join(" ");
  }

  function update(live) {
    text("progress-status", live.status);
    text("progress-rounds", live.rounds_completed);
    text("progress-failed", live.rounds_failed);
    var bar = document.getElementById("progress-bar");
    if (bar) {
      bar.value = live.rounds_completed;
    }
    var last = live.last_round;
    if (last) {
      text(
        "progress-last",
        "last round " + last.number + ": " + last.status + ", " + last.accepted +
          "/" + last.selected + " updates accepted"
      );
    }
    var ids = Object.keys(live.figures);
    var changed = ids.slice().sort().join(" ") !== shownPlots();
    // A new plot (or a run that ended) needs the page rendered again; only once
    // per new round, so a page never reloads in a loop.
    if (
      live.status !== "running" ||
      (changed && String(live.rounds_recorded) !== recorded)
    ) {
      window.location.reload();
      return false;
    }
    ids.forEach(function (id) {
      draw(id, live.figures[id]);
    });
    root.setAttribute("data-updated", String(live.rounds_recorded));
    return true;
  }

  function poll() {
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (live) {
        if (update(live)) {
          window.setTimeout(poll, interval);
        }
      })
      .catch(function () {
        window.setTimeout(poll, interval * 2);
      });
  }

  window.setTimeout(poll, interval);
})();
