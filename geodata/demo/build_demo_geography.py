"""Build the bundled demo geography for 汕尾市城区 (adcode 441502).

Run once by a developer; the output in ``geodata/demo/data/`` is committed::

    python -m geodata.demo.build_demo_geography [--shared-data ../shared/data] [--out geodata/demo/data]

What is real and what is synthetic
----------------------------------
* County boundary: REAL, Tianditu (天地图) county polygon, CGCS2000 treated as WGS84
  (``cn_county_boundaries_tianditu_wgs84.parquet``, district_adcode 441502).
* The 10 towns/streets (乡镇/街道) and their 9-digit codes and names: REAL, NBS 统计用区划代码 2023
  (``cn_township_codes_nbs2023.parquet``, areaCode 441502).
* Town POLYGONS: SYNTHETIC. Township boundaries are not public; each town gets a seed point at its
  approximate real location (hand-placed, roughly ±2 km) and owns the grids closest to it.
* Villages/communities, their 12-digit codes and names: SYNTHETIC (plausible, not the NBS list).
* Grids (网格), their 15-digit codes, names, household estimates and population weights: SYNTHETIC.

Construction (bottom-up, so that the levels nest and tile exactly)
------------------------------------------------------------------
1. A synthetic population-density surface: Gaussian kernels around the town seats (strong and
   tight in the three central urban streets) plus small village cores and a thin rural background.
2. ~N grid seeds = weighted Lloyd (k-means) relaxation of population sample points, so each grid
   holds roughly the same number of people ("a few hundred households"; rural grids are larger).
3. Grid polygons = Voronoi cells of the seeds (in a local equal-distance plane), clipped to the county,
   snapped to a 1e-6 degree grid; any clipped-off fragments are merged into the neighbouring grid.
4. Each grid goes to the town whose seed is nearest; villages are k-means clusters of a town's grids;
   disconnected pieces are reassigned to the neighbour with the longest shared border.
5. Villages = union of their grids; towns = union of their villages (coverage unions, so exact).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree

COUNTY_CODE = "441502"
VINTAGE = "2023"
SEED = 441502
GRID_SIZE = 1e-6  # degrees; all output vertices lie on this lattice (≈ 0.1 m)
LAT0 = 22.78
KX = math.cos(math.radians(LAT0))  # local plane: x = lng * KX, y = lat (both in degrees of latitude)

# Approximate real positions of the town/street seats (hand-placed from general knowledge of the
# area, accuracy roughly 1-3 km; the real township boundaries are not public).
# kind: 'urban' = central urban street (all 社区), 'street' = 街道 with a small urban core and villages,
# 'town' = 镇 (one 社区 at the seat, the rest 村委会).
TOWN_SEEDS: dict[str, tuple[float, float, str, float, float]] = {
    # code: (lng, lat, kind, population weight of the seat kernel, kernel sigma in km)
    "441502001": (115.372, 22.772, "urban", 9.0, 1.0),   # 新港街道 — port/centre, south
    "441502002": (115.356, 22.785, "urban", 7.0, 1.0),   # 香洲街道 — western urban area
    "441502003": (115.388, 22.788, "urban", 7.0, 1.1),   # 凤山街道 — eastern urban area
    "441502004": (115.488, 22.792, "street", 2.2, 1.6),  # 田墘街道 — east, north of the peninsula
    "441502005": (115.425, 22.752, "street", 2.0, 1.6),  # 东洲街道 — east of the centre
    "441502006": (115.545, 22.700, "street", 1.6, 1.4),  # 遮浪街道 — tip of the peninsula
    "441502007": (115.278, 22.806, "street", 2.6, 1.6),  # 马宫街道 — west
    "441502100": (115.328, 22.848, "town", 1.6, 1.8),    # 红草镇 — north-west
    "441502102": (115.425, 22.832, "town", 1.4, 1.6),    # 东涌镇 — north-east
    "441502103": (115.470, 22.718, "town", 1.8, 1.6),    # 捷胜镇 — south-east of the peninsula
}

# villages per town (4..15), roughly following the real pattern (urban streets have many 社区)
N_VILLAGES = {
    "441502001": 12, "441502002": 11, "441502003": 10, "441502004": 9, "441502005": 8,
    "441502006": 7, "441502007": 12, "441502100": 13, "441502102": 11, "441502103": 10,
}
N_GRIDS = 900
HOUSEHOLDS_TOTAL = 190_000  # order of magnitude for 城区 (about 0.55 M residents / ~2.9 per household)

COMMUNITY_STEMS = [
    "海滨", "新城", "城南", "城北", "文化", "品清", "红海", "凤岗", "金町", "新兴", "建设", "人民", "通航",
    "港湾", "汕兴", "德园", "田园", "星河", "荣华", "光明", "东风", "和平", "长沙", "新安", "海景", "联华",
    "育英", "龙山", "东方", "明珠", "嘉华", "新港湾", "城东", "城西", "香城", "碧桂", "富康", "南山",
]
VILLAGE_PREFIX = ["东", "西", "南", "北", "新", "上", "下", "大", "小", "前", "后", "长", "高", "中", "石", "沙",
                  "林", "陈", "黄", "蔡", "李", "许", "郑", "吴", "洪", "彭", "白", "马", "龙", "金", "湖", "山"]
VILLAGE_SUFFIX = ["埔", "田", "洋", "港", "湾", "岭", "寮", "墩", "尾", "头", "围", "塘", "溪", "园", "厝", "坑",
                  "坪", "湖", "寨", "角", "边", "口", "美", "厚", "乡", "丰", "和", "兴", "安", "山"]


def _to_plane(g):
    return shapely.transform(g, lambda c: c * np.array([KX, 1.0]))


def _from_plane(g):
    return shapely.transform(g, lambda c: c / np.array([KX, 1.0]))


def _snap(g):
    return shapely.set_precision(g, GRID_SIZE)


def load_real_inputs(shared: Path) -> tuple[shapely.Polygon, pd.DataFrame]:
    counties = gpd.read_parquet(shared / "cn_county_boundaries_tianditu_wgs84.parquet")
    row = counties[counties["district_adcode"].astype(str) == COUNTY_CODE]
    if len(row) != 1:
        raise SystemExit(f"county {COUNTY_CODE} not found exactly once in the Tianditu file")
    county = shapely.make_valid(row.geometry.iloc[0])
    if county.geom_type == "MultiPolygon":  # keep the mainland part (the file has a single polygon today)
        county = max(county.geoms, key=lambda p: p.area)
    county = _snap(shapely.Polygon(county.exterior))
    towns = pd.read_parquet(shared / "cn_township_codes_nbs2023.parquet")
    towns = towns[towns["areaCode"].astype(str) == COUNTY_CODE][["code", "name"]].astype(str)
    towns = towns.sort_values("code").reset_index(drop=True)
    missing = set(TOWN_SEEDS) ^ set(towns["code"])
    if missing:
        raise SystemExit(f"town codes differ from the seed table: {sorted(missing)}")
    return county, towns


def density_model(county_plane, rng: np.random.Generator):
    """Return (centres[n,2] plane coords, weights[n], sigmas[n] degrees) of a Gaussian mixture."""
    km = 1 / 111.0
    centres, weights, sigmas = [], [], []
    for lng, lat, _kind, w, s in TOWN_SEEDS.values():
        centres.append((lng * KX, lat))
        weights.append(w)
        sigmas.append(s * km)
    # village cores scattered over the county, denser towards the town seats
    minx, miny, maxx, maxy = county_plane.bounds
    n_core = 0
    while n_core < 110:
        p = (rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if shapely.contains_xy(county_plane, *p):
            centres.append(p)
            weights.append(rng.uniform(0.15, 0.45))
            sigmas.append(rng.uniform(0.35, 0.7) * km)
            n_core += 1
    return np.array(centres), np.array(weights), np.array(sigmas)


def sample_population(county_plane, model, n: int, rng: np.random.Generator, background: float = 0.06):
    centres, weights, sigmas = model
    out = []
    minx, miny, maxx, maxy = county_plane.bounds
    prepared = county_plane
    shapely.prepare(prepared)
    while sum(len(a) for a in out) < n:
        m = n
        n_bg = int(m * background)
        k = rng.choice(len(centres), size=m - n_bg, p=weights / weights.sum())
        pts = centres[k] + rng.normal(size=(m - n_bg, 2)) * sigmas[k, None]
        bg = np.column_stack([rng.uniform(minx, maxx, n_bg), rng.uniform(miny, maxy, n_bg)])
        pts = np.vstack([pts, bg])
        pts = pts[shapely.contains_xy(prepared, pts[:, 0], pts[:, 1])]
        out.append(pts)
    return np.vstack(out)[:n]


def merge_fragments(polys: list) -> list:
    """Split multipart cells; merge every non-largest part into the neighbour with the longest shared edge."""
    pieces, owner = [], []
    for i, g in enumerate(polys):
        parts = list(g.geoms) if g.geom_type == "MultiPolygon" else [g]
        parts = sorted((p for p in parts if not p.is_empty), key=lambda p: -p.area)
        for j, p in enumerate(parts):
            pieces.append(p)
            owner.append(i if j == 0 else -1)
    pieces_arr = np.array(pieces, dtype=object)
    tree = shapely.STRtree(pieces_arr)
    result = {i: [] for i in range(len(polys))}
    for k, p in enumerate(pieces):
        if owner[k] >= 0:
            result[owner[k]].append(p)
    for k, p in enumerate(pieces):
        if owner[k] >= 0:
            continue
        best, best_len = None, 0.0
        for c in tree.query(p, predicate="intersects"):
            if c == k or owner[c] < 0:
                continue
            length = shapely.length(shapely.intersection(p.boundary, pieces[c].boundary))
            if length > best_len:
                best, best_len = owner[c], length
        if best is None:
            raise RuntimeError("isolated fragment with no neighbour")
        result[best].append(p)
    return [_snap(shapely.coverage_union_all(result[i])) if len(result[i]) > 1 else result[i][0]
            for i in range(len(polys))]


def make_contiguous(geoms: list, labels: np.ndarray) -> np.ndarray:
    """Reassign grids so that each label's union is one polygon (disconnected pieces join a neighbour)."""
    labels = labels.copy()
    tree = shapely.STRtree(np.array(geoms, dtype=object))
    for _ in range(20):
        changed = False
        for lab in np.unique(labels):
            idx = np.flatnonzero(labels == lab)
            u = shapely.coverage_union_all([geoms[i] for i in idx])
            if u.geom_type != "MultiPolygon":
                continue
            parts = sorted(u.geoms, key=lambda p: -p.area)
            for part in parts[1:]:
                members = [i for i in idx if shapely.intersects(part, shapely.point_on_surface(geoms[i]))]
                # neighbour label with the longest shared border
                score: dict = {}
                for i in members:
                    for c in tree.query(geoms[i], predicate="intersects"):
                        if labels[c] == lab:
                            continue
                        length = shapely.length(shapely.intersection(geoms[i].boundary, geoms[c].boundary))
                        score[labels[c]] = score.get(labels[c], 0.0) + length
                if score:
                    labels[members] = max(score, key=score.get)
                    changed = True
        if not changed:
            break
    return labels


