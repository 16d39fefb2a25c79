"""Redaction of personal information in free text, and keyed pseudonyms for identifiers.

Product rule (product.md "Hard rules", domain-china.md §2.4): names, ID numbers and phone numbers never
enter the analytics store raw. Free text (报警内容, 事件描述 …) goes through :func:`redact` before it is
stored as ``summary_redacted``; identifiers needed for de-duplication go through :func:`pseudonymise`
with a key held by the customer (:func:`hmac_key_from_env`), never one from the repository.

What :func:`redact` replaces, in this order (a later pass sees the earlier tokens, not the digits):

==============  ==============================================================  ============
type            rule                                                            token
==============  ==============================================================  ============
``id_number``   18-digit 居民身份证号码: region prefix, real birth date and the       ``[身份证]``
                ISO 7064 MOD 11-2 check character (X allowed), optionally
                grouped 6-8-4 with spaces/dashes; 15-digit legacy numbers with
                a region prefix and a real 19YYMMDD birth date
``mobile``      ``1[3-9]\\d{9}``, also written 3-4-4 with spaces/dashes, with an     ``[手机号]``
                optional ``+86``/``0086``/``86``/``(+86)`` prefix
``landline``    area code ``010``/``02x``/``0xxx`` (optionally in brackets) and a 7-8   ``[电话]``
                digit local number (not starting with 0), optional ``-``/``转`` extension
``plate``       province + letter + 5 (ordinary, ≤2 letters) or 6 (new-energy,        ``[车牌]``
                D/F rule) characters, or 4 + 挂/学/警/港/澳/领/使
``name``        Chinese names (common-surname list, :data:`SURNAMES`) in context,      ``[姓名]``
                see below
==============  ==============================================================  ============

Digits, Latin letters and punctuation are matched on a width-folded copy of the text, so full-width
``１３８１２３４５６７８`` and ``粤Ａ１２３４５`` are caught too; everything outside a match is returned
unchanged, character for character. All patterns are compiled once at import.

Names are the hard part: without a word segmenter every Chinese character is a possible given name.
A name (surname from :data:`SURNAMES` + 1-2 characters) is redacted only *in context*:

* after a cue word — 当事人/报警人/来电人/业主/租客/工人/老板/村民/丈夫/妻子/网格员/姓名/名叫, or a title
  written before the name (物业经理刘建国, 主任罗某某) … (:data:`CUES`);
* as the subject of a reporting verb at the start of a sentence (``王伟报称…``, ``，李娜反映…``: 报称/
  报警/来电/反映/投诉/举报/诉称/称/说), the usual opening of a 110 接警 text;
* before an honorific or title — 先生/女士/阿姨/师傅/老师/经理/书记/(副)主任 … (:data:`HONORIFICS`;
  the title is kept: ``王先生`` → ``[姓名]先生``);
* ``X某``, ``X某某``, ``X某甲`` (unless followed by 日/天/些/单位/公司 …: ``于某日``, ``向某部门``);
* ``姓X`` and ``X姓`` (not 百姓/贵姓/同姓/姓名/姓氏): only the surname is replaced, ``姓[姓名]的男子``,
  ``[姓名]姓男子``;
* a list around a redacted name, joined by 、/与/和/及/同/跟/或 (``当事人张三、李四与王五`` → all three;
  ``刘金祖、何军建、张海德同志`` → all three).

Every pass runs again until nothing changes (at most a few rounds), so ``redact`` is idempotent:
redacting already-redacted text changes nothing.

Trade-offs (deliberate, tested in tests/pipelines/test_redact.py):

* **Ordinary words survive**: ``张贴告示``, ``王府井``, ``李子园小区``, ``高楼``, ``方面`` have no cue, so they
  are left alone. After a cue, a list of common words that begin with a surname character
  (:data:`_NOT_NAMES`: 方面, 安全, 文化, 房屋, 高层 …) blocks ``业主方面``/``工人文化宫``; before a title,
  a list of words ending in a surname character (保安, 主任, 公安 …) blocks ``保安师傅``/``班主任老师``.
  Very ambiguous rare surnames (时, 和, 车, 区, 楼, 门, 全, 国, 海 …) are left out of :data:`SURNAMES`.
* **Misses (false negatives)**: a bare name with no cue (``张三与李四发生纠纷``), names with rare
  surnames, minority/transliterated names (阿卜杜…), nicknames (老王, 小李) and 1-character given names
  whose only character is a function word. A segmenter with person-name tagging would close part of
  this gap; it is not a dependency today.
* **Over-redaction**: a cue/title match may take one ordinary character after a 1-character-given
  name (``工人王明天来`` → ``工人[姓名]来`` eats 天), or a preposition that is also a surname before a
  title (mitigated for 于/向: ``向王先生`` → ``向[姓名]先生``). We prefer losing a character to leaking a name.
* ID numbers: a legacy 15-digit number is not redacted right after 网格/编码/编号/代码/单号 (15-digit grid
  codes have a valid-looking date inside); an 18-digit number whose checksum or birth date is wrong is
  not an ID and is left alone (order numbers, 工单号). Bank cards, e-mail, QQ/WeChat IDs and addresses
  are out of scope of this module.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CUES",
    "HONORIFICS",
    "REDACTION_TYPES",
    "SURNAMES",
    "TOKENS",
    "MissingKeyError",
    "RedactionResult",
    "hmac_key_from_env",
    "is_valid_prc_id",
    "prc_id_check_char",
    "pseudonymise",
    "redact",
    "redact_text",
]

REDACTION_TYPES: tuple[str, ...] = ("id_number", "mobile", "landline", "plate", "name")
TOKENS: Mapping[str, str] = {
    "id_number": "[身份证]",
    "mobile": "[手机号]",
    "landline": "[电话]",
    "plate": "[车牌]",
    "name": "[姓名]",
}

# ----------------------------------------------------------------------------------- width folding
# Full-width ASCII variants (U+FF01..FF5E) and the ideographic space map 1:1 onto ASCII, so a folded
# copy has the same length and match offsets apply to the original text.
_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}

# ------------------------------------------------------------------------------------- ID numbers
# First two digits of a 居民身份证号码 (province), plus 81/82/83 (港澳台居民居住证) and 9x (2023 外国人永久居留身份证).
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82 83".split()
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def prc_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character ('0'-'9' or 'X') for the first 17 digits of a PRC ID."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError(f"need exactly 17 ASCII digits, got {first17!r}")
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def _valid_date(y: int, m: int, d: int) -> bool:
    if not 1900 <= y <= _dt.date.today().year:
        return False
    try:
        _dt.date(y, m, d)
    except ValueError:
        return False
    return True


def _valid_region(digits: str) -> bool:
    return digits[:2] in _PROVINCES or digits[0] == "9"


def is_valid_prc_id(value: str) -> bool:
    """True for an 18-digit ID (region, birth date, MOD 11-2 check) or a 15-digit legacy ID (region, date).

    Full-width digits, surrounding spaces and separators between the 6-8-4 groups are accepted.
    """
    s = re.sub(r"[\s-]", "", str(value).translate(_FOLD)).upper()
    if len(s) == 18 and s[:17].isascii() and s[:17].isdigit() and (s[17].isdigit() or s[17] == "X"):
        return (
            _valid_region(s)
            and _valid_date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
            and prc_id_check_char(s[:17]) == s[17]
        )
    if len(s) == 15 and s.isascii() and s.isdigit():
        return _valid_region(s) and _valid_date(1900 + int(s[6:8]), int(s[8:10]), int(s[10:12]))
    return False


_RE_ID18 = re.compile(r"(?<![0-9])([0-9]{6})[ -]?([0-9]{8})[ -]?([0-9]{3}[0-9Xx])(?![0-9Xx])")
_RE_ID15 = re.compile(r"(?<![0-9])[0-9]{15}(?![0-9Xx])")
_CODE_CONTEXT = re.compile(r"(?:网格|编码|编号|代码|单号|订单|工单|流水号|批次)[号码:：\s]*$")

# ---------------------------------------------------------------------------------- phone numbers
_RE_MOBILE = re.compile(
    r"(?<![0-9])(?:(?:\+|00)?86[ -]?|\(\+?86\)[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}(?![0-9])"
)
_AREA = r"0(?:10|2[0-9]|[3-9][0-9]{2})"
_RE_LANDLINE = re.compile(
    rf"(?<![0-9])(?:\({_AREA}\)[ -]?|{_AREA}[ -]?)[1-9][0-9]{{6,7}}(?:(?:-|转)[0-9]{{1,5}})?(?![0-9])"
)

# ----------------------------------------------------------------------------------------- plates
_PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_LETTER = "A-HJ-NP-Za-hj-np-z"  # no I, O
_RE_PLATE = re.compile(
    rf"(?<![A-Za-z0-9])[{_PLATE_PROVINCES}][{_PLATE_LETTER}][·•・ -]?"
    rf"([{_PLATE_LETTER}0-9]{{4,6}})([挂学警港澳领使])?(?![A-Za-z0-9])"
)


def _plate_ok(tail: str, suffix: str | None) -> bool:
    t = tail.upper()
    n_letters = sum(c.isalpha() for c in t)
    if suffix:
        return len(t) == 4 and n_letters <= 1
    if len(t) == 5:
        return n_letters <= 2
    if len(t) == 6:  # new-energy: D/F + alnum + 4 digits (small) or 5 digits + D/F (large)
        return (t[0] in "DF" and t[2:].isdigit()) or (t[:5].isdigit() and t[5] in "DF")
    return False


# ------------------------------------------------------------------------------------------ names
# About 300 common surnames (百家姓 by modern frequency), 2-character ones first. Rare surnames that are
# mostly ordinary words in complaint text (时 和 车 区 楼 门 全 国 海 平 公 元 由 应 连 商 劳 农 党 …) are left
# out on purpose.
_COMPOUND_SURNAMES = (
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 钟离 端木 南宫 "
    "独孤 呼延 澹台 申屠 西门 百里 赫连 拓跋 万俟 闻人 左丘 单于"
).split()
_SINGLE_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖萧田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱洪赖江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武"
    "戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅"
    "童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳穆卓古吉缪简项芦麦褚娄窦戚"
    "岑景宫费卜冷晏席卫米柏宗瞿桂佟臧闵苟邬边卞姬仇栾隋刁沙荣巫寇桑郎甄丛仲虞敖巩佘池查麻苑迟邝官封谈匡鞠"
    "惠荆乐冀郁胥南储栗燕楚鄢谌奚皮粟冼蔺闻厉伊仝郜阚帅屠禹漆晁芮邸辜裘邰赫杭宿茅路郦谯逄钮郗亓濮隗邴茆糜"
    "蹇庹"
)
SURNAMES: frozenset[str] = frozenset(_COMPOUND_SURNAMES) | frozenset(_SINGLE_SURNAMES)

CUES: tuple[str, ...] = tuple(sorted(set(
    "当事人 当事双方 报警人 报案人 来电人 来访人 求助人 投诉人 举报人 反映人 申请人 被申请人 信访人 受害人 "
    "被害人 嫌疑人 肇事者 肇事司机 伤者 死者 患者 病人 家属 监护人 联系人 负责人 法定代表人 承包人 "
    "业主 租客 租户 住户 房东 房主 户主 工人 员工 务工人员 农民工 老板 包工头 工头 村民 居民 "
    "网格员 调解员 民警 辅警 司机 驾驶员 驾驶人 丈夫 妻子 前夫 前妻 儿子 女儿 儿媳 女婿 父亲 母亲 "
    "哥哥 弟弟 姐姐 妹妹 邻居 对方 姓名 名叫 叫做 名字叫 他叫 她叫 我叫 自称 市民 "
    "经理 主任 书记 老师 医生 律师 警官 局长 所长 科长 处长 站长 村长 社长 组长 队长".split()
), key=lambda s: (-len(s), s)))

HONORIFICS: tuple[str, ...] = tuple(sorted(set(
    "先生 女士 小姐 阿姨 师傅 大爷 大妈 大姐 大哥 大叔 大伯 大娘 奶奶 爷爷 老师 经理 老板 同志 主任 "
    "书记 警官 市长 县长 区长 镇长 乡长 村长 局长 所长 科长 处长 厂长 站长 院长 校长 医生 律师 总经理".split()
), key=lambda s: (-len(s), s)))

_CJK = "\u4e00-\u9fff"
# Characters that cannot be the 1st / 2nd character of a given name in running text (function words and
# the verbs that usually follow a name). Kept short for the 1st character: a stop there means "no name".
_STOP1 = "的了着过们和与及或在于称说等是被把将对向从到给让也都就还又再不没很去请局厅处所委办院站队科部室组司姓副村镇乡县市省街"
_STOP2 = _STOP1 + "讲道问答告诉因跟同为有地得已曾太最啊吧呢吗呀哦家父母妻夫儿哥弟姐妹来去报投举反要表拒找打骂欠拖占住之其这那此每各该多人发"

# Common words that start with a surname character: a "name" equal to or starting with one is not a name.
_NOT_NAMES = frozenset((
    # after cue words (业主方面, 工人文化宫, 居民安全, 丈夫常年 …)
    "方面 方便 方式 方案 方向 方法 方可 方位 安全 安置 安装 安排 安静 安心 文化 文件 文字 文物 高层 高楼 "
    "高温 高速 高度 高空 高压 高额 高级 高兴 高峰 高铁 常常 常年 常住 常用 常务 常规 白天 白色 白领 万元 "
    "万多 万余 万一 路面 路口 路段 路灯 路边 路上 路过 路线 路人 路政 房屋 房子 房产 房租 房价 房东 房间 "
    "房门 房主 房车 房地产 关于 关系 关注 关闭 关门 关心 关键 包括 包装 包子 任何 任意 任务 任职 曾经 "
    "曾多 程序 程度 施工 施肥 陈述 陈旧 陈列 孙子 孙女 周边 周围 周末 周期 周转 金额 金钱 金融 金属 "
    "钱款 钱财 钱包 余额 余款 余下 江边 江湖 林地 林业 林木 田地 田间 田园 石头 石材 石子 严重 严格 "
    "严厉 严禁 夏天 夏季 康复 成本 成立 成为 成熟 成员 成年 成绩 管理 管道 管辖 管控 管网 管子 管委 "
    "项目 宁愿 宁可 简单 简直 解决 解释 解除 解放 连续 连接 连日 连锁 党员 党委 党政 毛病 毛坯 许多 许可 "
    "应该 应当 应急 应用 齐全 左右 左边 左侧 尤其 尤为 谈话 谈判 封闭 封堵 封顶 迟迟 迟到 商铺 商户 商品 "
    "商场 商量 卫生 费用 申请 申报 申明 符合 舒服 舒适 毕业 毕竟 单位 单独 单元 单身 季度 季节 苗木 苗头 "
    "游客 游戏 辛苦 农民 农村 农业 农户 查询 查看 查处 查明 官方 官员 劳动 劳务 劳累 宿舍 邻里 童年 凌晨 "
    "凌乱 柴油 阳台 阳光 景点 景区 冷漠 米线 边上 仇恨 刁难 沙子 沙发 荣誉 仲裁 池塘 麻烦 乐意 乐观 郁闷 "
    "南方 南边 南侧 南门 储存 厉害 温度 温暖 温馨 易于 易燃 庞大 颜色 庄稼 祝福 焦急 焦点 甘心 龙头 "
    "陶瓷 顾客 顾及 顾虑 武器 武警 孔洞 向前 向上 向下 莫名 于是 于今 于此 杜绝 叶子 苏醒 陆续 陆地 "
    "范围 范畴 付款 付费 付出 段落 雷电 雷雨 马路 马上 马桶 胡同 胡乱 何时 何处 何况 何必 罗列 谢谢 "
    "谢绝 董事 黄色 黄昏 燕子 杨树 杨柳 钟表 钟点 汪洋 戴上 左手 右手 安居 蒙受 高发 包围 包含 包庇 房中 "
    "房内 房顶 房前 房后 房源 洪水 洪涝 洪峰 赖账 赖皮 "
    # brands and place names that can follow a cue or open a sentence (万科称…, 业主苏州人 …)
    "华为 苏宁 万达 万科 华润 金地 龙湖 古话 古人 古代 古城 "
    "苏州 常州 温州 柳州 杭州 郑州 兰州 徐州 金华 江西 江苏 南京 沈阳 成都 武汉 桂林 吉林 甘肃 包头"
).split())

# Words that end in a surname character: "<word><title>" is not "<surname><title>" (保安师傅, 班主任老师).
_NOT_BEFORE_TITLE = frozenset((
    "保安 公安 治安 平安 主任 责任 信任 担任 前任 现任 继任 时任 上任 专任 兼任 委任 中国 全国 外国 "
    "祖国 爱国 装修 维修 检修 返修 报修 物业 家长 队长 班长 科学 电工 木工 瓦工 焊工 水电 门卫 保洁 "
    "绿化 城管 交警 消防 派出所 居委 村委 街道 社区 医院 学校 公司 单位 小区 门口 楼下 楼上 负责 "
    "副书 副主 副市 副县 副区 副镇 副乡 副局 副所 副院 副校 常务 党支 支部 村支 承包 开发商 调任 "
    "历史 语文 音乐 课程 旁边 分管 主管 拜谢 感谢 致谢 答谢 多谢 数万 上万 几万 十万 百万 千万 近万 "
    "过程 工程 流程 校方 甲方 乙方 双方 各方 警方 资方 买方 卖方 官方 院方 厂方 店方 军方 "
).split())

_SUR = "|".join(sorted(SURNAMES, key=lambda s: (-len(s), s)))
_HON = "|".join(HONORIFICS)
_G1 = rf"(?!(?:{_HON}))[{_CJK}](?<![{_STOP1}])"
_G2 = rf"(?!(?:{_HON}))[{_CJK}](?<![{_STOP2}])"
_NAME = rf"(?:{_SUR})(?:{_G1})(?:{_G2})?"

_MOU_NOT_AFTER = (
    "日|天|时|月|年|些|个|种|类|人|事|物|项|次|处|地方|部门|单位|公司|企业|机构|机关|小区|村|镇|乡|街道|"
    "路段|店|厂|医院|学校|平台|网站|商家|品牌|银行|楼盘|酒店|工地|方面|地区|区域"
)
_RE_MOU = re.compile(rf"(?:{_SUR})某{{1,2}}+[甲乙丙丁]?(?!{_MOU_NOT_AFTER})")
_RE_CUE = re.compile(rf"(?<!\[)(?P<cue>{'|'.join(CUES)})(?P<sep>[:：]? ?)(?P<name>{_NAME})")
# A name as the subject of a reporting verb, at the start of a sentence: "王伟报称…", "，李娜反映…".
_REPORT_VERBS = "报称|报警|来电|反映|投诉|举报|诉称|自述|称|说"
_RE_SUBJECT = re.compile(rf"(?<![{_CJK}\]])(?P<name>{_NAME})(?={_REPORT_VERBS})")
_RE_TITLE = re.compile(rf"(?P<name>(?:{_SUR})(?:{_G1})?(?:{_G2})?)(?P<title>副?(?:{_HON}))")
# 姓王的男子 → 姓[姓名]的男子; 刘姓男子 → [姓名]姓男子 (not 百姓/贵姓/同姓/姓名/姓氏)
_RE_XING = re.compile(rf"(?<![百贵同])姓[是为叫]?(?P<name>{_SUR})|(?P<name2>{_SUR})姓(?![名氏])")
_CHAIN_ITEM = rf"(?:[、/]|与|和|及|同|跟|或|以及)(?:{_NAME}|(?:{_SUR})某{{1,2}}+)"
_RE_CHAIN = re.compile(rf"\[姓名\](?:{_CHAIN_ITEM})+")
# ... and the names before one: 刘金祖、何军建、[姓名] (one more per round of the fixed point).
_RE_BACKCHAIN = re.compile(rf"(?P<name>{_NAME}|(?:{_SUR})某{{1,2}}+)(?=(?:[、/]|与|和|及|或|以及)\[姓名\])")
_RE_CHAIN_ITEM = re.compile(rf"(?P<sep>[、/]|与|和|及|同|跟|或|以及)(?P<name>{_NAME}|(?:{_SUR})某{{1,2}}+)")
# Surnames that are also prepositions or verbs before a title: "向王先生", "祝陈书记" — prefer the match one
# character later.
_PARTICLE_SURNAMES = frozenset("于向祝")
# After a cue word these are (almost always) a preposition or 业主方/对方: 业主向物业反映, 居民于今年.
_CUE_SKIP_FIRST = frozenset("于向方")


def _is_common_word(name: str) -> bool:
    return any(name[:n] in _NOT_NAMES for n in range(2, len(name) + 1))


Spans = list[tuple[int, int]]
"""Absolute (start, end) offsets to replace with the pass's token; None or [] = leave the match alone."""


