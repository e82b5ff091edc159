// Upload progress for CSV imports: htmx reports the request's upload progress on the form.
document.addEventListener("htmx:xhr:progress", function (evt) {
  var form = evt.target.closest("form[data-upload-progress]");
  if (!form || !evt.detail.lengthComputable) return;
  var bar = document.getElementById(form.getAttribute("data-upload-progress"));
  if (bar) bar.value = Math.round((evt.detail.loaded / evt.detail.total) * 100);
});
