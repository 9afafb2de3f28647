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
        }).catch(function () {
          // Expired session, refused token or no network: nothing was saved, say so.
          window.alert("Le nouvel ordre n'a pas pu être enregistré. La page va être rechargée.");
          window.location.reload();
        });
      },
    });
  }

  // Trix speaks English by default and builds its toolbar before this script runs:
  // translate the toolbar's buttons and link dialog in place.
  var LABELS = {
    bold: "Gras", italic: "Italique", strike: "Barré", href: "Lien", heading1: "Titre",
    quote: "Citation", code: "Code", bullet: "Liste à puces", number: "Liste numérotée",
    decreaseNestingLevel: "Diminuer le retrait", increaseNestingLevel: "Augmenter le retrait",
    undo: "Annuler", redo: "Rétablir", attachFiles: "Joindre des fichiers",
  };
  function localise(toolbar) {
    toolbar.querySelectorAll("[data-trix-attribute], [data-trix-action]").forEach(function (button) {
      var key = button.getAttribute("data-trix-attribute") || button.getAttribute("data-trix-action");
      if (LABELS[key] && button.tagName === "BUTTON") {
        button.title = LABELS[key];
        button.textContent = LABELS[key];
      }
    });
    toolbar.querySelectorAll("input[name=href]").forEach(function (input) {
      input.placeholder = "Adresse complète, commençant par https://";
      input.setAttribute("aria-label", "Adresse du lien dans le texte");
    });
    toolbar.querySelectorAll("input[data-trix-method=setAttribute]").forEach(function (input) {
      input.value = "Valider";
    });
    toolbar.querySelectorAll("input[data-trix-method=removeAttribute]").forEach(function (input) {
      input.value = "Retirer le lien";
    });
  }
  document.querySelectorAll("trix-toolbar").forEach(localise);
  document.addEventListener("trix-initialize", function (event) {
    if (event.target.toolbarElement) {
      localise(event.target.toolbarElement);
    }
  });

  // Rich text: no files inside the text (images go in the image field, files in resources).
  document.addEventListener("trix-file-accept", function (event) {
    event.preventDefault();
  });
})();