class _Text:
    """A text and its width-folded twin, edited in lock-step so offsets stay aligned.

    Patterns run on the folded copy; the spans they return are replaced by a token in both, and every
    character outside a span is copied from the original.
    """

    __slots__ = ("orig", "fold", "counts")

    def __init__(self, text: str) -> None:
        self.orig = text
        self.fold = text.translate(_FOLD)
        self.counts: Counter[str] = Counter()

    def sub(self, pattern: re.Pattern[str], kind: str, spans_of: Callable[[re.Match[str]], Spans | None]) -> None:
        token = TOKENS[kind]
        out_o: list[str] = []
        out_f: list[str] = []
        pos = 0
        n = 0
        for m in pattern.finditer(self.fold):
            for start, end in spans_of(m) or ():
                out_o.append(self.orig[pos:start])
                out_f.append(self.fold[pos:start])
                out_o.append(token)
                out_f.append(token)
                pos = end
                n += 1
        if n:
            out_o.append(self.orig[pos:])
            out_f.append(self.fold[pos:])
            self.orig = "".join(out_o)
            self.fold = "".join(out_f)
            self.counts[kind] += n


def _whole(m: re.Match[str]) -> Spans:
    return [m.span()]


def _id18(m: re.Match[str]) -> Spans | None:
    return [m.span()] if is_valid_prc_id("".join(m.groups())) else None


