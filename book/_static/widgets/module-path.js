// The widget manager's modules fetch its icon font from the folder RequireJS gives each of them,
// by default the page's own folder, where no font is. Name this folder, which serves the font,
// for all of them: "@jupyter-widgets/base", "/controls", "/html-manager" and ".../dist/libembed-amd".
(function () {
  var here = new URL(".", document.currentScript.src).href.replace(/\/$/, "");
  require.config({paths: {"@jupyter-widgets": here, "@jupyter-widgets/html-manager/dist": here}});
})();
