"""Redaction of personal information in free text, and keyed pseudonyms (pipelines/redact.py)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.redact import (
    CUES,
    HONORIFICS,
    REDACTION_TYPES,
    SURNAMES,
    TOKENS,
    MissingKeyError,
    hmac_key_from_env,
    is_valid_prc_id,
    prc_id_check_char,
    pseudonymise,
    redact,
    redact_text,
)

ID_TOKEN, MOBILE, LANDLINE, PLATE, NAME = (TOKENS[k] for k in REDACTION_TYPES)


def make_id(first17: str) -> str:
    return first17 + prc_id_check_char(first17)


VALID_ID = "11010519491231002X"  # the worked example of GB 11643-1999
VALID_ID_DIGIT = make_id("44030619850315123")


def wrong_check(id18: str) -> str:
    alternatives = [c for c in "0123456789X" if c != id18[-1]]
    return id18[:-1] + alternatives[0]


# ------------------------------------------------------------------------------------- ID numbers


def test_check_character_matches_the_standard_example():
    assert prc_id_check_char("11010519491231002") == "X"
    assert is_valid_prc_id(VALID_ID)
    assert is_valid_prc_id(VALID_ID.lower())
    assert is_valid_prc_id(VALID_ID_DIGIT)
    with pytest.raises(ValueError):
        prc_id_check_char("1234")


@pytest.mark.parametrize(
    "text",
    [
        f"当事人身份证号{VALID_ID}，住本村",
        f"身份证：{VALID_ID.lower()}。",
        f"证件号码 {VALID_ID_DIGIT} 已核实",
        f"身份证{VALID_ID_DIGIT[:6]} {VALID_ID_DIGIT[6:14]} {VALID_ID_DIGIT[14:]}号",  # grouped 6-8-4
        "身份证" + VALID_ID_DIGIT.translate(str.maketrans("0123456789", "０１２３４５６７８９")),  # full width
    ],
)
def test_valid_18_digit_ids_are_redacted(text):
    out = redact_text(text)
    assert ID_TOKEN in out
    assert not any(ch.isdigit() for ch in out)


@pytest.mark.parametrize(
    "number",
    [
        wrong_check(VALID_ID),  # checksum wrong
        wrong_check(VALID_ID_DIGIT),
        make_id("11010519491331002"),  # month 13, checksum right
        make_id("11010518991231002"),  # born 1899
        make_id("00010519491231002"),  # no such province
        "123456789012345678",  # an order number
    ],
)
def test_18_digit_numbers_that_are_not_ids_are_left_alone(number):
    text = f"工单号{number}已受理"
    assert redact_text(text) == text


def test_legacy_15_digit_ids():
    assert redact_text("老身份证110105491231002作废") == f"老身份证{ID_TOKEN}作废"
    # a grid code (12-digit village code + 3) has a plausible date inside: not an ID after 网格/编码
    for text in ("网格编码441502001001001", "网格441502001001001", "编号：441502001001001"):
        assert redact_text(text) == text
    assert redact_text("110105491331002") == "110105491331002"  # month 13


# ------------------------------------------------------------------------------------------ phones


@pytest.mark.parametrize(
    "phone",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+8613812345678",
        "+86 138 1234 5678",
        "0086-13812345678",
        "(+86)13912345678",
        "19912345678",
        "１３８１２３４５６７８",
    ],
)
def test_mobile_numbers(phone):
    assert redact_text(f"报警人电话{phone}，称") == f"报警人电话{MOBILE}，称"


@pytest.mark.parametrize("number", ["12812345678", "1381234567", "138123456789", "23812345678"])
def test_not_mobile_numbers(number):
    text = f"编号{number}号"
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "phone",
    ["0755-83456789", "075583456789", "010-62345678", "(0755)83456789", "（0755）83456789",
     "0755 8345678", "0755-83456789-123", "0755-83456789转123", "０７５５－８３４５６７８９"],
)
def test_landlines(phone):
    assert redact_text(f"联系电话{phone}。") == f"联系电话{LANDLINE}。"


@pytest.mark.parametrize("text", ["0755-123", "2021-12345678", "400-123-4567", "共计0.5万元"])
def test_not_landlines(text):
    assert redact_text(text) == text


# ------------------------------------------------------------------------------------------ plates


@pytest.mark.parametrize(
    "plate", ["粤A12345", "粤BD12345", "粤B12345D", "京A1234学", "粤A·12345", "沪AF1234", "粤Ａ１２３４５", "粤a12345"]
)
def test_plates(plate):
    assert redact_text(f"车牌{plate}的车辆") == f"车牌{PLATE}的车辆"


@pytest.mark.parametrize("text", ["粤A1234", "粤ABCDEF", "粤I12345", "京ICP备12345678号", "沪深300指数", "A12345"])
def test_not_plates(text):
    assert redact_text(text) == text


# ------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("当事人张三称邻居占用楼道", f"当事人{NAME}称邻居占用楼道"),
        ("报警人王小明报警称", f"报警人{NAME}报警称"),
        ("来电人：李红反映", f"来电人：{NAME}反映"),
        ("业主欧阳娜娜投诉物业", f"业主{NAME}投诉物业"),
        ("租客刘某拖欠房租", f"租客{NAME}拖欠房租"),
        ("张某某与李某发生口角", f"{NAME}与{NAME}发生口角"),
        ("当事人张三、李四与王五发生纠纷", f"当事人{NAME}、{NAME}与{NAME}发生纠纷"),
        ("业主王女士来电", f"业主{NAME}女士来电"),
        ("陈先生称", f"{NAME}先生称"),
        ("物业经理刘建国不作为", f"物业经理{NAME}不作为"),
        ("王副主任说", f"{NAME}副主任说"),
        ("一名姓王的男子", f"一名姓{NAME}的男子"),
        ("刘姓男子醉酒闹事", f"{NAME}姓男子醉酒闹事"),
        ("他叫陈小明，今年十岁", f"他叫{NAME}，今年十岁"),
        ("工人赵大勇讨薪", f"工人{NAME}讨薪"),
        ("向王先生了解情况", f"向{NAME}先生了解情况"),
        ("祝陈书记工作顺利", f"祝{NAME}书记工作顺利"),
        ("王伟报称与邻居因漏水发生争执", f"{NAME}报称与邻居因漏水发生争执"),
        ("民警到场后，李娜反映路灯损坏", f"民警到场后，{NAME}反映路灯损坏"),
        ("萧红芳来电称老板欠薪", f"{NAME}来电称老板欠薪"),
        ("洪小兵投诉噪音", f"{NAME}投诉噪音"),
    ],
)
def test_names_in_context(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "张贴告示",
        "小区门口张贴告示，提醒居民注意安全",
        "王府井大街人流量大",
        "李子园小区路灯不亮",
        "业主方面表示不满",
        "工人文化宫门口有人摆摊",
        "居民楼下噪音扰民",
        "保安师傅说门禁坏了",
        "班主任老师说",
        "于某日晚间发生",
        "向某部门反映情况",
        "老百姓的事无小事",
        "请问贵姓",
        "高楼下有人乱扔垃圾",
        "有话向市长说",
        "业主委员会召开会议",
        "员工宿舍漏水",
        "维修师傅未上门",
        "项目经理称工期延误",
        "常务副市长主持会议",
        "公安局长带队检查",
        "语文老师换了五个",
        "旁边饭店老板称",
        "业主向物业反映",
        "周边居民反映噪音",
        "有关部门反映",
        "向记者反映情况",
        "万科称将整改",
        "古话说得好",
        "马上报警",
        "老板赖账不还",
        "居民洪水过后返家",
    ],
)
def test_ordinary_words_are_not_names(text):
    assert redact_text(text) == text


@pytest.mark.xfail(strict=True, reason="known limitation: a bare name with no cue word is not detected")
def test_bare_names_without_cue_are_missed():
    assert NAME in redact_text("张三与李四发生纠纷")


def test_everything_outside_a_match_is_kept_verbatim():
    text = "　当事人：张三（男），手机１３８１２３４５６７８；地址：某某路１号。\n"
    assert redact_text(text) == f"　当事人：{NAME}（男），手机{MOBILE}；地址：某某路１号。\n"


def test_mixed_sentence():
    text = (
        f"报警人李四（身份证{VALID_ID}，电话13912345678）称，其车辆粤B12345被邻居王某划伤，"
        "物业电话0755-83456789无人接听。"
    )
    assert redact_text(text) == (
        f"报警人{NAME}（身份证{ID_TOKEN}，电话{MOBILE}）称，其车辆{PLATE}被邻居{NAME}划伤，"
        f"物业电话{LANDLINE}无人接听。"
    )


# ------------------------------------------------------------------------------------- Series API


def test_series_in_series_out_with_counts():
    s = pd.Series(
        [f"当事人张三，电话13812345678，身份证{VALID_ID}", None, "路灯不亮", np.nan, 13912345678, "陈先生，0755-83456789"],
        index=[10, 11, 12, 13, 14, 15],
        name="desc",
    )
    res = redact(s)
    text, counts = res  # a NamedTuple: unpacks
    assert list(text.index) == [10, 11, 12, 13, 14, 15]
    assert text.name == "desc"
    assert text[11] is None
    assert pd.isna(text[13])
    assert text[12] == "路灯不亮"
    assert text[14] == MOBILE  # a phone number that arrived as an integer
    assert counts == {"id_number": 1, "mobile": 2, "landline": 1, "plate": 0, "name": 2, "rows_changed": 3}


def test_string_dtype_is_kept_and_lists_accepted():
    s = pd.Series(["业主王某", None], dtype="string")
    out = redact(s).text
    assert out.dtype == s.dtype
    assert out[0] == f"业主{NAME}"
    assert redact(["陈先生"]).text.tolist() == [f"{NAME}先生"]
    assert redact(pd.Series([], dtype=object)).counts["rows_changed"] == 0


# -------------------------------------------------------------------------------------- hypothesis
_POOL = (
    "的是在不了有人这中大为上个我以要他时来用们生到作地出就分对成会可主发年动同工也能下过子说产种面而后多定"
    "行学法所民得经十三之进着等部度家电力里如水化自二理起小物现实加量都两体制机当使点从业本去把性好应开它合"
    "还因其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么比或但质气第道命此变条只"
    "没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常总次品式活设及特件长求老头基资"
    "边流级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研"
    "，。、；：！？（）　 \n"
)
_SAFE = "".join(sorted(set(_POOL) - set("".join(SURNAMES)) - set("某姓叫")))
safe_text = st.text(alphabet=_SAFE, max_size=30)

_REGIONS = sorted({"110105", "310104", "440306", "440304", "510107", "650102", "810000", "370202"})


@st.composite
def valid_ids(draw):
    region = draw(st.sampled_from(_REGIONS))
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date.today()))
    seq = draw(st.integers(0, 999))
    id18 = make_id(f"{region}{born:%Y%m%d}{seq:03d}")
    return id18 if draw(st.booleans()) else id18.lower()


@st.composite
def mobiles(draw):
    digits = "1" + draw(st.sampled_from("3456789")) + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=9, max_size=9)))
    style = draw(st.sampled_from(["plain", "space", "dash", "+86", "+86 "]))
    if style == "space":
        return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    if style == "dash":
        return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    if style.startswith("+86"):
        return style + digits
    return digits


@settings(max_examples=300, deadline=None)
@given(prefix=safe_text, pii=valid_ids(), suffix=safe_text)
def test_generated_ids_in_chinese_text_are_removed_and_the_rest_kept(prefix, pii, suffix):
    assert redact_text(prefix + pii + suffix) == prefix + ID_TOKEN + suffix


@settings(max_examples=300, deadline=None)
@given(prefix=safe_text, pii=mobiles(), suffix=safe_text)
def test_generated_mobiles_in_chinese_text_are_removed_and_the_rest_kept(prefix, pii, suffix):
    assert redact_text(prefix + pii + suffix) == prefix + MOBILE + suffix


@settings(max_examples=200, deadline=None)
@given(safe_text)
def test_text_without_pii_is_unchanged(text):
    assert redact_text(text) == text


_TOKENS_POOL = (
    list(CUES) + list(HONORIFICS) + sorted(SURNAMES)[:60]
    + ["某", "某某", "姓", "叫", "与", "、", "和", "，", "。", " ", "-", "+86", "86", "0755", "010", "(", ")",
       "[", "]", "姓名", "13812345678", "1", "0", "X", VALID_ID, VALID_ID[:6], VALID_ID[6:], "粤", "A", "D",
       "12345", "学", "的", "明", "小", "先", "生", "方面", "１", "３", "８"]
    + list(TOKENS.values())
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS_POOL), max_size=14).map("".join))
def test_redaction_is_idempotent(text):
    once = redact_text(text)
    assert redact_text(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_redaction_never_crashes_and_is_idempotent_on_any_unicode(text):
    once = redact_text(text)
    assert redact_text(once) == once


# -------------------------------------------------------------------------------------- pseudonyms
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def test_pseudonymise_is_deterministic_keyed_and_preserves_missing():
    s = pd.Series(["13812345678", None, "13812345678", np.nan, "张三"], index=list("abcde"), name="phone")
    p = pseudonymise(s, KEY)
    assert list(p.index) == list("abcde") and p.name == "phone"
    assert p["a"] == p["c"]
    assert p["b"] is None and p["d"] is None
    assert len(p["a"]) == 32 and all(c in "0123456789abcdef" for c in p["a"])
    assert p["a"] != p["e"]
    assert "13812345678" not in p.tolist()
    q = pseudonymise(s, OTHER_KEY)
    assert q["a"] != p["a"]
    assert pseudonymise(s, KEY).equals(p)


def test_pseudonymise_normalises_width_and_spaces_and_accepts_numbers():
    p = pseudonymise(["１３８１２３４５６７８", " 13812345678 ", 13812345678], KEY)
    assert p[0] == p[1] == p[2]


def test_pseudonymise_rejects_short_or_missing_keys():
    with pytest.raises(MissingKeyError):
        pseudonymise(["x"], b"")
    with pytest.raises(MissingKeyError):
        pseudonymise(["x"], b"short")
    with pytest.raises(TypeError):
        pseudonymise(["x"], "a string key")  # type: ignore[arg-type]


def test_hmac_key_from_env():
    hex_key = KEY.hex()
    assert hmac_key_from_env(environ={"ONEMAP_HMAC_KEY": hex_key}) == KEY
    assert hmac_key_from_env(environ={"ONEMAP_HMAC_KEY": "  " + hex_key.upper() + "\n"}) == KEY
    phrase = "综治中心的长密钥-不要提交到仓库"
    assert hmac_key_from_env(environ={"ONEMAP_HMAC_KEY": phrase}) == phrase.encode("utf-8")
    assert hmac_key_from_env(required=False, environ={}) is None
    with pytest.raises(MissingKeyError, match="ONEMAP_HMAC_KEY is not set"):
        hmac_key_from_env(environ={})
    with pytest.raises(MissingKeyError, match="ONEMAP_HMAC_KEY is not set"):
        hmac_key_from_env(environ={"ONEMAP_HMAC_KEY": "   "})
    with pytest.raises(MissingKeyError, match="too short"):
        hmac_key_from_env(environ={"ONEMAP_HMAC_KEY": "abcd"})


def test_hmac_key_from_process_environment(monkeypatch):
    monkeypatch.delenv("ONEMAP_HMAC_KEY", raising=False)
    with pytest.raises(MissingKeyError):
        hmac_key_from_env()
    monkeypatch.setenv("ONEMAP_HMAC_KEY", KEY.hex())
    assert pseudonymise(["a"], hmac_key_from_env())[0] == pseudonymise(["a"], KEY)[0]
