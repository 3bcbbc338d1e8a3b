// Live tail of the audit log: every 2 s, ask for the rows after the newest one shown
// (same filters, our own origin) and put them on top. No library; off unless ticked.
(function () {
  "use strict";
  var box = document.getElementById("live");
  var status = document.getElementById("tail-status");
  var body = document.querySelector("#audit-events tbody");
  if (!box || !body) return;
  var newest = Number(box.dataset.newest || 0);
  var timer = null;

  function poll() {
    var query = new URLSearchParams(window.location.search);
    query.delete("before");
    query.set("after", String(newest));
    fetch("/console/audit/rows?" + query.toString(), { credentials: "same-origin" })
      .then(function (answer) {
        if (answer.redirected || !answer.ok) throw new Error("signed out");
        return answer.text();
      })
      .then(function (html) {
        var rows = document.createElement("tbody");
        rows.innerHTML = html;  // our own server-rendered, escaped rows
        var added = rows.querySelectorAll("tr[data-id]");
        if (!added.length) return;
        var empty = body.querySelector("tr.empty");
        if (empty) empty.remove();
        for (var i = added.length - 1; i >= 0; i--) body.insertBefore(added[i], body.firstChild);
        newest = Math.max(newest, Number(added[0].dataset.id));
        status.textContent = added.length + " new event" + (added.length > 1 ? "s" : "");
      })
      .catch(function () {
        stop();
        status.textContent = "Live tail stopped: sign in again.";
      });
  }

  function stop() {
    if (timer) window.clearInterval(timer);
    timer = null;
    box.checked = false;
  }

  box.addEventListener("change", function () {
    if (box.checked) {
      status.textContent = "Live";
      poll();
      timer = window.setInterval(poll, 2000);
    } else {
      stop();
      status.textContent = "";
    }
  });
})();