def reading_order(points: np.ndarray, row_height: float) -> np.ndarray:
    """Order points west→east within rows taken north→south; returns the permutation."""
    ymax = points[:, 1].max()
    band = np.floor((ymax - points[:, 1]) / row_height).astype(int)
    return np.lexsort((points[:, 0], band))


def village_names(rng: np.random.Generator, kinds: list[str], used_global: set[str]) -> list[str]:
    names: list[str] = []
    for kind in kinds:
        for _ in range(1000):
            if kind == "社区":
                stem = str(rng.choice(COMMUNITY_STEMS))
            else:
                stem = str(rng.choice(VILLAGE_PREFIX)) + str(rng.choice(VILLAGE_SUFFIX))
                if stem[0] == stem[1]:
                    continue
            full = stem + ("社区" if kind == "社区" else "村")
            if full in names:
                continue
            # village names may repeat across towns (as in reality), but keep repeats rare
            if full in used_global and rng.random() > 0.08:
                continue
            names.append(full)
            break
    used_global.update(names)
    return names


def build(shared: Path, out: Path, n_grids: int = N_GRIDS) -> dict:
    rng = np.random.default_rng(SEED)
    county, towns = load_real_inputs(shared)
    county_plane = _to_plane(county)

    # 1-2: population sample and grid seeds (weighted Lloyd via k-means on population points)
    model = density_model(county_plane, rng)
    pop = sample_population(county_plane, model, 120_000, rng)
    init = pop[rng.choice(len(pop), n_grids, replace=False)]
    seeds, lab = kmeans2(pop, init, iter=25, minit="matrix", seed=SEED)
    counts = np.bincount(lab, minlength=n_grids)
    seeds = seeds[counts > 0]
    # thin the rural background: large empty rural areas need a few extra seeds so grids stay compact
    minx, miny, maxx, maxy = county_plane.bounds
    tree = cKDTree(seeds)
    gx, gy = np.meshgrid(np.arange(minx, maxx, 0.012), np.arange(miny, maxy, 0.012))
    cand = np.column_stack([gx.ravel(), gy.ravel()])
    cand = cand[shapely.contains_xy(county_plane, cand[:, 0], cand[:, 1])]
    d, _ = tree.query(cand)
    extra = cand[d > 0.012]
    seeds = np.vstack([seeds, extra])

    # 3: Voronoi cells in the plane, back to lng/lat, clip, snap, merge fragments
    env = shapely.box(minx - 0.2, miny - 0.2, maxx + 0.2, maxy + 0.2)
    vor = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=env)
    cells = list(vor.geoms)
    cells = [_from_plane(c) for c in cells]
    cells = [_snap(shapely.intersection(c, county)) for c in cells]
    cells = [c for c in cells if not c.is_empty and c.area > 0]
    cells = [shapely.Polygon(c) if c.geom_type == "Polygon" else c for c in cells]
    cells = [shapely.MultiPolygon([p for p in c.geoms if p.geom_type == "Polygon"])
             if c.geom_type == "GeometryCollection" else c for c in cells]
    cells = merge_fragments(cells)
    cells = [_snap(c) for c in cells]
    grid_geom = np.array(cells, dtype=object)
    rep = shapely.get_coordinates(shapely.point_on_surface(grid_geom))
    rep_plane = rep * np.array([KX, 1.0])

    # population per grid from the sample (plus a floor so no grid is empty)
    pop_ll = pop / np.array([KX, 1.0])
    gtree = shapely.STRtree(grid_geom)
    pi, gi = gtree.query(shapely.points(pop_ll), predicate="intersects")
    _, first = np.unique(pi, return_index=True)
    pop_count = np.bincount(gi[first], minlength=len(cells)).astype(float)
    pop_count += 0.05 * np.median(pop_count) + 1.0

    # 4a: towns = nearest town seed (in the plane), made contiguous
    codes = list(TOWN_SEEDS)
    tseed = np.array([(TOWN_SEEDS[c][0] * KX, TOWN_SEEDS[c][1]) for c in codes])
    _, t_idx = cKDTree(tseed).query(rep_plane)
    t_idx = make_contiguous(cells, t_idx)

    # 4b: villages = weighted k-means of each town's grids, made contiguous within the town
    v_label = np.full(len(cells), -1)
    next_label = 0
    for ti, _tcode in enumerate(codes):
        idx = np.flatnonzero(t_idx == ti)
        k = min(N_VILLAGES[codes[ti]], len(idx))
        # replicate points by population for a population-weighted clustering
        reps = np.repeat(np.arange(len(idx)), np.maximum(1, (pop_count[idx] / pop_count[idx].mean() * 3).astype(int)))
        pts = rep_plane[idx][reps]
        init_ix = rng.choice(len(idx), k, replace=False)
        cent, _ = kmeans2(pts, rep_plane[idx][init_ix], iter=30, minit="matrix", seed=SEED + ti)
        _, lab = cKDTree(cent).query(rep_plane[idx])
        lab = np.unique(lab, return_inverse=True)[1]
        sub = make_contiguous([cells[i] for i in idx], lab)
        sub = np.unique(sub, return_inverse=True)[1]
        v_label[idx] = sub + next_label
        next_label += sub.max() + 1

    # 5: codes, names, geometries
    used_names: set[str] = set()
    town_rows, village_rows, grid_rows = [], [], []
    hh_per_pop = HOUSEHOLDS_TOTAL / pop_count.sum()
    town_name = dict(zip(towns["code"], towns["name"], strict=True))
    for ti, tcode in enumerate(codes):
        kind = TOWN_SEEDS[tcode][2]
        vlabels = np.unique(v_label[t_idx == ti])
        vrep = []
        for vl in vlabels:
            gidx = np.flatnonzero(v_label == vl)
            w = pop_count[gidx]
            vrep.append((rep[gidx] * w[:, None]).sum(0) / w.sum())
        vrep = np.array(vrep)
        # community vs village: urban streets all 社区; others: 社区 for the most central units
        dist = np.hypot((vrep[:, 0] - TOWN_SEEDS[tcode][0]) * KX, vrep[:, 1] - TOWN_SEEDS[tcode][1])
        n_comm = {"urban": len(vlabels), "street": max(1, len(vlabels) // 4), "town": 1}[kind]
        is_comm = np.zeros(len(vlabels), bool)
        is_comm[np.argsort(dist)[:n_comm]] = True
        row_h = 0.01
        order = reading_order(vrep, row_h)
        kinds = ["社区" if is_comm[i] else "村" for i in order]
        names = village_names(rng, kinds, used_names)
        n_c = n_v = 0
        village_geoms = []
        for pos, vi in enumerate(order):
            if is_comm[vi]:
                n_c += 1
                vcode = f"{tcode}{n_c:03d}"
            else:
                n_v += 1
                vcode = f"{tcode}{199 + n_v:03d}"
            gidx = np.flatnonzero(v_label == vlabels[vi])
            vgeom = _snap(shapely.coverage_union_all(list(grid_geom[gidx])))
            village_geoms.append(vgeom)
            gh = math.sqrt(np.median(shapely.area(grid_geom[gidx])))
            gorder = reading_order(rep[gidx], gh)
            vpop = pop_count[gidx].sum()
            village_rows.append({
                "code": vcode, "name": names[pos], "level": "village", "parent_code": tcode,
                "kind": "社区居委会" if is_comm[vi] else "村委会", "synthetic": True, "vintage": VINTAGE,
                "households_est": int(round(vpop * hh_per_pop)), "geometry": vgeom,
            })
            for seq, gpos in enumerate(gorder, start=1):
                g = gidx[gpos]
                grid_rows.append({
                    "code": f"{vcode}{seq:03d}", "name": f"{names[pos]}第{seq}网格", "level": "grid",
                    "parent_code": vcode, "synthetic": True, "vintage": VINTAGE,
                    "households_est": int(round(pop_count[g] * hh_per_pop)),
                    "pop_weight": pop_count[g], "geometry": grid_geom[g],
                })
        town_rows.append({
            "code": tcode, "name": town_name[tcode], "level": "town", "parent_code": COUNTY_CODE,
            "kind": "镇" if tcode[6] == "1" else "街道", "synthetic": False, "geometry_synthetic": True,
            "vintage": VINTAGE, "geometry": _snap(shapely.coverage_union_all(village_geoms)),
        })

    grids = gpd.GeoDataFrame(grid_rows, crs="EPSG:4326")
    grids["pop_weight"] = (grids["pop_weight"] / grids["pop_weight"].sum()).round(8)
    villages = gpd.GeoDataFrame(village_rows, crs="EPSG:4326")
    towns_gdf = gpd.GeoDataFrame(town_rows, crs="EPSG:4326")
    county_gdf = gpd.GeoDataFrame([{
        "code": COUNTY_CODE, "name": "城区", "full_name": "广东省汕尾市城区", "level": "county",
        "parent_code": "441500", "synthetic": False, "vintage": VINTAGE,
        # the real boundary on the 1e-6 degree lattice (= union of the grids, so the tiling is exact;
        # it departs from the Tianditu polygon by at most ~0.5e-6 degree, about 5 cm)
        "geometry": _snap(shapely.coverage_union_all(list(grid_geom))),
    }], crs="EPSG:4326")

    out.mkdir(parents=True, exist_ok=True)
    stats = {}
    for name, gdf in [("county", county_gdf), ("towns", towns_gdf), ("villages", villages), ("grids", grids)]:
        path = out / f"{name}.geojson"
        write_geojson(gdf, path)
        stats[name] = {"rows": len(gdf), "bytes": path.stat().st_size}
    return stats


def write_geojson(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """Compact GeoJSON: 6-decimal coordinates, no whitespace, one feature per line."""
    feats = []
    for rec in gdf.to_dict("records"):
        geom = rec.pop("geometry")
        gj = json.loads(shapely.to_geojson(geom))
        gj["coordinates"] = _round(gj["coordinates"])
        props = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        feats.append(json.dumps({"type": "Feature", "properties": props, "geometry": gj},
                                ensure_ascii=False, separators=(",", ":")))
    head = json.dumps({"type": "FeatureCollection", "name": path.stem,
                       "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}},
                      separators=(",", ":"))
    text = head[:-1] + ',"features":[\n' + ",\n".join(feats) + "\n]}\n"
    path.write_text(text, encoding="utf-8")


def _round(c):
    if isinstance(c, (int, float)):
        return round(c, 6)
    return [_round(x) for x in c]


def main(argv: list[str] | None = None) -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", type=Path, default=here.parents[1].parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=here / "data")
    ap.add_argument("--grids", type=int, default=N_GRIDS)
    args = ap.parse_args(argv)
    stats = build(args.shared_data, args.out, args.grids)
    for k, v in stats.items():
        print(f"{k:9s} {v['rows']:5d} features  {v['bytes'] / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
