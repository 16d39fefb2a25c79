"""The product vocabulary as data: categories, flags, case statuses and outcomes.

This module is the kernel every layer imports, so it depends on nothing but the standard library.

Categories (docs/product.md, "Dispute and event categories"; domain-china.md §6.1):

* dispute categories ``MD01`` … ``MD17`` and ``MD99`` — the national 人民调解 statistical list, so
  the numeric part rolls up losslessly to 司法行政 reports — with five sub-codes (``MD0401``,
  ``MD1001``, ``MD1201``, ``MD9901``, ``MD9902``) whose parent is the first four characters;
* non-dispute grid-event domains ``CG ZA AQ HJ SY MS ZH QT`` (level 1 only).

``name_zh`` is the short name used in product.md (what the UI shows); ``name_zh_full`` is the
statistical-form name from domain-china.md §6.1 (what a 司法行政 report shows). Flags
(``domestic_violence`` …) are *not* categories: a record has one category and any number of flags.

Statuses are the six stages of the "4+2" case flow plus ``已办结``; outcomes are the closing results.
Every Chinese term has a stable English key that code, columns and URLs use.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Domain = Literal["dispute", "grid_event"]

__all__ = [
    "ALL_CODES",
    "CATEGORIES",
    "CLOSED_STATUS_KEYS",
    "DISPUTE_CODES",
    "FLAGS",
    "FLAG_KEYS",
    "GRID_EVENT_CODES",
    "OUTCOMES",
    "OUTCOME_KEYS",
    "STAGES",
    "STATUSES",
    "STATUS_KEYS",
    "TOP_LEVEL_CODES",
    "Category",
    "Flag",
    "Outcome",
    "Status",
    "UnknownCodeError",
    "category",
    "category_name",
    "children",
    "is_valid_code",
    "outcome",
    "status",
    "top_level",
]


class UnknownCodeError(KeyError):
    """A code that is not in the vocabulary (categories, statuses, outcomes or flags)."""

    def __str__(self) -> str:  # KeyError's default repr-quotes the message
        return str(self.args[0]) if self.args else "unknown code"


# --------------------------------------------------------------------------------------- categories


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name_zh: str
    name_en: str
    parent: str | None
    domain: Domain
    name_zh_full: str

    @property
    def level(self) -> int:
        """1 for a top-level code, 2 for a sub-code."""
        return 1 if self.parent is None else 2

    @property
    def top_level(self) -> str:
        return self.parent if self.parent is not None else self.code


# (code, name_zh [product.md], name_en [domain-china §6.1], parent, name_zh_full [§6.1])
_DISPUTE_ROWS: tuple[tuple[str, str, str, str | None, str], ...] = (
    ("MD01", "婚姻家庭", "Marriage & family (incl. inheritance, support)", None,
     "婚姻家庭纠纷(含继承、赡养、抚养)"),
    ("MD02", "邻里", "Neighbour disputes", None, "邻里纠纷"),
    ("MD03", "房屋宅基地", "Housing & homestead land", None, "房屋宅基地纠纷"),
    ("MD04", "合同/民间借贷债务", "Contract disputes (incl. private lending & debt)", None,
     "合同纠纷(含民间借贷/债务)"),
    ("MD0401", "民间借贷/债务", "Private lending & debt", "MD04", "民间借贷/债务纠纷"),
    ("MD05", "生产经营", "Business / production operations", None, "生产经营纠纷"),
    ("MD06", "损害赔偿", "Damage compensation (tort)", None, "损害赔偿纠纷"),
    ("MD07", "山林土地水利", "Forest, land & water rights (incl. land contracting)", None,
     "山林土地纠纷(含土地承包、水利)"),
    ("MD08", "征地拆迁", "Land expropriation & demolition", None, "征地拆迁纠纷"),
    ("MD09", "环境污染", "Environmental pollution (incl. noise)", None, "环境污染纠纷(含噪声)"),
    ("MD10", "劳动争议", "Labour disputes", None, "劳动争议纠纷"),
    ("MD1001", "拖欠农民工工资", "Wage arrears (migrant workers)", "MD10", "拖欠农民工工资纠纷"),
    ("MD11", "旅游", "Tourism", None, "旅游纠纷"),
    ("MD12", "消费", "Consumer disputes", None, "消费纠纷"),
    ("MD1201", "电子商务", "E-commerce", "MD12", "电子商务纠纷"),
    ("MD13", "医疗", "Medical disputes", None, "医疗纠纷"),
    ("MD14", "道路交通事故", "Road-traffic accident", None, "道路交通事故纠纷"),
    ("MD15", "物业", "Property-management disputes", None, "物业纠纷"),
    ("MD16", "知识产权", "Intellectual property", None, "知识产权纠纷"),
    ("MD17", "互联网", "Internet-related", None, "互联网纠纷"),
    ("MD99", "其他", "Other disputes", None, "其他纠纷"),
    ("MD9901", "村务", "Village-affairs management", "MD99", "村务管理纠纷"),
    ("MD9902", "口角琐事", "Petty quarrels / public order", "MD99", "口角琐事/公共秩序纠纷"),
)

_GRID_EVENT_ROWS: tuple[tuple[str, str, str], ...] = (
    ("CG", "城市管理", "City management"),
    ("ZA", "治安隐患", "Public-security hazards"),
    ("AQ", "安全生产/消防", "Work safety & fire"),
    ("HJ", "生态环境", "Ecological environment"),
    ("SY", "食药安全", "Food & drug safety"),
    ("MS", "民生服务/困难救助", "Livelihood services & hardship relief"),
    ("ZH", "自然灾害/应急", "Natural disasters & emergencies"),
    ("QT", "其他", "Other grid events"),
)


def _build_categories() -> Mapping[str, Category]:
    table: dict[str, Category] = {}
    for code, zh, en, parent, zh_full in _DISPUTE_ROWS:
        table[code] = Category(code, zh, en, parent, "dispute", zh_full)
    for code, zh, en in _GRID_EVENT_ROWS:
        table[code] = Category(code, zh, en, None, "grid_event", zh)
    return MappingProxyType(table)


CATEGORIES: Mapping[str, Category] = _build_categories()
"""code → Category, read-only, in table order (disputes first, sub-codes after their parent)."""

ALL_CODES: tuple[str, ...] = tuple(CATEGORIES)
TOP_LEVEL_CODES: tuple[str, ...] = tuple(c for c, cat in CATEGORIES.items() if cat.parent is None)
DISPUTE_CODES: tuple[str, ...] = tuple(c for c, cat in CATEGORIES.items() if cat.domain == "dispute")
GRID_EVENT_CODES: tuple[str, ...] = tuple(c for c, cat in CATEGORIES.items() if cat.domain == "grid_event")


def _norm_code(code: object) -> str:
    if not isinstance(code, str):
        raise UnknownCodeError(f"category code must be a string, got {type(code).__name__}: {code!r}")
    return code.strip().upper()


def is_valid_code(code: object) -> bool:
    """True if ``code`` (case-insensitive, surrounding spaces ignored) is a category code."""
    try:
        return _norm_code(code) in CATEGORIES
    except UnknownCodeError:
        return False


def category(code: str) -> Category:
    """The Category for ``code``; raises UnknownCodeError (a KeyError) for anything else."""
    key = _norm_code(code)
    try:
        return CATEGORIES[key]
    except KeyError:
        raise UnknownCodeError(
            f"unknown category code {code!r}; expected one of {', '.join(ALL_CODES)}"
        ) from None


def category_name(code: str, lang: Literal["zh", "en", "zh_full"] = "zh") -> str:
    """Display name of ``code``: ``"zh"`` (product name), ``"en"`` or ``"zh_full"`` (statistical form)."""
    cat = category(code)
    if lang == "zh":
        return cat.name_zh
    if lang == "en":
        return cat.name_en
    if lang == "zh_full":
        return cat.name_zh_full
    raise ValueError(f"lang must be 'zh', 'en' or 'zh_full', got {lang!r}")


def top_level(code: str) -> str:
    """The level-1 code a code rolls up to: ``MD1001 → MD10``, ``MD10 → MD10``, ``CG → CG``."""
    return category(code).top_level


def children(code: str) -> tuple[str, ...]:
    """Sub-codes of a top-level code (empty for codes without sub-codes)."""
    key = category(code).code
    return tuple(c for c, cat in CATEGORIES.items() if cat.parent == key)


# -------------------------------------------------------------------------------------------- flags


@dataclass(frozen=True, slots=True)
class Flag:
    key: str
    name_zh: str
    name_en: str
    sensitive: bool
    """Sensitive flags: at household points shown only aggregated to non-handling roles (product.md)."""


FLAGS: tuple[Flag, ...] = (
    Flag("domestic_violence", "家庭暴力", "Domestic violence", True),
    Flag("group_involved", "群体性", "Group involved (e.g. ≥5 parties)", False),
    Flag("minor_involved", "涉未成年人", "Minor involved", True),
    Flag("escalation_risk", "激化风险(民转刑/极端)", "Escalation risk (civil-to-criminal / extreme)", False),
)
FLAG_KEYS: tuple[str, ...] = tuple(f.key for f in FLAGS)
# events with these flags (domestic violence, minors) sit at household points: shown only aggregated (product.md)
SENSITIVE_FLAGS: list[str] = [f.key for f in FLAGS if f.sensitive]

# ------------------------------------------------------------------------------ statuses, outcomes


@dataclass(frozen=True, slots=True)
class Status:
    key: str
    name_zh: str
    name_en: str
    order: int
    """Position in the flow, 1…6 for the stages, 7 for 已办结."""
    is_stage: bool
    """One of the six "4+2" stages (False only for 已办结)."""
    closed: bool
    """Counts as closed (办结) for 办结率 / 超期 (open = not closed)."""


# 案结事了 is the last stage of the flow: the matter is settled, so it counts as closed; 已办结 is the
# plain "closed" that source systems export. Both are terminal.
STATUSES: tuple[Status, ...] = (
    Status("registered", "登记受理", "Registered", 1, True, False),
    Status("mediating", "先行调解", "Mediating first", 2, True, False),
    Status("assessing", "风险研判", "Risk assessment", 3, True, False),
    Status("routed", "分类流转", "Routed to a department", 4, True, False),
    Status("supervising", "跟踪督办", "Follow-up & supervision", 5, True, False),
    Status("settled", "案结事了", "Case concluded, matter settled", 6, True, True),
    Status("closed", "已办结", "Closed", 7, False, True),
)
STAGES: tuple[Status, ...] = tuple(s for s in STATUSES if s.is_stage)
STATUS_KEYS: tuple[str, ...] = tuple(s.key for s in STATUSES)
CLOSED_STATUS_KEYS: frozenset[str] = frozenset(s.key for s in STATUSES if s.closed)


@dataclass(frozen=True, slots=True)
class Outcome:
    key: str
    name_zh: str
    name_en: str
    resolved: bool
    """Counts in 化解率's numerator."""


