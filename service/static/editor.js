// Lettrine editor: progressive enhancements only; every action also works without JavaScript.
(function () {
  "use strict";

  // Drag and drop reordering of blocks (the ↑/↓ buttons do the same from the keyboard).
  var list = document.getElementById("blocks");
  if (list && window.Sortable && list.querySelector(".handle")) {
    window.Sortable.create(list, {
      handle: ".handle",
      animation: 150,
      onEnd: function () {
        var body = new URLSearchParams();
        body.append("csrf_token", list.dataset.csrf);
        body.append("version", list.dataset.version);
        list.querySelectorAll("li[data-block]").forEach(function (item) {
          body.append("ordre", item.dataset.block);
        });
        fetch(list.dataset.reorderUrl, {
          method: "POST",
          body: body,
          credentials: "same-origin",
          headers: { "X-CSRFToken": list.dataset.csrf },
        }).then(function (response) {
          // Reload either way: the preview, the buttons and the version follow the new order,
          // and a refused change (someone else edited) shows its message.
          return response.json().then(function (data) {
            if (!response.ok && data.error) {
              window.alert(data.error);
            }
            window.location.reload();
          });
        });
      },
    });
  }

  // Rich text: no files inside the text (images go in the image field, files in resources).
  document.addEventListener("trix-file-accept", function (event) {
    event.preventDefault();
  });
})();