def _id15(m: re.Match[str]) -> Spans | None:
    if _CODE_CONTEXT.search(m.string, max(0, m.start() - 12), m.start()):
        return None
    return [m.span()] if is_valid_prc_id(m.group(0)) else None


def _plate(m: re.Match[str]) -> Spans | None:
    return [m.span()] if _plate_ok(m.group(1), m.group(2)) else None


def _cue_like(m: re.Match[str]) -> Spans | None:
    """A name found next to a cue: skipped if it starts with a preposition or is a common word."""
    name = m.group("name")
    if name[0] in _CUE_SKIP_FIRST or _is_common_word(name):
        return None
    return [m.span("name")]


def _title(m: re.Match[str]) -> Spans | None:
    s, name, start = m.string, m.group("name"), m.start()
    blocked = name[0] in _PARTICLE_SURNAMES or any(
        start >= k and s[start - k:start + 1] in _NOT_BEFORE_TITLE for k in (1, 2)
    )
    if blocked:
        # "向市长", "保安师傅": not a name. "向王先生", "拜谢黎书记": the name starts one character later.
        inner = _RE_TITLE.search(s, start + 1, m.end())
        if inner is None or inner.end() != m.end():
            return None
        return _title(inner)
    if _is_common_word(name):
        return None
    return [m.span("name")]


