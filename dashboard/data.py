"""What the pages read: a cached handle on the published warehouse plus the static layers."""
from __future__ import annotations

import functools
import math

from onemap import queries
from onemap.settings import Settings
from onemap.warehouse import PublishedWarehouse

COUNTY_ZOOM = 10.3
ZOOM_MARGIN = -0.3  # zoom out a little from the exact fit, so that the area's edge stays in view
MAP_PX = (1100, 600)  # the map's size on a 1600x900 desk screen; larger wall screens show more around it


class DashboardData:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.warehouse = PublishedWarehouse(settings.warehouse_path, settings.timezone)

    def con(self):
        return self.warehouse.connection()

    @functools.cached_property
    def boundaries(self) -> dict[str, dict]:
        con = self.con()
        return {level: queries.area_geojson(con, level) for level in ("county", "town", "grid")}

    @functools.cached_property
    def town_labels(self):
        return queries.area_labels(self.con(), "town")

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one DashboardData per app, kept for the app's life
    def layers(self, scope: queries.Scope | None) -> tuple[dict[str, dict], object]:
        """The map's outlines and labels for a viewer's area: the county's (towns named) for the county; for a
        town or a village, its own outline, its villages (or grids) and their names, and its grids, nothing of
        the areas around it (jurisdiction scoping covers the map's layers too)."""
        if not queries.narrow(scope):
            return self.boundaries, self.town_labels
        return queries.map_layers(self.con(), scope, grids=True)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one DashboardData per app, kept for the app's life
    def view(self, scope: queries.Scope) -> tuple[dict, float]:
        """Map centre and zoom that frame the scope's area (the county's default view for the whole county)."""
        if not queries.narrow(scope):
            return self.center, COUNTY_ZOOM
        minx, miny, maxx, maxy = queries.scope_shape(self.con(), scope).bounds
        # web-mercator zoom at which the bounds fit a map of MAP_PX (512-px tiles; a degree of latitude is
        # ~1/cos(lat) longer than one of longitude on the screen), a little zoomed out so the edge shows
        stretch = 1.0 / math.cos(math.radians((miny + maxy) / 2))
        fit = min(math.log2(MAP_PX[0] * 360.0 / (512.0 * max(maxx - minx, 1e-4))),
                  math.log2(MAP_PX[1] * 360.0 / (512.0 * max((maxy - miny) * stretch, 1e-4))))
        zoom = min(max(fit + ZOOM_MARGIN, COUNTY_ZOOM), 15.0)
        return {"lon": (minx + maxx) / 2, "lat": (miny + maxy) / 2}, zoom

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one DashboardData per app, kept for the app's life
    def bounds(self, scope: queries.Scope | None) -> list[float]:
        """[west, south, east, north] of the viewer's area: the browser fits the map to it (assets/onemap.js) at
        whatever size the screen gives the map (a 4K wall screen as well as a laptop); ``view`` is the first frame
        before that."""
        if queries.narrow(scope):
            box = queries.scope_shape(self.con(), scope).bounds
        else:
            import shapely

            box = shapely.GeometryCollection([shapely.geometry.shape(f["geometry"])
                                              for f in self.boundaries["county"]["features"]]).bounds
        return [round(float(v), 6) for v in box]

    @functools.cached_property
    def basemap(self):
        """The deployment's own tiles (``[map] basemap``; geodata.basemap), None without; a tile set whose
        coverage misses the county is refused (wrong file, or tiles of another datum)."""
        if self.settings.basemap is None:
            return None
        from geodata.basemap import configured

        return configured(self.settings, self.bounds(queries.COUNTY))

    @functools.cached_property
    def center(self) -> dict:
        labels = self.town_labels
        if not len(labels):
            return {"lon": 115.4, "lat": 22.8}
        return {"lon": float(labels["lng"].mean()), "lat": float(labels["lat"].mean())}
