// Catalogue editor (目录编辑): upload the chosen base image at once and put its asset: name into the entry, put a
// chosen template file into face_template, and re-run the checks with the preview whenever the entry changes.
// Without this script the form does the same in one submission (the server reads both files).
(function () {
  "use strict";
  var form = document.getElementById("entry-form");
  if (!form) { return; }
  var textarea = document.getElementById("entry-document");
  var area = document.getElementById("checks-area");
  var imageInput = document.getElementById("base-image-file");
  var templateInput = document.getElementById("template-file");
  var imageError = document.getElementById("base-image-error");
  var imageStatus = document.getElementById("base-image-status");
  var token = form.querySelector("input[name=csrf_token]").value;
  var timer = null;
  var running = 0;

  function editDocument(change) {
    var doc;
    try { doc = JSON.parse(textarea.value); } catch (e) { return false; }
    if (!doc || typeof doc !== "object") { return false; }
    change(doc);
    textarea.value = JSON.stringify(doc, null, 2);
    return true;
  }

  function check() {
    if (!textarea.value.trim()) { return; }
    var body = new FormData();
    body.append("csrf_token", token);
    body.append("document", textarea.value);
    body.append("action", "check");
    body.append("fragment", "true");
    var ticket = ++running;
    form.setAttribute("aria-busy", "true");
    fetch(form.getAttribute("action"), { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        if (ticket !== running) { return; }
        area.innerHTML = html;
        var invalid = !!area.querySelector("#entry-errors");
        textarea.closest(".field").classList.toggle("has-error", invalid);
        if (invalid) { textarea.setAttribute("aria-invalid", "true"); } else { textarea.removeAttribute("aria-invalid"); }
      })
      .catch(function () { /* the button still submits the form */ })
      .then(function () { if (ticket === running) { form.removeAttribute("aria-busy"); } });
  }

  function later() {
    if (timer) { window.clearTimeout(timer); }
    timer = window.setTimeout(check, 600);
  }

  textarea.addEventListener("input", later);

  imageInput.addEventListener("change", function () {
    var file = imageInput.files && imageInput.files[0];
    if (!file) { return; }
    var body = new FormData();
    body.append("csrf_token", token);
    body.append("file", file);
    imageError.textContent = "";
    imageInput.removeAttribute("aria-invalid");
    imageStatus.textContent = "正在上传底图…";
    fetch(form.getAttribute("data-asset-url"), { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (answer.error) {
          imageStatus.textContent = "";
          imageError.textContent = "底图未通过检查：" + answer.error;
          imageInput.setAttribute("aria-invalid", "true");
          return;
        }
        imageInput.value = "";  // uploaded: the form need not send it again
        imageStatus.textContent = "已上传底图 " + answer.name + "（" + answer.size_mm + " 毫米，" + answer.dpi + " dpi）";
        if (editDocument(function (doc) { doc.base_image = answer.name; })) { check(); }
      })
      .catch(function () { imageStatus.textContent = "上传失败，请重试"; });
  });

  templateInput.addEventListener("change", function () {
    var file = templateInput.files && templateInput.files[0];
    if (!file) { return; }
    file.text().then(function (text) {
      var template;
      try { template = JSON.parse(text); } catch (e) { return; }  // the form submission names the error
      templateInput.value = "";
      if (editDocument(function (doc) { doc.face_template = template; })) { check(); }
    });
  });
})();