def _xing(m: re.Match[str]) -> Spans:
    return [m.span("name") if m.group("name") is not None else m.span("name2")]


def _chain(m: re.Match[str]) -> Spans | None:
    """``[姓名]、王才茂、张庆国与李某`` → every name of the list, up to the first common word."""
    s, pos, end = m.string, m.start() + len(TOKENS["name"]), m.end()
    spans: Spans = []
    while pos < end:
        item = _RE_CHAIN_ITEM.match(s, pos, end)
        if item is None or _is_common_word(item.group("name")):
            break
        spans.append(item.span("name"))
        pos = item.end()
    return spans


_Pass = tuple[re.Pattern[str], str, Callable[[re.Match[str]], Spans | None]]
_NUMBER_PASSES: tuple[_Pass, ...] = (
    (_RE_ID18, "id_number", _id18),
    (_RE_ID15, "id_number", _id15),
    (_RE_MOBILE, "mobile", _whole),
    (_RE_LANDLINE, "landline", _whole),
    (_RE_PLATE, "plate", _plate),
)
_NAME_PASSES: tuple[_Pass, ...] = (
    (_RE_MOU, "name", _whole),
    (_RE_CUE, "name", _cue_like),
    (_RE_SUBJECT, "name", _cue_like),
    (_RE_TITLE, "name", _title),
    (_RE_XING, "name", _xing),
    (_RE_CHAIN, "name", _chain),
    (_RE_BACKCHAIN, "name", _cue_like),
)
_HAS_DIGIT_OR_LETTER = re.compile(r"[0-9A-Za-z]")
_HAS_SURNAME = re.compile(rf"(?:{_SUR})")


