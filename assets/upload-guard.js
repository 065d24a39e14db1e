/* The artifact lab's upload box drops files over its size limit without telling anyone
   (dcc.Upload's max_size). Say so at once, before any bytes are sent. */
(function () {
  function check(files) {
    if (!files || !files.length || !window.dash_clientside || !window.dash_clientside.set_props) return;
    var holder = document.getElementById("lab-upload-limit");  /* the server's limit, rendered into the page */
    var LIMIT = holder ? Number(holder.dataset.bytes) : 5 * 1024 * 1024;
    var file = files[0];
    if (file.size > LIMIT) {
      window.dash_clientside.set_props("lab-upload-message", {
        children: "\u26a0 " + file.name + ": " + (file.size / 1e6).toFixed(1) + " MB is too large (limit " +
          (LIMIT / 1e6).toFixed(0) + " MB)"
      });
    }
  }
  document.addEventListener("change", function (event) {
    if (event.target && event.target.closest && event.target.closest("#lab-upload")) check(event.target.files);
  }, true);
  document.addEventListener("drop", function (event) {
    if (event.target && event.target.closest && event.target.closest("#lab-upload") && event.dataTransfer) {
      check(event.dataTransfer.files);
    }
  }, true);
})();
