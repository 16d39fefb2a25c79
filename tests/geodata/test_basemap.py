"""The deployment's own offline basemap: tiles read from an MBTiles file (TMS rows) or a {z}/{x}/{y} folder,
and every tile set the map cannot use refused with what is wrong."""
from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodata.basemap import Basemap, BasemapError, image_type
from tests.geodata.tiles import covering, make_folder, make_mbtiles, png, xyz

SHANWEI = (115.23, 22.67, 115.58, 22.91)  # the demo county's bounds


@pytest.fixture
def mbtiles(tmp_path):
    return make_mbtiles(tmp_path / "county.mbtiles", SHANWEI)


def test_an_mbtiles_tile_is_found_by_its_xyz_address_whose_y_counts_from_the_north(tmp_path):
    """MBTiles stores rows from the south (TMS): the server must flip y, or the map is upside down by tile."""
    path = make_mbtiles(tmp_path / "one.mbtiles", SHANWEI, zooms=[10])
    z, x, y = 10, *xyz(115.4, 22.8, 10)
    with sqlite3.connect(path) as db:  # one tile of its own colour, stored at its TMS row
        db.execute("UPDATE tiles SET tile_data = ? WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                   (png((0, 255, 0)), z, x, 2 ** z - 1 - y))
    tiles = Basemap(path)
    assert tiles.tile(z, x, y) == (png((0, 255, 0)), "image/png")
    other = next(t for t in covering(SHANWEI, [10]) if t != (z, x, y))
    assert tiles.tile(*other) == (png((200, 0, 200)), "image/png")
    assert tiles.tile(z, x, 2 ** z - 1 - y) is None  # the unflipped row: no tile there
    assert (tiles.info.min_zoom, tiles.info.max_zoom, tiles.info.attribution) == (10, 10, "测试底图")
    assert tiles.info.bounds == SHANWEI


def test_a_folder_of_xyz_tiles_is_read_in_its_own_order_and_any_image_suffix(tmp_path):
    jpeg = bytes.fromhex("ffd8ffe000104a464946") + b"\0" * 20
    folder = make_folder(tmp_path / "tiles", {(9, 420, 226): png((1, 2, 3)), (11, 1683, 905): jpeg})
    (folder / "11" / "1683" / "905.png").rename(folder / "11" / "1683" / "905.jpg")
    tiles = Basemap(folder, attribution="天地图")
    assert (tiles.info.min_zoom, tiles.info.max_zoom, tiles.info.attribution) == (9, 11, "天地图")
    assert tiles.tile(9, 420, 226) == (png((1, 2, 3)), "image/png")
    assert tiles.tile(11, 1683, 905) == (jpeg, "image/jpeg")
    assert tiles.tile(10, 840, 452) is None and tiles.tile(9, 420, 227) is None


@settings(max_examples=60, deadline=None)
@given(z=st.integers(-2, 25), x=st.integers(-5, 2 ** 12), y=st.integers(-5, 2 ** 12))
def test_any_address_outside_the_set_is_no_tile_never_an_error(tmp_path_factory, z, x, y):
    path = tmp_path_factory.getbasetemp() / "prop.mbtiles"
    if not path.exists():
        make_mbtiles(path, SHANWEI)
    tiles = Basemap(path)
    found = tiles.tile(z, x, y)
    assert (found is not None) == ((z, x, y) in set(covering(SHANWEI, range(8, 12))))


@pytest.mark.parametrize("crs", ["gcj02", "GCJ-02", "bd09"])
def test_tiles_of_an_offset_datum_are_refused_with_the_reason(mbtiles, crs):
    with pytest.raises(BasemapError, match="100–700 m"):
        Basemap(mbtiles, crs=crs)


def test_cgcs2000_tiles_are_taken_and_an_unknown_datum_is_refused(mbtiles):
    assert Basemap(mbtiles, crs="CGCS2000").info.max_zoom == 11
    with pytest.raises(BasemapError, match="basemap_crs 'epsg:4547'"):
        Basemap(mbtiles, crs="EPSG:4547")


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.mbtiles", "no such file or folder"),
    (lambda p: (p / "text.mbtiles").write_text("not a database") and p / "text.mbtiles", "not an MBTiles file"),
    (lambda p: make_mbtiles(p / "empty.mbtiles", SHANWEI, zooms=[]), "holds no tiles"),
    (lambda p: make_mbtiles(p / "vector.mbtiles", SHANWEI, fmt="pbf", data=b"\x1a\x03abc"), "vector tiles"),
    (lambda p: make_mbtiles(p / "svg.mbtiles", SHANWEI, data=b"<svg/>"), "not PNG, JPEG or WebP"),
    (lambda p: (p / "empty_dir").mkdir() or p / "empty_dir", "no tiles found"),
    (lambda p: make_folder(p / "bad_dir", {(9, 1, 1): b"GIF89a"}), "is not a PNG, JPEG or WebP image"),
])
def test_a_tile_set_that_cannot_be_used_is_refused_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(BasemapError, match=message) as caught:
        Basemap(path)
    assert str(path) in str(caught.value)


def test_bad_bounds_in_the_metadata_are_refused(tmp_path):
    path = make_mbtiles(tmp_path / "b.mbtiles", SHANWEI)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE metadata SET value = '115,22' WHERE name = 'bounds'")
    with pytest.raises(BasemapError, match="not 'west,south,east,north'"):
        Basemap(path)


def test_image_types_are_told_by_their_bytes():
    assert image_type(png((0, 0, 0))) == "image/png"
    assert image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert image_type(b"RIFF\0\0\0\0WAVEfmt ") is None
    assert image_type(b"\x1a\x03") is None and image_type(b"") is None


def _tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """west, south, east, north of XYZ tile (z, x, y)."""
    import math

    def lat(row):
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / 2 ** z))))

    return x / 2 ** z * 360 - 180, lat(y + 1), (x + 1) / 2 ** z * 360 - 180, lat(y)


def test_a_printed_pictures_tiles_sit_where_their_bounds_say(tmp_path):
    """picture(): four tiles of distinct colours over exactly their own 2 × 2 extent fill the four quadrants; a
    missing tile is black; a picture finer than the deepest zoom enlarges it."""
    from geodata.basemap import picture

    z, x, y = 10, *xyz(115.4, 22.8, 10)
    colours = {(0, 0): (255, 0, 0), (1, 0): (0, 255, 0), (0, 1): (0, 0, 255)}  # (1, 1) missing
    folder = make_folder(tmp_path / "t", {(z, x + dx, y + dy): png(c) for (dx, dy), c in colours.items()})
    west, _, _, north = _tile_bounds(z, x, y)
    _, south, east, _ = _tile_bounds(z, x + 1, y + 1)
    for size in ((512, 512), (2000, 2000)):  # the tiles' own size; then finer than zoom 10
        image = picture(Basemap(folder), (west, south, east, north), size)
        w, h = size
        for (dx, dy), colour in {**colours, (1, 1): (0, 0, 0)}.items():
            assert image.getpixel((int(w * (0.25 + dx / 2)), int(h * (0.25 + dy / 2)))) == colour, (size, dx, dy)
            assert image.getpixel((int(w * (0.02 + dx / 2)), int(h * (0.02 + dy / 2)))) == colour, (size, dx, dy)
