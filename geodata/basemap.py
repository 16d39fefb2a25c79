"""A deployment's own offline basemap: raster tiles from an MBTiles file or a folder of ``{z}/{x}/{y}`` images.

The map draws no basemap by default (nothing at run time leaves 127.0.0.1, and no tiles ship with the product).
A deployment that holds tiles of its county — an intranet 天地图 extract, tiles rendered from its own survey
data — names them in ``[map] basemap``; the server then hands them to the map from 127.0.0.1 (``/basemap/z/x/y``).

Tiles must be in web-mercator (EPSG:3857, the XYZ scheme every tile server uses) of WGS84 / CGCS2000
coordinates, as the data are. Tiles of the GCJ-02 offset (高德, 腾讯) or BD-09 (百度) are refused: the
hexes would sit 100–700 m off their streets. MBTiles keeps rows in the TMS order (y counted from the south);
a folder is read in the XYZ order (y from the north), as tile tools write it.
"""
from __future__ import annotations

import io
import math
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

# the image types a tile may be, by their first bytes (a folder's file suffix and an MBTiles' format may lie)
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"RIFF", "image/webp"))
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
TILE_CRS = ("wgs84", "cgcs2000")  # the data's own datum (CGCS2000 agrees with WGS84 to about a metre)
OFFSET_CRS = ("gcj02", "bd09")


class BasemapError(ValueError):
    """The configured basemap cannot be used; the message names the file and the problem."""


def image_type(data: bytes) -> str | None:
    """The MIME type of a raster tile from its first bytes, None for anything else (vector tiles included)."""
    for magic, mime in SIGNATURES:
        if data.startswith(magic) and (mime != "image/webp" or data[8:12] == b"WEBP"):
            return mime
    return None


@dataclass(frozen=True)
class BasemapInfo:
    min_zoom: int
    max_zoom: int
    attribution: str
    bounds: tuple[float, float, float, float] | None  # west, south, east, north (WGS84), when the file says


