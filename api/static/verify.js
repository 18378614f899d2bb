// Drag and drop onto the verification form: the dropped file goes into the file input and the form is
// submitted as if chosen with the file chooser (the page works without this script too).
(function () {
  "use strict";
  var zone = document.getElementById("dropzone");
  var input = document.getElementById("file");
  var form = document.getElementById("verify-form");
  if (!zone || !input || !form) { return; }
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "dragend"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("over");
    var files = event.dataTransfer && event.dataTransfer.files;
    if (!files || files.length === 0) { return; }
    input.files = files;
    zone.querySelector(".dropzone-text").textContent = "正在验证：" + files[0].name;
    form.submit();
  });
  input.addEventListener("change", function () {
    if (input.files && input.files.length) {
      zone.querySelector(".dropzone-text").textContent = "已选择：" + input.files[0].name;
    }
  });
})();