_MAX_ROUNDS = 6


def _redact_one(text: str) -> tuple[str, Counter[str]]:
    t = _Text(text)
    # All passes run to a fixed point, so redaction is idempotent: a replacement can expose a new match
    # (当事人张三、李四与王五 takes one name of the chain per round; in 傅师傅总经理 the 傅 of the kept
    # title 师傅 is a surname before 总经理; two IDs written back to back are separated by the first token).
    for _ in range(_MAX_ROUNDS):
        n_before = sum(t.counts.values())
        if _HAS_DIGIT_OR_LETTER.search(t.fold):
            for pattern, kind, repl in _NUMBER_PASSES:
                t.sub(pattern, kind, repl)
        if _HAS_SURNAME.search(t.fold):
            for pattern, kind, repl in _NAME_PASSES:
                t.sub(pattern, kind, repl)
        if sum(t.counts.values()) == n_before:
            break
    return t.orig, t.counts


def redact_text(text: str) -> str:
    """Redact one string (see the module docstring for what is replaced)."""
    return _redact_one(text)[0]


def _is_missing(v: object) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


class RedactionResult(NamedTuple):
    text: pd.Series
    """Redacted texts, same index and name as the input; missing values stay missing."""
    counts: dict[str, int]
    """Number of replacements per type (all of :data:`REDACTION_TYPES`, zeros included) and
    ``rows_changed``: for the batch summary."""


