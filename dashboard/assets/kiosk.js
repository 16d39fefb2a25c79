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

/* 下一画面 N 秒: the wall screen turns its view every refresh; a countdown says it is alive (the tick's time is set
   by a clientside callback on the refresh interval, dashboard/app.py). Only where the page has the element. */
(function () {
  window.setInterval(function () {
    const el = document.getElementById("next-view");
    if (!el) { return; }
    const seconds = parseInt(el.getAttribute("data-seconds"), 10) || 60;
    const start = window._onemapTick || window._onemapStart || (window._onemapStart = Date.now());
    const left = Math.max(0, seconds - Math.floor((Date.now() - start) / 1000));
    el.textContent = "下一画面 " + left + " 秒";
  }, 1000);
})();
