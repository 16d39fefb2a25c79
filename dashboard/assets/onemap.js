/* Client-side helpers of the map page (dash clientside callbacks). */

/* plotly rejects a playing animation's promise (with no reason) when the ❚❚ button or a new figure interrupts
   it, and its own play button does not catch it: an interrupted 积案回放 is not an error. */
window.addEventListener("unhandledrejection", function (e) {
  if (e.reason === undefined && Date.now() - (window._onemapInterruptedAt || 0) < 2000) { e.preventDefault(); }
});
/* Outline gd._onemapCell (see highlightCell), unless it is outlined already or no longer drawn. */
function outlineCell(gd) {
  // no hex chosen (a change cleared the list): the server's new figure, on its way, has no outline to remove
  if (!gd.data || !window.Plotly || !gd._onemapCell) { return; }
  if (Date.now() - (gd._onemapOutlining || 0) < 3000) { setTimeout(function () { outlineCell(gd); }, 300); return; }
  const cell = gd._onemapCell;
  const old = gd.data.findIndex(function (t) { return t.name === "selected"; });
  if (old >= 0 && gd.data[old].locations[0] === cell) { return; }
  let feature = null;
  gd.data.forEach(function (t) {
    if (!feature && t.type === "choroplethmap" && t.name !== "selected" && t.geojson && t.geojson.features) {
      feature = t.geojson.features.find(function (f) { return f.id === cell; }) || null;
    }
  });
  if (old < 0 && !feature) { return; }
  gd._onemapOutlining = Date.now();  // a redraw of the server's can leave the promise pending: not for long
  Promise.resolve(old >= 0 ? window.Plotly.deleteTraces(gd, old) : null).then(function () {
    return feature && window.Plotly.addTraces(gd, {
      type: "choroplethmap", name: "selected", geojson: {type: "FeatureCollection", features: [feature]},
      locations: [cell], z: [1], featureidkey: "id", showscale: false, showlegend: false, hoverinfo: "skip",
      colorscale: [[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]], marker: {line: {width: 3.5, color: "#ffffff"}}
    });
  }).catch(function () {}).then(function () { gd._onemapOutlining = 0; });
}

window.dash_clientside = Object.assign({}, window.dash_clientside, {
  onemap: {
    /* Fit the map to the viewer's area at whatever size the screen gives the map (a 4K wall screen as well as a
       laptop): the figure carries the area's [west, south, east, north] in layout.meta.fit. Every new figure
       brings the server's first-frame zoom (or plotly's last view) back, so the fit is applied again after each redraw, until the user
       moves the map themselves; a new area (drill-down) fits again whatever the user did before. */
    /* Any change of the map's inputs (layer, hex size, filters, area) stops a playing 积案回放 at once: its
       queued frames would otherwise go on writing the old layer's counts into the new figure's hexes. */
    stopPlayback: function () {
      const gd = document.querySelector("#map .js-plotly-plot");
      const queue = gd && gd._transitionData && gd._transitionData._frameQueue;
      if (queue && queue.length && window.Plotly) {
        window._onemapInterruptedAt = Date.now();
        window.Plotly.animate(gd, [], {mode: "immediate"}).catch(function () {});
      }
      return window.dash_clientside.no_update;
    },
    /* The hex whose events the side panel lists is outlined on the map (a trace of its own, drawn over the
       others, that takes no hover or click). A new figure from the server drops it: plotly's afterplot puts it
       back while the hex is still drawn. */
    highlightCell: function (click) {
      const gd = document.querySelector("#map .js-plotly-plot");
      if (!gd || !gd.on) { return window.dash_clientside.no_update; }
      gd._onemapCell = click && click.points && click.points[0] && click.points[0].location;
      if (!gd._onemapOutlined) {
        gd._onemapOutlined = true;
        gd.on("plotly_afterplot", function () { outlineCell(gd); });
      }
      outlineCell(gd);
      return window.dash_clientside.no_update;
    },
    fitMap: function (figure) {
      const fitTo = figure && figure.layout && figure.layout.meta && figure.layout.meta.fit;
      const padding = (figure && figure.layout && figure.layout.meta && figure.layout.meta.pad) || 24;  // px, or per side
      if (!fitTo) { return window.dash_clientside.no_update; }
      const key = fitTo.join(",") + JSON.stringify(padding);  // 积案回放 keeps its area below the slider: a new fit
      // the later fits below belong to this figure only: a newer figure (back from a town to the county within
      // 2.5 s) must not be fitted again to the town by this one's pending timeouts
      const generation = (window._onemapFitGeneration = (window._onemapFitGeneration || 0) + 1);
      let tries = 0;
      const fit = function () {
        if (generation !== window._onemapFitGeneration) { return; }
        const gd = document.querySelector("#map .js-plotly-plot");
        const sub = gd && gd._fullLayout && gd._fullLayout.map && gd._fullLayout.map._subplot;
        if (!sub || !sub.map || !sub.map.isStyleLoaded()) { if (tries++ < 150) { setTimeout(fit, 100); } return; }
        if (gd._onemapFit !== key) { gd._onemapFit = key; gd._onemapMoved = false; }
        gd._onemapBounds = [[fitTo[0], fitTo[1]], [fitTo[2], fitTo[3]]];
        gd._onemapPad = padding;  // read at each fit: the moveend listener below is added once, with the first call
        const refit = function () {
          sub.map.fitBounds(gd._onemapBounds, {padding: gd._onemapPad, animate: false},
                            {originalEvent: true, onemapFit: true});
        };
        if (!gd._onemapPlayback) {  // the ❚❚ button interrupts the animation too (see unhandledrejection above)
          gd._onemapPlayback = true;
          gd.on("plotly_animationinterrupted", function () { window._onemapInterruptedAt = Date.now(); });
        }
        if (!sub.map._onemapWatched) {
          sub.map._onemapWatched = true;
          sub.map.on("moveend", function (e) {
            if (e.originalEvent && !e.onemapFit) { gd._onemapMoved = true; }  // the user's move: keep their view
            else if (!e.originalEvent && !gd._onemapMoved) { refit(); }  // plotly put a view back: fit again
          });
        }
        if (!gd._onemapMoved) { refit(); }
      };
      // plotly redraws after this callback, and puts back its last view (uirevision): fit again as it settles
      fit();
      [300, 800, 1500, 2500].forEach(function (ms) { setTimeout(function () { tries = 0; fit(); }, ms); });
      return window.dash_clientside.no_update;
    }
  }
});