class Basemap:
    """Read-only access to one tile set. Thread-safe: each server thread opens its own SQLite connection."""

    def __init__(self, path: Path, crs: str = "wgs84", attribution: str = ""):
        self.path = Path(path)
        crs = crs.strip().lower().replace("-", "")
        if crs in OFFSET_CRS:
            raise BasemapError(
                f"basemap {self.path}: tiles in {crs.upper()} (高德/腾讯/百度 offsets) would put every hex 100–700 m off its "
                "streets; use tiles of WGS84 or CGCS2000 (e.g. 天地图) — [map] basemap_crs")
        if crs not in TILE_CRS:
            raise BasemapError(f"basemap {self.path}: basemap_crs {crs!r} is not one of {', '.join(TILE_CRS)}")
        if not self.path.exists():
            raise BasemapError(f"basemap {self.path}: no such file or folder ([map] basemap)")
        self._local = threading.local()
        if self.path.is_dir():
            self.info = self._folder_info(attribution)
        else:
            self.info = self._mbtiles_info(attribution)

    # -- MBTiles ---------------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            self._local.con = con
        return con

    def _mbtiles_info(self, attribution: str) -> BasemapInfo:
        try:
            db = self._db()
            meta = dict(db.execute("SELECT name, value FROM metadata").fetchall())
            zooms = db.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
            sample = db.execute("SELECT tile_data FROM tiles LIMIT 1").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BasemapError(f"basemap {self.path}: not an MBTiles file ({exc})") from exc
        if zooms[0] is None:
            raise BasemapError(f"basemap {self.path}: the MBTiles file holds no tiles")
        if meta.get("format", "png").lower() == "pbf" or image_type(bytes(sample[0])) is None:
            raise BasemapError(f"basemap {self.path}: its tiles are not PNG, JPEG or WebP images (vector tiles "
                               "need a style and fonts the map does not carry; render them to raster tiles first)")
        return BasemapInfo(int(zooms[0]), int(zooms[1]), attribution or meta.get("attribution", ""),
                           _bounds(meta.get("bounds"), self.path))

    # -- folder ----------------------------------------------------------------------------------------------
    def _folder_info(self, attribution: str) -> BasemapInfo:
        zooms = sorted(int(p.name) for p in self.path.iterdir() if p.is_dir() and p.name.isdigit())
        first = next((f for z in zooms for f in sorted((self.path / str(z)).glob("*/*"))
                      if f.suffix.lower() in SUFFIXES), None)
        if first is None:
            raise BasemapError(f"basemap {self.path}: no tiles found as {{z}}/{{x}}/{{y}}.png|jpg|webp in the folder")
        if image_type(first.read_bytes()[:16]) is None:
            raise BasemapError(f"basemap {self.path}: {first} is not a PNG, JPEG or WebP image")
        return BasemapInfo(zooms[0], zooms[-1], attribution, None)

    def check_covers(self, bounds: tuple[float, float, float, float]) -> Basemap:
        """This tile set, refused if the bounds its file declares miss ``bounds`` (west, south, east, north: the
        county's) — the wrong file, or tiles of another place."""
        covered = self.info.bounds
        west, south, east, north = bounds
        if covered and (covered[2] < west or covered[0] > east or covered[3] < south or covered[1] > north):
            raise BasemapError(f"basemap {self.path}: its tiles cover {covered} (west, south, east, north), not the "
                               f"county ({west:.4f}, {south:.4f}, {east:.4f}, {north:.4f})")
        return self

    def tile(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        """The image of XYZ tile (z, x, y) and its MIME type; None where the set has none."""
        if not (self.info.min_zoom <= z <= self.info.max_zoom) or not (0 <= x < 2 ** z and 0 <= y < 2 ** z):
            return None
        if self.path.is_dir():
            data = next((f.read_bytes() for f in (self.path / str(z) / str(x) / f"{y}{s}" for s in SUFFIXES)
                         if f.is_file()), None)
        else:
            row = self._db().execute("SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND "
                                     "tile_row = ?", (z, x, 2 ** z - 1 - y)).fetchone()
            data = bytes(row[0]) if row else None
        mime = image_type(data) if data else None
        return (data, mime) if mime else None


def configured(settings, county_bounds: tuple[float, float, float, float]) -> Basemap | None:
    """The deployment's tiles as ``[map] basemap`` names them (None without), refused as a whole — the wrong kind
    of file, an offset datum, or bounds that miss ``county_bounds`` — as the server and the brief both read them."""
    if settings.basemap is None:
        return None
    tiles = Basemap(settings.basemap, settings.basemap_crs, settings.basemap_attribution)
    return tiles.check_covers(county_bounds)


def _mercator(lng: float, lat: float, z: int) -> tuple[float, float]:
    """Web-mercator pixel position of a point at zoom ``z`` (256-px tiles, y from the north)."""
    n = 256 * 2 ** z
    rad = math.radians(max(min(lat, 85.05), -85.05))
    return (lng + 180) / 360 * n, (1 - math.log(math.tan(rad) + 1 / math.cos(rad)) / math.pi) / 2 * n


def picture(tiles: Basemap, bounds: tuple[float, float, float, float], size: tuple[int, int]):
    """A Pillow image (RGB, ``size``) of the tiles over ``bounds`` (west, south, east, north), for a printed map
    drawn in plate carrée with longitude scaled by cos(latitude) (dashboard.brief_images): at a county's extent
    web-mercator is that same projection to well under a pixel. From the zoom whose pixels are no larger than
    the picture's (or the deepest there is); where the set has no tile the picture is black."""
    from PIL import Image

    west, south, east, north = bounds
    width, height = size
    wanted = math.ceil(math.log2(max(width / max(east - west, 1e-9) * 360 / 256, 1)))
    z = min(max(wanted, tiles.info.min_zoom), tiles.info.max_zoom)
    (x0, y0), (x1, y1) = _mercator(west, north, z), _mercator(east, south, z)
    mosaic = Image.new("RGB", (int(x1 // 256 - x0 // 256 + 1) * 256, int(y1 // 256 - y0 // 256 + 1) * 256))
    for tx in range(int(x0 // 256), int(x1 // 256) + 1):
        for ty in range(int(y0 // 256), int(y1 // 256) + 1):
            found = tiles.tile(z, tx, ty)
            if found:
                image = Image.open(io.BytesIO(found[0])).convert("RGB").resize((256, 256))
                mosaic.paste(image, ((tx - int(x0 // 256)) * 256, (ty - int(y0 // 256)) * 256))
    left, top = int(x0 // 256) * 256, int(y0 // 256) * 256
    return mosaic.resize(size, Image.Resampling.BILINEAR, box=(x0 - left, y0 - top, x1 - left, y1 - top))


def _bounds(text: str | None, path: Path) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise BasemapError(f"basemap {path}: metadata bounds {text!r} is not 'west,south,east,north'") from exc
    return west, south, east, north