# A text can only need redaction if it has a run of digits (IDs, phones, plates, written 3-4-4 or
# not), a Latin letter (plates) or a name context (a cue, a title, a reporting verb, 某, 姓). This
# screen runs vectorised over the whole column (pyarrow's RE2), so the per-text passes only see the
# texts that can match; it must stay a superset of what the passes find (tests check it on the
# hypothesis-generated PII texts).
_SCREEN = re.compile("|".join([
    "[0-9０-９]{4,}", "[A-Za-zＡ-Ｚａ-ｚ]",  # literal full-width ranges: RE2 (pyarrow) has no \\u escapes
    *sorted({re.escape(w) for w in (*CUES, *HONORIFICS, *_REPORT_VERBS.split("|"), "某", "姓")}),
]))


def needs_redaction(texts: pd.Series) -> np.ndarray:
    """Boolean mask of the texts that may contain personal information (a cheap, vectorised screen)."""
    s = texts.astype("string[pyarrow]") if len(texts) else texts.astype("string")
    return s.str.contains(_SCREEN.pattern, regex=True).fillna(False).to_numpy(dtype=bool)


def redact(texts: pd.Series | Iterable[object]) -> RedactionResult:
    """Redact a Series of free text; returns the redacted Series and counts per type.

    ``None``/``NaN`` stay as they are; non-string values (numbers from a spreadsheet column) are turned
    into strings first, so an 11-digit phone number stored as an integer is still caught. Only texts
    that pass the :data:`_SCREEN` are examined, each distinct text once; the rest of the column is
    handled as Arrow arrays, without a Python loop over rows.
    """
    s = texts if isinstance(texts, pd.Series) else pd.Series(list(texts), dtype=object)
    arrow_text = isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow"
    text = s if arrow_text else s.astype(pd.StringDtype("pyarrow"))
    arr = text.array.__arrow_array__()  # the ChunkedArray itself, no copy
    candidate = pc.fill_null(pc.match_substring_regex(arr, _SCREEN.pattern), False)
    found = pc.value_counts(pc.filter(arr, candidate))
    uniques = found.field("values").to_pylist()
    total: Counter[str] = Counter()
    changed = 0
    redacted = []
    for value, n in zip(uniques, found.field("counts").to_pylist(), strict=True):
        red, counts = _redact_one(value)
        redacted.append(red)
        if counts:
            total.update({k: v * n for k, v in counts.items()})
            changed += n
    if uniques:
        replaced = pc.take(pa.array(redacted, pa.large_string()),
                           pc.index_in(arr, value_set=pa.array(uniques, pa.large_string())))
        arr = pc.if_else(candidate, replaced, arr)
    counts_out = {k: int(total.get(k, 0)) for k in REDACTION_TYPES}
    counts_out["rows_changed"] = changed
    if arrow_text:
        result = pd.Series(s.dtype.__from_arrow__(arr), index=s.index, name=s.name)
    else:  # object in, object out: missing values keep their own kind (None / NaN)
        values = s.to_numpy(dtype=object, copy=True)
        given = s.notna().to_numpy()
        values[given] = arr.to_numpy(zero_copy_only=False)[given]
        result = pd.Series(values, index=s.index, name=s.name, dtype=object)
        if isinstance(s.dtype, pd.StringDtype):
            result = result.astype(s.dtype)  # the caller's string dtype is kept
    return RedactionResult(result, counts_out)


