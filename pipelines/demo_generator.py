"""Seeded, deterministic generator of the demo county's source exports (汕尾市城区).

It writes what the two source systems would really hand over, in their native forms:

* grid-app patrol reports (网格员巡查上报): yearly CSV files plus the last 30 days as .xlsx, Chinese
  headers, GCJ-02 coordinates (about a fifth BD-09, as from a Baidu SDK), app category codes, a status
  in one of the six stages or 已办结, due and close times;
* police non-emergency incidents (非警务警情): CSV with 6-digit 报警类别 codes, free text that carries
  (fake) names and phone numbers that the loader must redact, some rows with an address only, and some
  matters also reported by a grid worker (one matter, two sources).

History: ``years`` of days ending at ``end_date`` with weekly and yearly seasonality (wage arrears rise
from November to the Spring Festival), a gentle trend, persistent hotspots (markets, construction sites,
old residential compounds) and injected anomalies. Ground truth goes to ``truth/`` beside the exports:
every event's true WGS84 point and category, the anomalous (H3 res-8 cell, week) pairs, and the
police–grid pairs that are the same matter. Same seed + same arguments = byte-identical files.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import shapely

from geodata.areas import AreaSet
from geodata.crs import wgs84_to_bd09, wgs84_to_gcj02

TRUTH_RES = 8  # anomaly ground truth is given on H3 resolution-8 cells and ISO weeks (Monday start)

# Spring Festival dates: wage-arrears season runs from 1 November to the festival.
SPRING_FESTIVAL = {
    2021: "2021-02-12", 2022: "2022-02-01", 2023: "2023-01-22", 2024: "2024-02-10", 2025: "2025-01-29",
    2026: "2026-02-17", 2027: "2027-02-06", 2028: "2028-01-26", 2029: "2029-02-13", 2030: "2030-02-03",
}

# (app code, app name, weight, product category) for grid reports
GRID_TYPES = [
    ("A01", "矛盾纠纷-婚姻家庭", 4, "MD01"), ("A02", "矛盾纠纷-邻里纠纷", 10, "MD02"),
    ("A03", "矛盾纠纷-房屋宅基地", 3, "MD03"), ("A04", "矛盾纠纷-民间借贷债务", 2, "MD0401"),
    ("A05", "矛盾纠纷-生产经营", 2, "MD05"), ("A06", "矛盾纠纷-损害赔偿", 2, "MD06"),
    ("A07", "矛盾纠纷-山林土地水利", 2, "MD07"), ("A08", "矛盾纠纷-征地拆迁", 1, "MD08"),
    ("A09", "矛盾纠纷-环境污染噪声", 3, "MD09"), ("A10", "矛盾纠纷-劳动争议", 2, "MD10"),
    ("A11", "矛盾纠纷-拖欠农民工工资", 2, "MD1001"), ("A12", "矛盾纠纷-消费", 2, "MD12"),
    ("A15", "矛盾纠纷-物业", 4, "MD15"), ("A98", "矛盾纠纷-村务管理", 1, "MD9901"),
    ("A99", "矛盾纠纷-口角琐事", 5, "MD9902"), ("B01", "城市管理-市容环境", 12, "CG"),
    ("B02", "城市管理-占道经营", 7, "CG"), ("C01", "治安隐患", 5, "ZA"), ("D01", "安全生产-消防隐患", 6, "AQ"),
    ("D02", "安全生产-施工安全", 3, "AQ"), ("E01", "生态环境", 4, "HJ"), ("F01", "食药安全", 2, "SY"),
    ("G01", "民生服务-困难救助", 5, "MS"), ("H01", "自然灾害-应急", 1, "ZH"), ("Z99", "其他", 3, "QT"),
]
# (报警类别代码, name, weight, product category)
POLICE_TYPES = [
    ("200201", "邻里纠纷", 14, "MD02"), ("200202", "家庭纠纷", 10, "MD01"), ("200203", "经济纠纷", 6, "MD04"),
    ("200204", "口角纠纷", 12, "MD9902"), ("200205", "物业纠纷", 5, "MD15"), ("200206", "消费纠纷", 6, "MD12"),
    ("200207", "交通事故纠纷", 6, "MD14"), ("200208", "医疗纠纷", 1, "MD13"), ("200209", "土地纠纷", 2, "MD07"),
    ("200210", "房屋纠纷", 2, "MD03"), ("200600", "家庭暴力", 2, "MD01"), ("600300", "劳动保障", 3, "MD10"),
    ("600301", "拖欠工资", 4, "MD1001"), ("600600", "城管执法", 3, "CG"), ("600901", "噪声扰民", 7, "MD09"),
    ("500100", "群众求助", 5, "MS"), ("950100", "群众投诉", 3, "QT"),
]
UNKNOWN_POLICE_CODE = ("299999", "其他治安类")  # a code missing from the mapping table: must be reported

# category of grid report that is the "same matter" as a police category (for cross-source duplicates)
POLICE_TO_GRID_CODE = {"MD02": "A02", "MD01": "A01", "MD04": "A04", "MD9902": "A99", "MD15": "A15",
                       "MD12": "A12", "MD14": "A06", "MD13": "A06", "MD07": "A07", "MD03": "A03",
                       "MD10": "A10", "MD1001": "A11", "CG": "B01", "MD09": "A09", "MS": "G01", "QT": "Z99"}

HOTSPOT_KINDS = {
    # kind: (label, category weights favoured there)
    "market": ("农贸市场", {"MD12": 6, "CG": 8, "MD9902": 4, "MD02": 2, "SY": 3}),
    "construction": ("建筑工地", {"MD1001": 8, "MD10": 5, "AQ": 6, "MD09": 4, "HJ": 2}),
    "old_compound": ("老旧小区", {"MD02": 8, "MD15": 7, "MD9902": 3, "MS": 3, "AQ": 2}),
}

# where cases are settled (办理层级), by kind of matter: (村（社区）, 镇街, 县区, 市级) shares before each town's own
# habit and the escalation of overdue cases; closed on the spot = settled in the village
TIER_WORDS = np.array(["村（社区）", "镇（街道）", "县（区）", "市级"], dtype=object)
TIER_SHARES = {"local": (0.70, 0.24, 0.05, 0.01), "heavy": (0.35, 0.45, 0.17, 0.03), "other": (0.50, 0.38, 0.10, 0.02)}
TIER_KIND = {**dict.fromkeys(("MD01", "MD02", "MD9902", "MD9901", "MD15", "MS", "CG"), "local"),
             **dict.fromkeys(("MD03", "MD04", "MD0401", "MD05", "MD07", "MD08", "MD10", "MD1001"), "heavy")}
DUAL_SHARE = {"grid": 0.15, "police": 0.40}  # 双派单: to a department and the grid worker at once
REOPEN_SHARE = 0.01  # of the grid cases closed in the two months before the last week: shown open again (重开) by
                     # the week's export (about 100 of the 200k demo's: 3 % made the last day's backlog jump by 312)

STAGES = ["登记受理", "先行调解", "风险研判", "分类流转", "跟踪督办", "案结事了"]
CLOSED = "已办结"
FLOW_WEEKS = 26  # the flow log covers the cases open at some time in the last 26 weeks (the brief's backlog series)
SLA_DAYS = {"MD": 15, "CG": 5, "ZA": 3, "AQ": 3, "HJ": 7, "SY": 5, "MS": 10, "ZH": 2, "QT": 7}

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘蔡蒋余杜叶程苏魏吕丁沈")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红辉建国志海燕鹏宇晨欣佳琪俊文斌")
ROADS = ["人民路", "汕马路", "香洲路", "通港路", "建设路", "工业大道", "新城中路", "红草大道", "东涌路", "海滨大道"]
POLICE_UNITS = ["新港派出所", "香洲派出所", "凤山派出所", "马宫派出所", "红草派出所", "东涌派出所", "捷胜派出所"]

POLICE_TEXT = {
    "MD02": "{name}报称与邻居因{why}发生争执，双方情绪激动，请求民警到场调解，联系电话{phone}。",
    "MD01": "{name}报称与家人因{why}发生家庭矛盾，要求调解处理，联系电话{phone}。",
    "MD04": "{name}报称{other}欠其货款{amount}元未还，多次催讨无果，联系电话{phone}。",
    "MD9902": "{name}报称在{place}与他人因琐事发生口角，现场有推搡，联系电话{phone}。",
    "MD15": "{name}报称小区物业{why}，业主与物业发生争执，联系电话{phone}。",
    "MD12": "{name}报称在{place}购物与商家发生消费纠纷，要求退款，联系电话{phone}。",
    "MD14": "{name}报称在{road}发生车辆剐蹭，双方对赔偿有争议，联系电话{phone}。",
    "MD13": "{name}报称在医院就医后对治疗结果不满，与院方发生纠纷，联系电话{phone}。",
    "MD07": "{name}报称与{other}因田地边界发生纠纷，联系电话{phone}。",
    "MD03": "{name}报称与{other}因房屋宅基地边界发生争执，联系电话{phone}。",
    "MD10": "{name}报称与用人单位发生劳动争议，要求解决，联系电话{phone}。",
    "MD1001": "{name}报称在{place}做工，老板拖欠工资{amount}元，约{count}名工人讨薪，联系电话{phone}。",
    "CG": "{name}报称{road}有流动摊贩占道经营影响通行，联系电话{phone}。",
    "MD09": "{name}报称楼下{why2}噪声扰民，影响休息，联系电话{phone}。",
    "MS": "{name}报称家中老人生活困难，请求帮助，联系电话{phone}。",
    "QT": "{name}反映{road}路灯损坏多日无人维修，联系电话{phone}。",
}
GRID_TEXT = {
    "MD": "巡查发现{place}附近{what}，已现场了解情况并做好登记。",
    "CG": "巡查发现{road}段{what}，已拍照上报。",
    "ZA": "巡查发现{place}存在治安隐患：{what}。",
    "AQ": "巡查发现{place}{what}，存在安全隐患，已提醒整改。",
    "HJ": "巡查发现{place}{what}，已上报处理。",
    "SY": "巡查发现{place}{what}。",
    "MS": "走访发现辖区困难群众{what}，需协调救助。",
    "ZH": "巡查发现{place}{what}，已组织群众转移。",
    "QT": "巡查发现{place}{what}。",
}
GRID_WHAT = {
    "MD": ["两户居民因琐事发生争吵", "居民反映矛盾纠纷", "双方因费用问题产生分歧", "群众反映纠纷需调解"],
    "CG": ["有垃圾堆放", "流动摊贩占道经营", "违规张贴小广告", "共享单车乱停放"],
    "ZA": ["出租屋人员流动频繁", "夜间有可疑人员聚集", "监控设施损坏"],
    "AQ": ["楼道堆放杂物", "电动车违规充电", "工地临边防护缺失", "消防通道被占用"],
    "HJ": ["污水直排", "焚烧垃圾", "扬尘污染"],
    "SY": ["无证经营小餐饮", "售卖过期食品"],
    "MS": ["家中无人照料", "生活困难"],
    "ZH": ["边坡滑塌风险", "低洼路段积水"],
    "QT": ["公共设施损坏", "路灯不亮"],
}
# a dispute's own words where its category has them (拖欠工资 was described as 两户居民因琐事发生争吵)
GRID_WHAT_MD = {
    "MD01": ["一户家庭因赡养问题发生矛盾", "夫妻因家庭琐事争吵"], "MD02": ["两户居民因琐事发生争吵", "邻里因漏水问题产生矛盾"],
    "MD03": ["两户村民因宅基地边界发生争执"], "MD04": ["居民反映借款到期未还"], "MD07": ["村民因田地边界发生纠纷"],
    "MD09": ["居民反映夜间施工噪声扰民", "楼下商铺噪声扰民"], "MD10": ["工人与用人单位发生劳动争议"],
    "MD1001": ["多名工人聚集讨要拖欠工资", "工人反映工程款拖欠、工资未发"], "MD12": ["顾客与商家发生消费纠纷"],
    "MD13": ["患者家属与医院发生纠纷"], "MD14": ["两车剐蹭后双方对赔偿有争议"], "MD15": ["业主与物业因收费问题发生争执"],
    "MD9902": ["两人因口角发生推搡"], "MD0401": ["居民反映借款到期未还"], "MD05": ["两家商户因经营场地发生纠纷"],
    "MD06": ["居民因财物受损要求赔偿"], "MD08": ["村民对征地补偿有异议"], "MD9901": ["村民对村务公开有意见"],
}


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    grid_files: tuple[Path, ...]
    police_files: tuple[Path, ...]
    truth_dir: Path
    n_events: int
    n_grid_rows: int
    n_police_rows: int
    # the grid platform's later export of the records whose status changed in the last week (loaded after the
    # others: an upsert of each, and its status history)
    update_files: tuple[Path, ...] = ()
    # the moment the exports were taken: the last seconds of the last day (local time), after its last record. The
    # demo dates their statuses then (ingest taken_at) and builds as of then, so that the data and the build agree
    # on "now" (a build a day later would count as overdue the cases falling due since, though the exports cannot
    # say whether they were closed), and the day's-end backlog holds what the later export reopened
    taken_at: pd.Timestamp | None = None
    # the grid platform's case-flow log (流转记录): each step of the cases open in the last weeks, loaded last with
    # the demo_grid_flow profile into their status history
    flow_files: tuple[Path, ...] = ()


def _prefix(code: str) -> str:
    return "MD" if code.startswith("MD") else code


def _season_multiplier(days: pd.DatetimeIndex) -> np.ndarray:
    """Wage-arrears multiplier: rises from 1 Nov to a peak at the Spring Festival, then drops."""
    mult = np.ones(len(days))
    for year, festival in SPRING_FESTIVAL.items():
        sf = pd.Timestamp(festival)
        start = pd.Timestamp(f"{year - 1}-11-01")
        inside = (days >= start) & (days < sf)
        frac = ((days[inside] - start).days / max((sf - start).days, 1)).to_numpy()
        mult[inside] = 1.5 + 3.0 * frac
    return mult


def _sample_in_polygons(rng: np.random.Generator, polys: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points inside polys[idx[i]] by vectorised rejection sampling within each bounding box."""
    bounds = shapely.bounds(polys)
    lng = np.empty(len(idx))
    lat = np.empty(len(idx))
    todo = np.arange(len(idx))
    for _ in range(60):
        if not len(todo):
            break
        b = bounds[idx[todo]]
        x = b[:, 0] + rng.random(len(todo)) * (b[:, 2] - b[:, 0])
        y = b[:, 1] + rng.random(len(todo)) * (b[:, 3] - b[:, 1])
        ok = shapely.contains_xy(polys[idx[todo]], x, y)
        lng[todo[ok]] = x[ok]
        lat[todo[ok]] = y[ok]
        todo = todo[~ok]
    if len(todo):  # pathological slivers: fall back to a point on the surface
        pts = shapely.point_on_surface(polys[idx[todo]])
        lng[todo], lat[todo] = shapely.get_x(pts), shapely.get_y(pts)
    return lng, lat


