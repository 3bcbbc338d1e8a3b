// "Copy" buttons: put the text of the element named by data-copy on the clipboard.
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = document.getElementById(button.dataset.copy).textContent;
      var said = button.parentElement.querySelector(".copied");
      navigator.clipboard.writeText(text).then(
        function () { if (said) said.textContent = "Copied."; },
        function () { if (said) said.textContent = "Could not copy: select the text instead."; }
      );
    });
  });
})();
