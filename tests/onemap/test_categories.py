"""The product vocabulary (onemap/categories.py) matches docs/product.md exactly."""
from __future__ import annotations

import dataclasses

import pytest

from onemap import categories as c

# docs/product.md, "Dispute and event categories"
PRODUCT_MD_DISPUTES = {
    "MD01": "婚姻家庭", "MD02": "邻里", "MD03": "房屋宅基地", "MD04": "合同/民间借贷债务", "MD05": "生产经营",
    "MD06": "损害赔偿", "MD07": "山林土地水利", "MD08": "征地拆迁", "MD09": "环境污染", "MD10": "劳动争议",
    "MD1001": "拖欠农民工工资", "MD11": "旅游", "MD12": "消费", "MD1201": "电子商务", "MD13": "医疗",
    "MD14": "道路交通事故", "MD15": "物业", "MD16": "知识产权", "MD17": "互联网", "MD99": "其他",
    "MD9901": "村务", "MD9902": "口角琐事",
}
PRODUCT_MD_GRID = {
    "CG": "城市管理", "ZA": "治安隐患", "AQ": "安全生产/消防", "HJ": "生态环境", "SY": "食药安全",
    "MS": "民生服务/困难救助", "ZH": "自然灾害/应急", "QT": "其他",
}
SUB_CODES = {"MD0401": "MD04", "MD1001": "MD10", "MD1201": "MD12", "MD9901": "MD99", "MD9902": "MD99"}


def test_codes_are_exactly_the_product_list():
    top_md = [f"MD{i:02d}" for i in range(1, 18)] + ["MD99"]
    assert set(c.ALL_CODES) == set(top_md) | set(SUB_CODES) | set(PRODUCT_MD_GRID)
    assert len(c.ALL_CODES) == len(set(c.ALL_CODES)) == 18 + 5 + 8
    assert set(c.TOP_LEVEL_CODES) == set(top_md) | set(PRODUCT_MD_GRID)
    assert set(c.DISPUTE_CODES) == set(top_md) | set(SUB_CODES)
    assert c.GRID_EVENT_CODES == ("CG", "ZA", "AQ", "HJ", "SY", "MS", "ZH", "QT")


def test_sub_codes_follow_their_parent():
    codes = list(c.ALL_CODES)
    for sub, parent in SUB_CODES.items():
        between = codes[codes.index(parent) + 1:codes.index(sub)]
        assert codes.index(sub) > codes.index(parent)
        assert all(c.CATEGORIES[b].parent == parent for b in between)


def test_names_match_product_md():
    for code, name in {**PRODUCT_MD_DISPUTES, **PRODUCT_MD_GRID}.items():
        assert c.category_name(code) == name, code
    assert c.category_name("MD0401") == "民间借贷/债务"


def test_every_category_is_complete():
    for code, cat in c.CATEGORIES.items():
        assert cat.code == code
        assert cat.name_zh and cat.name_en and cat.name_zh_full
        assert cat.domain == ("grid_event" if code in PRODUCT_MD_GRID else "dispute")
        assert cat.parent == SUB_CODES.get(code)
        assert cat.level == (2 if code in SUB_CODES else 1)
        assert cat.name_en.isascii()


def test_top_level_and_children():
    assert c.top_level("MD1001") == "MD10"
    assert c.top_level("MD10") == "MD10"
    assert c.top_level("MD0401") == "MD04"
    assert c.top_level("CG") == "CG"
    assert c.top_level(" md9902 ") == "MD99"  # case and spaces forgiven
    assert c.children("MD99") == ("MD9901", "MD9902")
    assert c.children("MD01") == ()
    assert all(c.top_level(code) in c.TOP_LEVEL_CODES for code in c.ALL_CODES)


def test_names_in_other_languages():
    assert c.category_name("MD14", "en") == "Road-traffic accident"
    assert c.category_name("MD01", "zh_full").startswith("婚姻家庭纠纷")
    assert c.category_name("ZA", "en") == "Public-security hazards"
    with pytest.raises(ValueError):
        c.category_name("MD01", "fr")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["MD18", "MD00", "XX", "", "MD1002", None, 1])
def test_unknown_codes_raise_a_key_error(bad):
    assert not c.is_valid_code(bad)
    with pytest.raises(KeyError):
        c.category_name(bad)
    with pytest.raises(c.UnknownCodeError):
        c.top_level(bad)


def test_unknown_code_message_lists_the_vocabulary():
    with pytest.raises(KeyError, match="unknown category code 'MD18'.*MD01"):
        c.category("MD18")


def test_vocabulary_is_frozen():
    with pytest.raises(TypeError):
        c.CATEGORIES["MD01"] = c.CATEGORIES["MD02"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.CATEGORIES["MD01"].name_zh = "x"  # type: ignore[misc]
    assert isinstance(c.ALL_CODES, tuple)


def test_flags():
    assert c.FLAG_KEYS == ("domestic_violence", "group_involved", "minor_involved", "escalation_risk")
    assert not set(c.FLAG_KEYS) & set(c.ALL_CODES)
    assert {f.key for f in c.FLAGS if f.sensitive} >= {"domestic_violence"}


def test_statuses_are_the_six_stages_then_closed():
    assert [s.name_zh for s in c.STAGES] == ["登记受理", "先行调解", "风险研判", "分类流转", "跟踪督办", "案结事了"]
    assert [s.name_zh for s in c.STATUSES] == [s.name_zh for s in c.STAGES] + ["已办结"]
    assert [s.order for s in c.STATUSES] == list(range(1, 8))
    assert len(set(c.STATUS_KEYS)) == 7 and all(k.isascii() and k.islower() for k in c.STATUS_KEYS)
    assert c.status("已办结").key == "closed"
    assert c.status("mediating").name_zh == "先行调解"
    assert c.CLOSED_STATUS_KEYS == {"settled", "closed"}
    # the SQL of every "closed" test (onemap.contracts.closed_status) closes exactly these statuses
    from onemap.contracts import CLOSED_STATUSES
    assert set(CLOSED_STATUSES) == {s.name_zh for s in c.STATUSES if s.closed}
    assert not c.status("跟踪督办").closed
    with pytest.raises(KeyError):
        c.status("调解中")


def test_outcomes():
    assert [o.name_zh for o in c.OUTCOMES] == ["化解", "未化解", "转诉讼", "转仲裁", "转信访"]
    assert c.outcome("化解").key == "resolved" and c.outcome("resolved").resolved
    assert [o.key for o in c.OUTCOMES if o.resolved] == ["resolved"]
    assert len(set(c.OUTCOME_KEYS)) == 5
    with pytest.raises(KeyError):
        c.outcome("调解成功")