# ------------------------------------------------------------------------------------ pseudonyms
HMAC_ENV_VAR = "ONEMAP_HMAC_KEY"
_MIN_KEY_BYTES = 16


class MissingKeyError(RuntimeError):
    """The pseudonymisation key is missing or unusable."""


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray):
        raise TypeError(f"key must be bytes, got {type(key).__name__}")
    if len(key) < _MIN_KEY_BYTES:
        raise MissingKeyError(f"the HMAC key must be at least {_MIN_KEY_BYTES} bytes, got {len(key)}")
    return bytes(key)


def pseudonymise(values: pd.Series | Iterable[object], key: bytes) -> pd.Series:
    """Keyed pseudonyms: HMAC-SHA256 of each value, hex, truncated to 32 characters (128 bits).

    Deterministic for a given key (so the same phone number links records across sources) and
    useless without the key. Values are converted to ``str``, NFKC-normalised (full-width digits →
    ASCII) and stripped; canonicalise further before calling if needed (e.g. digits only for phones).
    ``None``/``NaN`` → ``None``. Same index and name as the input.
    """
    k = _check_key(key)
    s = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    out: list[str | None] = []
    for v in s.array:
        if _is_missing(v):
            out.append(None)
            continue
        norm = unicodedata.normalize("NFKC", v if isinstance(v, str) else str(v)).strip()
        out.append(hmac.new(k, norm.encode("utf-8"), hashlib.sha256).hexdigest()[:32])
    return pd.Series(out, index=s.index, name=s.name, dtype=object)


