"""Raster tile sets made for tests: an MBTiles file (TMS rows) or a folder ({z}/{x}/{y}.png), one colour each."""
from __future__ import annotations

import io
import math
import sqlite3
from pathlib import Path

from PIL import Image


def xyz(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ (web-mercator, y from the north) tile holding a point."""
    rad = math.radians(lat)
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.log(math.tan(rad) + 1 / math.cos(rad)) / math.pi) / 2 * n)


def png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(buf, "PNG")
    return buf.getvalue()


def covering(bounds, zooms) -> list[tuple[int, int, int]]:
    """Every XYZ tile of ``bounds`` (west, south, east, north) at each zoom."""
    west, south, east, north = bounds
    tiles = []
    for z in zooms:
        (x0, y0), (x1, y1) = xyz(west, north, z), xyz(east, south, z)
        tiles += [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    return tiles


def make_mbtiles(path: Path, bounds, zooms=range(8, 12), colour=(200, 0, 200), fmt: str = "png",
                 data: bytes | None = None, attribution: str = "测试底图") -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE metadata (name text, value text)")
    db.execute("CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, tile_data blob)")
    db.executemany("INSERT INTO metadata VALUES (?, ?)", [("name", "test"), ("format", fmt), ("attribution", attribution),
                                                         ("bounds", ",".join(map(str, bounds)))])
    image = data if data is not None else png(colour)
    db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                   [(z, x, 2 ** z - 1 - y, image) for z, x, y in covering(bounds, zooms)])
    db.commit()
    db.close()
    return path


def make_folder(path: Path, tiles: dict[tuple[int, int, int], bytes], suffix: str = ".png") -> Path:
    for (z, x, y), data in tiles.items():
        (path / str(z) / str(x)).mkdir(parents=True, exist_ok=True)
        (path / str(z) / str(x) / f"{y}{suffix}").write_bytes(data)
    return path