def _offset_m(rng: np.random.Generator, lat: np.ndarray, sigma_m: float) -> tuple[np.ndarray, np.ndarray]:
    dx = rng.normal(0, sigma_m, len(lat))
    dy = rng.normal(0, sigma_m, len(lat))
    return dx / (111_320 * np.cos(np.radians(lat))), dy / 110_540


class DemoGenerator:
    """Generate the demo exports. ``generate(out_dir)`` writes files and returns a ``DemoResult``."""

    def __init__(self, areas: AreaSet, n_events: int = 200_000, years: int = 2, end_date: str | None = None,
                 seed: int = 20240601, grid_share: float = 0.6, link_share: float = 0.08):
        self.areas = areas
        self.n_events = int(n_events)
        self.years = int(years)
        # default: yesterday, so that the export time (end of that day) is already in the past
        self.end_date = pd.Timestamp(end_date or (dt.date.today() - dt.timedelta(days=1)).isoformat()).normalize()
        self.seed = int(seed)
        self.grid_share = grid_share
        self.link_share = link_share

    # ------------------------------------------------------------------ the event stream
    def _base_events(self, rng: np.random.Generator) -> pd.DataFrame:
        days = pd.date_range(end=self.end_date, periods=365 * self.years, freq="D")
        grids = self.areas.grids.reset_index(drop=True)
        n = self.n_events
        source_is_grid = rng.random(n) < self.grid_share

        # day intensity: weekly shape by source, yearly wave, +10 %/year trend
        dow = days.day_of_week.to_numpy()
        doy = days.day_of_year.to_numpy()
        t = np.arange(len(days)) / 365.0
        base = (1 + 0.12 * np.sin(2 * np.pi * (doy - 100) / 365.25)) * (1 + 0.10 * t)
        grid_w = base * np.where(dow < 5, 1.15, 0.6)
        police_w = base * np.where(dow >= 5, 1.25, 0.95)
        day_idx = np.empty(n, dtype=np.int64)
        for mask, w in ((source_is_grid, grid_w), (~source_is_grid, police_w)):
            day_idx[mask] = rng.choice(len(days), size=mask.sum(), p=w / w.sum())

        # place: a share from persistent hotspots, the rest spread over grids by population
        hotspots = self._hotspots(rng, grids)
        from_hot = rng.random(n) < 0.30
        hs_idx = rng.choice(len(hotspots), size=from_hot.sum(), p=hotspots["weight"] / hotspots["weight"].sum())
        lng = np.empty(n)
        lat = np.empty(n)
        lng[from_hot] = hotspots["lng"].to_numpy()[hs_idx]
        lat[from_hot] = hotspots["lat"].to_numpy()[hs_idx]
        dlng, dlat = _offset_m(rng, lat[from_hot], 120.0)
        lng[from_hot] += dlng
        lat[from_hot] += dlat
        pw = grids["pop_weight"].to_numpy(dtype=float)
        g_idx = rng.choice(len(grids), size=(~from_hot).sum(), p=pw / pw.sum())
        lng[~from_hot], lat[~from_hot] = _sample_in_polygons(rng, grids.geometry.to_numpy(), g_idx)

        # category: by source mix, tilted by hotspot kind and the wage-arrears season
        cats = self._categories(rng, source_is_grid, from_hot, hotspots["kind"].to_numpy()[hs_idx] if len(hs_idx) else
                                np.array([], dtype=object), _season_multiplier(days)[day_idx])

        minutes = np.where(source_is_grid, rng.normal(13 * 60, 150, n), rng.normal(19 * 60, 240, n))
        minutes = np.clip(minutes, 0, 24 * 60 - 1).astype(np.int64)
        occurred = days.to_numpy()[day_idx] + minutes.astype("timedelta64[m]")
        frame = pd.DataFrame({
            "source": np.where(source_is_grid, "grid", "police"),
            "occurred": occurred, "lng": lng, "lat": lat, "category_code": cats,
            "hotspot": np.where(from_hot, "", ""),
        })
        hot_kind = np.full(n, "", dtype=object)
        hot_kind[from_hot] = hotspots["kind"].to_numpy()[hs_idx]
        frame["hotspot"] = hot_kind
        return frame

    def _hotspots(self, rng: np.random.Generator, grids) -> pd.DataFrame:
        count = {"market": 12, "construction": 10, "old_compound": 18}
        pw = grids["pop_weight"].to_numpy(dtype=float)
        rows = []
        for kind, k in count.items():
            g = rng.choice(len(grids), size=k, replace=False, p=pw / pw.sum())
            x, y = _sample_in_polygons(rng, grids.geometry.to_numpy(), g)
            for i in range(k):
                rows.append({"kind": kind, "lng": x[i], "lat": y[i], "weight": float(rng.gamma(2.0, 1.0))})
        return pd.DataFrame(rows)

    def _categories(self, rng, is_grid, from_hot, kinds, season) -> np.ndarray:
        n = len(is_grid)
        out = np.empty(n, dtype=object)
        g_codes = np.array([t[3] for t in GRID_TYPES])
        g_w = np.array([t[2] for t in GRID_TYPES], dtype=float)
        p_codes = np.array([t[3] for t in POLICE_TYPES])
        p_w = np.array([t[2] for t in POLICE_TYPES], dtype=float)
        out[is_grid] = rng.choice(g_codes, size=is_grid.sum(), p=g_w / g_w.sum())
        out[~is_grid] = rng.choice(p_codes, size=(~is_grid).sum(), p=p_w / p_w.sum())
        # hotspot kinds pull their own categories
        hot_pos = np.flatnonzero(from_hot)
        for kind, (_, favoured) in HOTSPOT_KINDS.items():
            sel = hot_pos[(kinds == kind) & (rng.random(len(hot_pos)) < 0.6)]
            codes = np.array(list(favoured))
            w = np.array(list(favoured.values()), dtype=float)
            out[sel] = rng.choice(codes, size=len(sel), p=w / w.sum())
        # wage-arrears season: re-label a share of events to MD1001 in proportion to the multiplier
        extra = rng.random(n) < 0.06 * (season - 1)
        out[extra] = "MD1001"
        # each source reports only what its own code list can express
        out[~is_grid & ~np.isin(out, p_codes)] = "QT"
        out[is_grid & ~np.isin(out, g_codes)] = "QT"
        return out

    def _inject_anomalies(self, rng: np.random.Generator, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Single-cell spikes and spread clusters in recent weeks; returns (extra events, truth)."""
        week0 = (self.end_date - pd.Timedelta(days=self.end_date.day_of_week))  # Monday of the last week
        grids = self.areas.grids.reset_index(drop=True)
        pw = grids["pop_weight"].to_numpy(dtype=float)
        extra, truth = [], []
        plan = [("spike", 1, (8, 16))] * 16 + [("cluster", 7, (3, 5))] * 6
        for i, (kind, ncells, (lo, hi)) in enumerate(plan):
            weeks_back = 0 if i % 4 == 0 else int(rng.integers(1, 26))
            start = week0 - pd.Timedelta(weeks=weeks_back)
            g = rng.choice(len(grids), p=pw / pw.sum())
            cx, cy = _sample_in_polygons(rng, grids.geometry.to_numpy(), np.array([g]))
            center = h3.latlng_to_cell(float(cy[0]), float(cx[0]), TRUTH_RES)
            cells = [center] if ncells == 1 else list(h3.grid_disk(center, 1))[:ncells]
            code = str(rng.choice(["MD02", "MD1001", "MD9902", "MD15", "CG", "MD09"]))
            src = "grid" if code in ("CG",) else str(rng.choice(["grid", "police"]))
            for cell in cells:
                k = int(rng.integers(lo, hi + 1))
                clat, clng = h3.cell_to_latlng(cell)
                jlng, jlat = _offset_m(rng, np.full(k, clat), 60.0)
                when = start + pd.to_timedelta(rng.integers(0, 7 * 24 * 60 - 1, k), unit="m")
                when = when[when <= self.end_date + pd.Timedelta(hours=23, minutes=59)]
                k = len(when)
                if not k:
                    continue
                extra.append(pd.DataFrame({"source": src, "occurred": when.to_numpy(), "lng": clng + jlng[:k],
                                           "lat": clat + jlat[:k], "category_code": code, "hotspot": ""}))
                truth.append({"anomaly_id": i, "kind": kind, "cell": cell, "week_start": start.date().isoformat(),
                              "category_code": code, "source": src, "extra_events": k})
        return pd.concat(extra, ignore_index=True), pd.DataFrame(truth)

    # ------------------------------------------------------------------ process fields
    def _process(self, rng: np.random.Generator, ev: pd.DataFrame) -> pd.DataFrame:
        n = len(ev)
        export_time = self.end_date + pd.Timedelta(hours=23, minutes=59)
        report_delay = np.where(ev["source"] == "grid", rng.exponential(40, n), rng.exponential(3, n))
        reported = ev["occurred"] + pd.to_timedelta(report_delay, unit="m")
        reported = reported.where(reported <= export_time, export_time)
        prefix = ev["category_code"].map(_prefix)
        sla = prefix.map(SLA_DAYS).to_numpy(dtype=float)
        due = reported + pd.to_timedelta(sla, unit="D")
        on_site = (ev["source"] == "grid").to_numpy() & (rng.random(n) < 0.45)
        handle_days = np.where(on_site, rng.exponential(0.1, n), rng.gamma(1.6, sla / 2.4))
        handle_days = handle_days * np.where(rng.random(n) < 0.06, 3.0, 1.0)  # a slow tail → overdue cases
        closed = reported + pd.to_timedelta(handle_days, unit="D")
        is_closed = (closed <= export_time).to_numpy()
        # open cases are somewhere along the six stages, in proportion to elapsed share of handling time
        elapsed = ((export_time - reported).dt.total_seconds() / 86400.0).to_numpy()
        stage_idx = np.clip((elapsed / np.maximum(handle_days, 1e-6) * 5).astype(int), 0, 5)
        status = np.where(is_closed, CLOSED, np.array(STAGES, dtype=object)[stage_idx])
        u = rng.random(n)
        outcome = np.where(u < 0.86, "化解", np.where(u < 0.95, "未化解", np.where(u < 0.98, "转诉讼", "转仲裁")))
        satisfaction = np.where(rng.random(n) < 0.6, rng.choice([5, 5, 5, 4, 4, 3, 2], n), np.nan)
        return pd.DataFrame({
            "reported": reported, "due": due, "closed": closed.where(is_closed),
            "status": status, "outcome": np.where(is_closed, outcome, None),
            "on_site": np.where(is_closed, on_site, False),
            "satisfaction": np.where(is_closed, satisfaction, np.nan),
            "handle_days": handle_days,  # (the flow log's steps: stage k entered at reported + k/5 of it)
        })

    # ------------------------------------------------------------------ exports
    def generate(self, out_dir: Path) -> DemoResult:
        out_dir = Path(out_dir)
        truth_dir = out_dir / "truth"
        truth_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(self.seed)

        base = self._base_events(rng)
        anomalies, anomaly_truth = self._inject_anomalies(rng, base)
        ev = pd.concat([base, anomalies], ignore_index=True).sort_values("occurred", kind="stable")
        ev = ev.reset_index(drop=True)
        ev = pd.concat([ev, self._process(rng, ev)], axis=1)

        # cross-source duplicates: a share of police matters also reported by the grid worker
        police_pos = np.flatnonzero((ev["source"] == "police").to_numpy())
        mappable = ev["category_code"].iloc[police_pos].isin(list(POLICE_TO_GRID_CODE)).to_numpy()
        dup_pos = police_pos[mappable & (rng.random(len(police_pos)) < self.link_share)]
        dup = ev.iloc[dup_pos].copy()
        dlng, dlat = _offset_m(rng, dup["lat"].to_numpy(), 15.0)
        dup["lng"] += dlng
        dup["lat"] += dlat
        lag = pd.to_timedelta(rng.uniform(0.3, 8.0, len(dup)), unit="h")
        dup["reported"] = dup["reported"] + lag
        dup["occurred"] = dup["occurred"] + lag / 2
        export_time = self.end_date + pd.Timedelta(hours=23, minutes=59)
        keep = (dup["reported"] <= export_time).to_numpy()
        dup, dup_pos = dup[keep], dup_pos[keep]
        dup["source"] = "grid"
        grid_cat = {app: cat for app, _, _, cat in GRID_TYPES}
        dup["category_code"] = dup["category_code"].map(POLICE_TO_GRID_CODE).map(grid_cat)
        dup["on_site"] = False
        dup["dup_of"] = dup_pos
        ev["dup_of"] = -1
        ev = pd.concat([ev, dup], ignore_index=True)

        ev["src_id"] = self._source_ids(ev)
        grid_rows = ev[ev["source"] == "grid"]
        police_rows = ev[ev["source"] == "police"]
        earlier, final = self._status_updates(grid_rows)
        ev.loc[final.index, final.columns] = final  # the truth is the state after the update
        grid_files, update_files = self._write_grid(rng, earlier, final, out_dir)
        # the cases the later export closes were shown open by the earlier export, dated (as every demo export) at
        # the end: their close step would precede that export and read as a reopening. The later export closes them
        closed_later = set(grid_rows.loc[final.index[final["status"] == CLOSED], "src_id"])
        flow_files = (self._write_flow(grid_rows, out_dir, "事件编号", "网格巡查上报", closed_later)
                      + self._write_flow(police_rows, out_dir, "接警单编号", "非警务警情"))
        police_files = self._write_police(rng, police_rows, out_dir)

        # ground truth
        truth = ev[["src_id", "source", "occurred", "reported", "lng", "lat", "category_code", "status", "closed",
                    "due", "outcome", "hotspot"]].copy()
        truth["event_id"] = truth["source"] + ":" + truth["src_id"]
        truth.drop(columns="src_id").to_parquet(truth_dir / "events.parquet", index=False)
        links = pd.DataFrame({"grid_event_id": "grid:" + ev.loc[ev["dup_of"] >= 0, "src_id"].to_numpy(),
                              "police_event_id": "police:" + ev["src_id"].to_numpy()[ev.loc[ev["dup_of"] >= 0, "dup_of"]
                                                                                   .to_numpy()]})
        links.to_csv(truth_dir / "links.csv", index=False)
        anomaly_truth.to_csv(truth_dir / "anomalies.csv", index=False)
        meta = {"seed": self.seed, "n_events": int(len(ev)), "years": self.years,
                "end_date": self.end_date.date().isoformat(), "truth_h3_resolution": TRUTH_RES,
                "grid_rows": int(len(grid_rows)), "police_rows": int(len(police_rows)),
                "note": "synthetic demo data for 汕尾市城区: villages, grids, people and events are invented"}
        (truth_dir / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        return DemoResult(out_dir, tuple(grid_files), tuple(police_files), truth_dir, int(len(ev)),
                          int(len(grid_rows)), int(len(police_rows)), tuple(update_files),
                          self.end_date + pd.Timedelta(days=1) - pd.Timedelta(seconds=5), tuple(flow_files))

    def _write_flow(self, rows: pd.DataFrame, out_dir: Path, id_header: str, system: str,
                    closed_later: set[str] = frozenset(), weeks: int = FLOW_WEEKS) -> list[Path]:
        """A platform's case-flow log (流转记录): each step of the cases open at some time in the last
        ``weeks`` weeks — the six stages in turn, stage k entered k/5 of the way through the case's handling time
        (as the exports' own stage is drawn), then 已办结 at its close — so that a past week's backlog knows each
        case's stage then. Draws nothing at random: every other file stays as it was."""
        export_time = self.end_date + pd.Timedelta(hours=23, minutes=59)
        reported = rows["reported"].to_numpy()
        handle = pd.to_timedelta(rows["handle_days"].to_numpy(), unit="D").to_numpy()
        closed = reported + handle
        until = np.minimum(closed, np.datetime64(export_time))
        keep = until >= np.datetime64(export_time - pd.Timedelta(weeks=weeks))
        ids, reported, handle, closed, until = (a[keep] for a in (rows["src_id"].to_numpy(), reported, handle,
                                                                   closed, until))
        steps = []
        for k, stage in enumerate(STAGES):
            at = reported + handle * k / 5
            # (a case settled on the spot within seconds records its report and its close only)
            on = ((at < until - np.timedelta64(1, "s")) & (handle >= np.timedelta64(5, "s"))) if k \
                else np.ones(len(ids), dtype=bool)
            steps.append(pd.DataFrame({id_header: ids[on], "环节": stage, "t": at[on]}))
        done = (closed <= np.datetime64(export_time)) & ~np.isin(ids, list(closed_later))
        steps.append(pd.DataFrame({id_header: ids[done], "环节": CLOSED, "t": closed[done]}))
        flow = pd.concat(steps, ignore_index=True).sort_values(["t", id_header], kind="stable")
        flow["操作时间"] = pd.to_datetime(flow.pop("t")).dt.strftime("%Y-%m-%d %H:%M:%S")
        path = out_dir / f"流转记录_{system}_{self.end_date:%Y%m%d}.csv"
        flow.to_csv(path, index=False, encoding="utf-8-sig")
        return [path]

    def _tiers(self, source: str, rows: pd.DataFrame, town: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """办理层级 and 派单方式 of each row, drawn from their own stream (seeded by seed and source) so that
        every other column stays as it was. Towns differ in how much their villages settle (镇村联动 is
        stronger in some), and a case past its due time has often gone up a tier."""
        rng = np.random.default_rng([self.seed, 1 if source == "grid" else 2])
        n = len(rows)
        shares = np.array([TIER_SHARES[TIER_KIND.get(c, "other")] for c in rows["category_code"]])
        town_ids = pd.factorize(town, sort=True)[0]
        habit = 0.75 + 0.1 * (town_ids % 5)  # 0.75 … 1.15 times the village share
        village = np.clip(shares[:, 0] * habit, 0.05, 0.95)
        shares = np.column_stack([village, shares[:, 1:] * ((1 - village) / shares[:, 1:].sum(axis=1))[:, None]])
        tier = (rng.random(n)[:, None] > np.cumsum(shares, axis=1)[:, :-1]).sum(axis=1)
        export_time = self.end_date + pd.Timedelta(hours=23, minutes=59)
        late = (rows["closed"].fillna(export_time) > rows["due"]).to_numpy()
        tier = np.where(late & (rng.random(n) < 0.5), np.minimum(tier + 1, 3), tier)
        on_site = rows["on_site"].astype(bool).to_numpy()
        tier = np.where(on_site, 0, tier)
        dual = ~on_site & (rng.random(n) < DUAL_SHARE[source])
        return TIER_WORDS[tier], np.where(dual, "双派", "单派")

    def _source_ids(self, ev: pd.DataFrame) -> np.ndarray:
        day = ev["reported"].dt.strftime("%Y%m%d").to_numpy()
        seq = ev.groupby([ev["source"], day]).cumcount().to_numpy() + 1
        county = str(self.areas.county["code"].iloc[0])
        grid_ids = np.char.add(np.char.add("WG" + county, day.astype(str)), np.char.zfill(seq.astype(str), 5))
        police_ids = np.char.add(np.char.add("J" + county, day.astype(str)), np.char.zfill(seq.astype(str), 5))
        return np.where(ev["source"] == "grid", grid_ids, police_ids)

    def _place_names(self, lng: np.ndarray, lat: np.ndarray) -> pd.DataFrame:
        from geodata.areas import assign_areas

        codes = assign_areas(self.areas, lng=lng, lat=lat)
        names = pd.concat([self.areas.towns[["code", "name"]], self.areas.villages[["code", "name"]],
                           self.areas.grids[["code", "name"]]]).set_index("code")["name"]
        return pd.DataFrame({"grid_code": codes["grid_code"].to_numpy(),
                             "town": codes["town_code"].map(names).fillna("").to_numpy(),
                             "village": codes["village_code"].map(names).fillna("").to_numpy(),
                             "grid_name": codes["grid_code"].map(names).fillna("").to_numpy()})

    def _status_updates(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The grid exports as the platform wrote them a week before the end (``earlier``: every row), and the
        rows a later export carries again with a new status (``final``, a subset): cases closed in the last
        week, shown open in the earlier export, and a few cases closed before it that came back open (重开:
        the complainant was not satisfied). Drawn from their own stream, so every other column stays as it was."""
        rng = np.random.default_rng([self.seed, 3])
        snapshot = self.end_date - pd.Timedelta(days=7)
        closed_since = (rows["reported"] < snapshot) & (rows["closed"] >= snapshot)
        recent = rows["reported"] >= snapshot - pd.Timedelta(days=60)
        reopened = (rows["closed"] < snapshot - pd.Timedelta(days=2)) & recent & (rng.random(len(rows)) < REOPEN_SHARE)
        earlier = rows.copy()
        open_fields = {"closed": pd.NaT, "outcome": None, "on_site": False, "satisfaction": np.nan}
        for field, value in open_fields.items():
            earlier.loc[closed_since, field] = value
        elapsed = (snapshot - rows["reported"]).dt.days
        earlier.loc[closed_since, "status"] = np.where(elapsed[closed_since] < 7, STAGES[3], STAGES[4])
        final = rows.loc[closed_since | reopened, ["status", "closed", "outcome", "on_site", "satisfaction"]].copy()
        back = reopened[final.index]
        for field, value in {**open_fields, "status": STAGES[4]}.items():
            final.loc[back, field] = value
        return earlier, final

    def _write_grid(self, rng, rows: pd.DataFrame, final: pd.DataFrame, out_dir: Path
                    ) -> tuple[list[Path], list[Path]]:
        """The grid exports of ``rows`` (the earlier states), and the later export of the ``final`` states."""
        n = len(rows)
        code_of = {}
        for app_code, name, _, cat in GRID_TYPES:
            code_of.setdefault(cat, (app_code, name))
        app = rows["category_code"].map(code_of)
        lng, lat = rows["lng"].to_numpy(), rows["lat"].to_numpy()
        is_bd = rng.random(n) < 0.2
        g_lng, g_lat = wgs84_to_gcj02(lng=lng, lat=lat)
        b_lng, b_lat = wgs84_to_bd09(lng=lng, lat=lat)
        out_lng = np.where(is_bd, b_lng, g_lng).round(6)
        out_lat = np.where(is_bd, b_lat, g_lat).round(6)
        places = self._place_names(lng, lat)
        prefix = rows["category_code"].map(_prefix).to_numpy()
        words = [GRID_WHAT_MD.get(c, GRID_WHAT[p]) for c, p in zip(rows["category_code"], prefix, strict=True)]
        what = [w[i % len(w)] for i, w in zip(rng.integers(0, 12, n), words, strict=True)]
        road = np.array(ROADS)[rng.integers(0, len(ROADS), n)]
        text = [GRID_TEXT[p].format(place=v or t, what=w, road=r)
                for p, v, t, w, r in zip(prefix, places["village"], places["town"], what, road, strict=True)]
        fmt = "%Y-%m-%d %H:%M:%S"
        frame = pd.DataFrame({
            "事件编号": rows["src_id"].to_numpy(),
            "上报时间": rows["reported"].dt.strftime(fmt).to_numpy(),
            "发生时间": rows["occurred"].dt.strftime(fmt).to_numpy(),
            "事件类型代码": [a[0] for a in app], "事件类型": [a[1] for a in app],
            "事件描述": text,
            "详细地址": (places["town"] + places["village"] + road + pd.Series(rng.integers(1, 300, n)).astype(str)
                       + "号").to_numpy(),
            "经度": out_lng, "纬度": out_lat, "坐标系": np.where(is_bd, "BD09", "GCJ02"),
            "所属网格": places["grid_code"].fillna("").to_numpy(), "网格名称": places["grid_name"].to_numpy(),
            "上报人工号": np.char.add("WGY", np.char.zfill(rng.integers(1, 900, n).astype(str), 4)),
            "处理状态": rows["status"].to_numpy(),
            "办理期限": rows["due"].dt.strftime(fmt).to_numpy(),
            "办结时间": rows["closed"].dt.strftime(fmt).fillna("").to_numpy(),
            "处理结果": rows["outcome"].fillna("").to_numpy(),
            "是否现场处结": np.where(rows["on_site"].astype(bool), "是", "否"),
            "满意度评价": rows["satisfaction"].to_numpy(),
            "是否保密": np.where(rng.random(n) < 0.02, "是", "否"),
        })
        frame["办理层级"], frame["派单方式"] = self._tiers("grid", rows, places["town"])
        paths = []
        cutoff = self.end_date - pd.Timedelta(days=29)
        recent = (rows["reported"] >= cutoff).to_numpy()
        years = rows["reported"].dt.year.to_numpy()
        for year in sorted(set(years[~recent])):
            p = out_dir / f"网格巡查上报_{year}.csv"
            frame[(~recent) & (years == year)].to_csv(p, index=False, encoding="utf-8")
            paths.append(p)
        p = out_dir / "网格巡查上报_最近30天.xlsx"
        frame[recent].to_excel(p, index=False, sheet_name="巡查上报", engine="openpyxl")
        _make_xlsx_deterministic(p)
        paths.append(p)
        # the later export: the same records, their new status (and close time, result, satisfaction)
        update = frame[rows.index.isin(final.index)].copy()
        now = final.loc[rows.index[rows.index.isin(final.index)]]
        update["处理状态"] = now["status"].to_numpy()
        update["办结时间"] = now["closed"].dt.strftime(fmt).fillna("").to_numpy()
        update["处理结果"] = now["outcome"].fillna("").to_numpy()
        update["是否现场处结"] = np.where(now["on_site"].astype(bool), "是", "否")
        update["满意度评价"] = now["satisfaction"].to_numpy()
        p = out_dir / f"状态更新_网格巡查上报_{self.end_date:%Y%m%d}.csv"
        update.to_csv(p, index=False, encoding="utf-8")
        return paths, [p]

    def _write_police(self, rng, rows: pd.DataFrame, out_dir: Path) -> list[Path]:
        n = len(rows)
        code_of = {}
        for p_code, name, _, cat in POLICE_TYPES:
            code_of.setdefault(cat, []).append((p_code, name))
        codes = [code_of.get(c, [("950100", "群众投诉")])[i % len(code_of.get(c, [1]))]
                 for c, i in zip(rows["category_code"], rng.integers(0, 2, n), strict=True)]
        unknown = rng.random(n) < 0.001
        codes = [UNKNOWN_POLICE_CODE if u else c for c, u in zip(codes, unknown, strict=True)]
        names = (np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)]
                 + np.array(GIVEN)[rng.integers(0, len(GIVEN), n)]
                 + np.where(rng.random(n) < 0.6, np.array(GIVEN)[rng.integers(0, len(GIVEN), n)], ""))
        phones = np.char.add(np.array(["138", "139", "137", "135", "188", "159", "186"])[rng.integers(0, 7, n)],
                             np.char.zfill(rng.integers(0, 10**8, n).astype(str), 8))
        lng, lat = rows["lng"].to_numpy(), rows["lat"].to_numpy()
        places = self._place_names(lng, lat)
        road = np.array(ROADS)[rng.integers(0, len(ROADS), n)]
        place_word = np.array(["农贸市场", "工地", "小区门口", "商铺", "大排档"])[rng.integers(0, 5, n)]
        why = np.array(["漏水", "占用楼道", "停车位", "装修", "树木遮挡", "排水沟"])[rng.integers(0, 6, n)]
        text = []
        for cat, nm, ph, r, pl, w, i in zip(rows["category_code"], names, phones, road, place_word, why,
                                            rng.integers(0, 1000, n), strict=True):
            tpl = POLICE_TEXT.get(cat, POLICE_TEXT["QT"])
            text.append(tpl.format(name=nm, phone=ph, road=r, place=pl, why=w, why2=["广场舞", "KTV", "装修"][i % 3],
                                   other=["同村村民", "朋友", "合伙人"][i % 3], amount=1000 + 37 * i, count=3 + i % 20))
        address_only = rng.random(n) < 0.12
        fmt = "%Y-%m-%d %H:%M:%S"
        frame = pd.DataFrame({
            "接警单编号": rows["src_id"].to_numpy(),
            "报警时间": rows["reported"].dt.strftime(fmt).to_numpy(),
            "报警类别代码": [c[0] for c in codes], "报警类别名称": [c[1] for c in codes],
            "报警内容": text,
            "案发地址": (places["town"] + places["village"] + road + pd.Series(rng.integers(1, 300, n)).astype(str)
                       + "号").to_numpy(),
            "经度": np.where(address_only, np.nan, lng.round(6)), "纬度": np.where(address_only, np.nan, lat.round(6)),
            "报警人姓名": names, "报警电话": phones,
            "管辖单位": np.array(POLICE_UNITS)[rng.integers(0, len(POLICE_UNITS), n)],
            "接警单状态": rows["status"].to_numpy(),
            "办理期限": rows["due"].dt.strftime(fmt).to_numpy(),
            "办结时间": rows["closed"].dt.strftime(fmt).fillna("").to_numpy(),
            "处置结果": rows["outcome"].fillna("").to_numpy(),
            "是否现场处结": np.where(rows["on_site"].astype(bool), "是", "否"),
        })
        frame["办理层级"], frame["派单方式"] = self._tiers("police", rows, places["town"])
        p = out_dir / "非警务警情.csv"
        frame.to_csv(p, index=False, encoding="utf-8-sig")  # police exports usually carry a BOM
        return [p]


def _make_xlsx_deterministic(path: Path) -> None:
    """openpyxl stamps creation/modification times into docProps/core.xml; pin them so reruns are identical."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as zin:
        items = [(info, zin.read(info.filename)) for info in zin.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info, data in items:
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2000-01-01T00:00:00Z", data)
            info.date_time = (2000, 1, 1, 0, 0, 0)
            zout.writestr(info, data)