_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def hmac_key_from_env(required: bool = True, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The customer's pseudonymisation key from ``ONEMAP_HMAC_KEY``.

    An even-length string of hex digits is decoded as hex (``secrets.token_hex(32)``); anything else
    is taken as UTF-8 text. The decoded key must have at least 16 bytes. If the variable is unset or
    empty: raises :class:`MissingKeyError` when ``required``, else returns ``None``. The key is held
    by the deployment (environment / secret store), never read from the repository or a config file
    in it.
    """
    env = os.environ if environ is None else environ
    raw = (env.get(HMAC_ENV_VAR) or "").strip()
    if not raw:
        if not required:
            return None
        raise MissingKeyError(
            f"{HMAC_ENV_VAR} is not set: pseudonymising identifiers needs the deployment's secret key. "
            f"Set it to at least 32 hex characters, e.g. "
            f"`export {HMAC_ENV_VAR}=$(python -c 'import secrets; print(secrets.token_hex(32))')`, "
            "and keep it with the customer (it must not be committed or put in config files); "
            "the same key must be used for every load, or pseudonyms will not match across batches."
        )
    key = bytes.fromhex(raw) if _HEX.match(raw) else raw.encode("utf-8")
    if len(key) < _MIN_KEY_BYTES:
        raise MissingKeyError(
            f"{HMAC_ENV_VAR} is too short: {len(key)} bytes after decoding, need at least {_MIN_KEY_BYTES} "
            "(32 hex characters)"
        )
    return key


def scrub_row_values(texts: pd.Series, values: list[pd.Series]) -> tuple[pd.Series, int]:
    """``texts`` with each row's own party values (its caller's name, phone number as the export's 来电人 /
    来电号码 columns give them) taken out wherever they appear, as ``[姓名]`` (Chinese-only values) or ``[已删除]``:
    a name the patterns miss ("陈国庆来电反映" with no cue) is still known from its own row. Returns the texts and
    how many were changed."""
    out, changed = texts.copy(), 0
    for column in values:
        for i, (text, value) in enumerate(zip(out, column, strict=True)):
            if not isinstance(text, str) or not isinstance(value, str):
                continue
            value = value.strip()
            if len(value) < 2 or value not in text:
                continue
            mark = TOKENS["name"] if re.fullmatch(rf"[{_CJK}·]+", value) else "[已删除]"
            out.iat[i] = text.replace(value, mark)
            changed += 1
    return out, changed