OUTCOMES: tuple[Outcome, ...] = (
    Outcome("resolved", "化解", "Resolved", True),
    Outcome("unresolved", "未化解", "Not resolved", False),
    Outcome("to_litigation", "转诉讼", "Referred to litigation", False),
    Outcome("to_arbitration", "转仲裁", "Referred to arbitration", False),
    Outcome("to_petition", "转信访", "Referred to petition (信访)", False),
)
OUTCOME_KEYS: tuple[str, ...] = tuple(o.key for o in OUTCOMES)

_STATUS_LOOKUP: Mapping[str, Status] = MappingProxyType(
    {s.key: s for s in STATUSES} | {s.name_zh: s for s in STATUSES}
)
_OUTCOME_LOOKUP: Mapping[str, Outcome] = MappingProxyType(
    {o.key: o for o in OUTCOMES} | {o.name_zh: o for o in OUTCOMES}
)


def status(key_or_name: str) -> Status:
    """Look a status up by English key (``"mediating"``) or Chinese name (``"先行调解"``)."""
    try:
        return _STATUS_LOOKUP[key_or_name.strip() if isinstance(key_or_name, str) else key_or_name]
    except (KeyError, TypeError):
        raise UnknownCodeError(
            f"unknown status {key_or_name!r}; expected one of "
            + ", ".join(f"{s.key}/{s.name_zh}" for s in STATUSES)
        ) from None


def outcome(key_or_name: str) -> Outcome:
    """Look an outcome up by English key (``"resolved"``) or Chinese name (``"化解"``)."""
    try:
        return _OUTCOME_LOOKUP[key_or_name.strip() if isinstance(key_or_name, str) else key_or_name]
    except (KeyError, TypeError):
        raise UnknownCodeError(
            f"unknown outcome {key_or_name!r}; expected one of "
            + ", ".join(f"{o.key}/{o.name_zh}" for o in OUTCOMES)
        ) from None
