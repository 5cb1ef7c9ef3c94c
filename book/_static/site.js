// Behaviour the theme leaves broken or missing; plain DOM code, no dependencies.
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  // Sidebar buttons.  pydata-sphinx-theme (>= 0.17) and sphinx-book-theme each render a
  // .primary-toggle / .secondary-toggle button, and both themes wire only the first one in the
  // page: the hidden header button.  The visible one in the article header did nothing, so phone
  // readers could not reach the chapter list.  Each visible button hands its click to the wired
  // one: there sphinx-book-theme collapses the sidebar on wide screens, and pydata-sphinx-theme
  // opens the sidebar as a dialog on narrow ones.
  function wireSidebarButtons() {
    [".primary-toggle", ".secondary-toggle"].forEach(function (selector) {
      var buttons = document.querySelectorAll(selector);
      var wired = buttons[0];
      Array.prototype.slice.call(buttons, 1).forEach(function (button) {
        button.addEventListener("click", function (event) {
          event.preventDefault();
          event.stopImmediatePropagation();
          wired.click();
          if (selector === ".primary-toggle") {
            var sidebar = document.getElementById("pst-primary-sidebar");
            button.setAttribute(
              "aria-expanded",
              sidebar && sidebar.classList.contains("pst-sidebar-hidden") ? "false" : "true"
            );
          }
        });
        button.setAttribute(
          "aria-label",
          selector === ".primary-toggle" ? "Chapters (site navigation)" : "Contents of this page"
        );
      });
    });
  }

  // A link inside a dropdown's title (a solution's "Solution to Exercise 1.1") follows the link;
  // sphinx-togglebutton's title handler does not expect a link as the target and throws.
  function letTitleLinksNavigate() {
    document.querySelectorAll(".admonition-title a").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.stopPropagation();
      });
    });
  }

  // Inline formulas wider than their line scroll inside their own box (see site.css) instead of
  // being cut at the edge of the screen.
  function markWideInlineMath() {
    var article = document.querySelector(".bd-article");
    if (!article) return;
    var edge = article.getBoundingClientRect().right;
    article.querySelectorAll('mjx-container[jax="CHTML"]:not([display="true"])').forEach(function (m) {
      // tables and code scroll as a whole (site.css)
      if (m.closest("table, pre, .pst-scrollable-table-container")) return;
      m.classList.remove("math-scroll");
      var block = m.closest("p, li, dd, dt, div, section") || article;
      var right = Math.min(edge, block.getBoundingClientRect().right);
      var box = m.getBoundingClientRect();
      if (box.width > 0 && box.right > right + 1) m.classList.add("math-scroll");
    });
  }

  function whenMathIsTypeset(fn) {
    var tries = 0;
    (function wait() {
      if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
        MathJax.startup.promise.then(fn);
      } else if (tries++ < 100) {
        setTimeout(wait, 100);
      }
    })();
  }

  // Printing in dark mode would give grey text on white: print in light mode.
  var modeBeforePrint = null;
  window.addEventListener("beforeprint", function () {
    modeBeforePrint = document.documentElement.dataset.theme;
    document.documentElement.dataset.theme = "light";
  });
  window.addEventListener("afterprint", function () {
    if (modeBeforePrint) document.documentElement.dataset.theme = modeBeforePrint;
  });

  ready(function () {
    wireSidebarButtons();
    letTitleLinksNavigate();
    if (document.querySelector(".math")) {
      whenMathIsTypeset(markWideInlineMath);
      var timer;
      var later = function () {
        clearTimeout(timer);
        timer = setTimeout(markWideInlineMath, 200);
      };
      window.addEventListener("resize", later);
      // formulas inside a dropdown get their size when it opens
      document.addEventListener("click", function (event) {
        if (event.target.closest && event.target.closest(".admonition-title, .toggle-button, summary")) later();
      });
    }
  });
})();
