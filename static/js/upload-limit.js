// Refuses a file larger than the upload limit before it is sent: the browser knows its size,
// so a 300 MB file is not uploaded only to be refused. The limit and the words come from the
// file input's data-max-bytes and data-too-big (the server says the same if it gets one
// anyway). Both ways a file leaves the page are stopped: htmx's check as soon as the file is
// chosen (or the kind changes), and the form's submit.
(function () {
  "use strict";

  function oversized(form) {
    if (!form) return null;
    var inputs = form.querySelectorAll("input[type=file][data-max-bytes]");
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      var max = parseInt(input.dataset.maxBytes, 10);
      var files = input.files || [];
      for (var j = 0; j < files.length; j++) {
        if (max > 0 && files[j].size > max) return { input: input, file: files[j] };
      }
    }
    return null;
  }

  function show(found) {
    var message = "'" + found.file.name + "' " + found.input.dataset.tooBig;
    var box = document.getElementById("upload-check");
    if (!box) return;
    var alert = document.createElement("div");
    alert.className = "msg msg-error";
    alert.setAttribute("role", "alert");
    alert.dataset.role = "file-error";
    var strong = document.createElement("strong");
    strong.textContent = "This file cannot be used:";
    alert.appendChild(strong);
    alert.appendChild(document.createTextNode(" " + message + " Nothing was sent."));
    box.replaceChildren(alert);
    found.input.setAttribute("aria-invalid", "true");
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    var found = oversized(elt && elt.closest ? elt.closest("form") : null);
    if (found) {
      event.preventDefault();
      show(found);
    }
  });

  document.addEventListener("submit", function (event) {
    var found = oversized(event.target);
    if (found) {
      event.preventDefault();
      show(found);
      found.input.focus();
    }
  });

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input && input.matches && input.matches("input[type=file][data-max-bytes]")) {
      if (!oversized(input.form)) input.removeAttribute("aria-invalid");
    }
  });
})();
