/* The screen's size, for the wall screen's server: plotly draws the map's and the daily chart's type in pixels
   of its own, so the server sizes them to the screen (dashboard/app.py _kiosk_scale), as style.css sizes the
   page's type (--u). Assets run before the Dash renderer starts: the first callback already carries it. */
(function () {
  function report() {
    document.cookie = "onemap_screen=" + window.innerWidth + "x" + window.innerHeight + "; path=/; SameSite=Strict";
  }
  report();
  window.addEventListener("resize", report);
})();
