// The widget manager (vendor/html-manager/embed-amd.js) finds its bundled icon fonts
// relative to the URL of its AMD modules, which require.js would otherwise place next to
// the page. Map those modules to the vendored folder so the fonts load from the book.
(function () {
  var staticDir = document.currentScript.src.replace(/[^/]*$/, "");
  var vendored = staticDir + "vendor/html-manager";
  require.config({paths: {"@jupyter-widgets": vendored,
                          "@jupyter-widgets/html-manager/dist": vendored}});
})();
