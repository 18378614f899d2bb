// Batch import progress: poll the rows fragment until the job is done (the page also works by reloading).
(function () {
  "use strict";
  var box = document.getElementById("batch");
  if (!box) { return; }
  var url = box.getAttribute("data-rows-url");
  function finished() {
    var line = document.getElementById("progress-line");
    return line && line.getAttribute("data-finished") === "true";
  }
  function poll() {
    if (finished()) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) { box.innerHTML = html; })
      .catch(function () { /* keep polling; a transient error is not the job's state */ })
      .then(function () { if (!finished()) { window.setTimeout(poll, 700); } });
  }
  window.setTimeout(poll, 500);
})();
