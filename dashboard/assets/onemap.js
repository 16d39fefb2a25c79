/* Client-side helpers of the map page (dash clientside callbacks). */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
  onemap: {
    /* Fit the map to the viewer's area once per page, at whatever size the screen gives the map (a 4K wall
       screen as well as a laptop): the figure carries the area's [west, south, east, north] in layout.meta.fit.
       Later figures keep the view (uirevision), so a user's own zoom is not undone by a filter change. */
    fitMap: function (figure) {
      const fitTo = figure && figure.layout && figure.layout.meta && figure.layout.meta.fit;
      if (!fitTo) { return window.dash_clientside.no_update; }
      const key = fitTo.join(",");
      let tries = 0;
      const fit = function () {
        const gd = document.querySelector("#map .js-plotly-plot");
        const sub = gd && gd._fullLayout && gd._fullLayout.map && gd._fullLayout.map._subplot;
        if (!sub || !sub.map || !sub.map.loaded()) { if (tries++ < 150) { setTimeout(fit, 100); } return; }
        if (gd._onemapFit === key) { return; }
        gd._onemapFit = key;
        // as a user's move (originalEvent): plotly records it as a view edit, which uirevision then keeps
        sub.map.fitBounds([[fitTo[0], fitTo[1]], [fitTo[2], fitTo[3]]], {padding: 24, animate: false},
                          {originalEvent: true});
      };
      fit();
      return window.dash_clientside.no_update;
    }
  }
});
