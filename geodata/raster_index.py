"""A raster index over polygons that answers most point-in-polygon questions by array look-up.

The bounding box is cut into square pixels (at most ``MAX_SIDE`` along the longer side). Every pixel
that a polygon boundary passes through, or next to, is *unknown*: its points are left to the exact test
(an STRtree query). The other pixels form connected regions that no boundary crosses, so every point of
a region lies in the same polygons as any other; one test of one point per region settles it (the first
polygon in file order, as the exact test answers, or *outside*).

Boundaries are found by sampling each ring every half pixel: a boundary between two samples stays within
half a pixel of them, so marking each sample's pixel and its eight neighbours marks every pixel it
crosses. The look-up therefore returns exactly what the exact test would, shared edges and overlaps
included; it only answers less often near edges.
"""
from __future__ import annotations

import numpy as np
import shapely

MAX_SIDE = 2048  # pixels along the longer side (16 MB of int32 at most); finer answers more points but builds slower
OUTSIDE = -2
UNKNOWN = -1


def first_hits(tree: shapely.STRtree, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index of the first polygon (in the tree's order, i.e. file order) that each point intersects, or
    ``OUTSIDE``: the exact answer that the raster reproduces."""
    pi, gi = tree.query(shapely.points(x, y), predicate="intersects")
    order = np.lexsort((gi, pi))  # per point, the lowest polygon index
    pi, gi = pi[order], gi[order]
    first = np.ones(len(pi), dtype=bool)
    first[1:] = pi[1:] != pi[:-1]
    out = np.full(len(x), OUTSIDE, dtype=np.int64)
    out[pi[first]] = gi[first]
    return out


class RasterIndex:
    """``lookup(x, y)`` → polygon index, ``OUTSIDE`` or ``UNKNOWN`` (ask the exact test)."""

    def __init__(self, polygons: np.ndarray, tree: shapely.STRtree | None = None, max_side: int = MAX_SIDE):
        from scipy import ndimage  # imported here: a third of a second, needed only for large batches

        polygons = np.asarray(polygons, dtype=object)
        tree = tree if tree is not None else shapely.STRtree(polygons)
        minx, miny, maxx, maxy = shapely.total_bounds(polygons)
        self.pixel = max(maxx - minx, maxy - miny, 1e-9) / max_side
        # one pixel of margin all round, so that every region touching the outside is one region
        self.x0, self.y0 = minx - self.pixel, miny - self.pixel
        self.nx = int(np.ceil((maxx - minx) / self.pixel)) + 3
        self.ny = int(np.ceil((maxy - miny) / self.pixel)) + 3
        edge = np.zeros((self.ny, self.nx), dtype=bool)
        rings = shapely.segmentize(shapely.boundary(polygons), self.pixel / 2)
        xy = shapely.get_coordinates(rings)
        fy, fx = self._cells(xy[:, 0], xy[:, 1])
        for dy in (-1, 0, 1):  # each sample's pixel and its eight neighbours
            for dx in (-1, 0, 1):
                edge[np.clip(fy + dy, 0, self.ny - 1), np.clip(fx + dx, 0, self.nx - 1)] = True
        regions, n = ndimage.label(~edge)  # 4-connected regions no boundary crosses; 0 = boundary pixels
        # one pixel per region: a region's first pixel in raster order starts a run, so only run starts
        # are candidates (far fewer than pixels; no sort of the whole raster)
        flat = regions.ravel()
        starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
        labels, first = np.unique(flat[starts], return_index=True)
        first = starts[first[labels > 0]]
        ry, rx = np.divmod(first, self.nx)
        answer = np.empty(n + 1, dtype=np.int32)
        answer[0] = UNKNOWN
        answer[1:] = first_hits(tree, self.x0 + (rx + 0.5) * self.pixel, self.y0 + (ry + 0.5) * self.pixel)
        self.raster = answer[regions]

    def _cells(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fx = np.clip(np.floor((x - self.x0) / self.pixel), 0, self.nx - 1).astype(np.intp)
        fy = np.clip(np.floor((y - self.y0) / self.pixel), 0, self.ny - 1).astype(np.intp)
        return fy, fx

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Polygon index of each point where the raster knows it; ``OUTSIDE`` beyond the bounding box or in
        an outside pixel; ``UNKNOWN`` otherwise (NaN coordinates are ``OUTSIDE``)."""
        fx = np.floor((np.asarray(x, dtype=float) - self.x0) / self.pixel)
        fy = np.floor((np.asarray(y, dtype=float) - self.y0) / self.pixel)
        ok = (fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny)  # NaN fails
        out = np.full(len(fx), OUTSIDE, dtype=np.int32)
        out[ok] = self.raster[fy[ok].astype(np.intp), fx[ok].astype(np.intp)]
        return out
