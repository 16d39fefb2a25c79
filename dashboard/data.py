"""What the pages read: a cached handle on the published warehouse plus the static layers."""
from __future__ import annotations

import functools

from onemap import queries
from onemap.settings import Settings
from onemap.warehouse import PublishedWarehouse


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

    @functools.cached_property
    def center(self) -> dict:
        labels = self.town_labels
        if not len(labels):
            return {"lon": 115.4, "lat": 22.8}
        return {"lon": float(labels["lng"].mean()), "lat": float(labels["lat"].mean())}
