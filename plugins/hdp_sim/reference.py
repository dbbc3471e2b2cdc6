"""Reference data of the simulated hospital: departments, diagnosis mix, names and regions.

The ICD-10 code list itself lives in dbt_project/seeds/icd10_codes.csv (the single source of truth
shared with dbt); this module only says which codes each department uses and how often.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hdp.config import REPO_ROOT

ICD10_CSV = REPO_ROOT / "dbt_project" / "seeds" / "icd10_codes.csv"


@dataclass(frozen=True)
class Icd10Code:
    code: str
    description_en: str
    description_zh: str
    chapter: str


@cache
def icd10_codes(path: Path = ICD10_CSV) -> dict[str, Icd10Code]:
    """The ICD-10 codes the simulator may use, keyed by code (read from the dbt seed)."""
    with path.open(encoding="utf-8", newline="") as f:
        return {
            r["icd10_code"]: Icd10Code(
                r["icd10_code"], r["description_en"], r["description_zh"], r["chapter"]
            )
            for r in csv.DictReader(f)
        }


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    parent: str | None
    dept_type: str  # division / clinical / emergency / medical_technology
    population: str = ""  # which patients it sees: see POPULATIONS in his.py
    op_weight: float = 0.0  # share of outpatient visits
    ip_weight: float = 0.0  # share of admissions
    respiratory: bool = False  # visit volume follows the winter respiratory season
    is_active: bool = True
    diagnoses: tuple[tuple[str, float, float], ...] = ()  # (icd10, outpatient w, inpatient w)


def _dx(spec: str) -> tuple[tuple[str, float, float], ...]:
    out = []
    for item in spec.split():
        code, op, ip = item.split(":")
        out.append((code, float(op), float(ip)))
    return tuple(out)


_DIVISIONS = [
    ("D01", "内科"),
    ("D02", "外科"),
    ("D03", "妇产科"),
    ("D04", "儿科学部"),
    ("D05", "急诊医学部"),
    ("D06", "五官科"),
    ("D07", "肿瘤中心"),
    ("D08", "其他临床科室"),
    ("D09", "医技科室"),
]

# fmt: off
# code, name, population, op weight, ip weight, respiratory, diagnoses "code:op_w:ip_w ..."
_CLINICAL = [
    ("D0101", "心血管内科", "adult", 6, 8, False,
     "I10:30:6 I25.1:15:15 I20.9:8:10 I20.0:2:12 I21.9:1:10 I48.9:7:8 I50.9:4:14 "
     "I49.9:6:4 I11.9:4:4 R00.2:6:0 R07.4:5:2 E78.5:8:0 I47.1:1:3"),
    ("D0102", "呼吸内科", "adult", 6, 7, True,
     "J06.9:15:0 J20.9:14:3 J18.9:10:25 J44.1:4:15 J44.9:6:4 J45.9:7:4 J42:6:3 R05:10:0 "
     "J11.1:8:2 J47:2:4 J84.1:1:3 C34.9:1:6 J96.0:0:4 J15.9:1:6 J12.9:1:5 U07.1:3:3 "
     "J90:0:3 I26.9:0:3"),
    ("D0103", "消化内科", "adult", 6, 6, False,
     "K29.5:25:3 K29.7:10:2 K21.9:10:2 K25.9:5:6 K26.9:4:5 K30:8:0 K58.9:5:0 K59.0:5:0 "
     "K76.0:6:1 K74.6:2:8 K92.2:1:14 K85.9:1:12 K63.5:3:8 R10.4:6:2 K56.7:0:4 A09.9:6:3"),
    ("D0104", "神经内科", "adult", 5, 7, False,
     "I63.9:8:30 I67.8:12:4 G45.9:3:10 G43.9:8:1 G44.2:6:0 R42:12:2 R51:8:0 G40.9:4:5 "
     "G20:4:6 G30.9:2:3 F51.0:8:0 G51.0:3:3 G62.9:3:3 I61.9:0:4 H81.1:3:1"),
    ("D0105", "内分泌科", "adult", 4, 3, False,
     "E11.9:35:15 E11.6:8:25 E10.9:2:5 E05.9:8:6 E03.9:8:3 E04.1:12:2 E78.5:8:1 E79.0:6:1 "
     "E66.9:3:2 M81.9:5:2 E28.2:2:1"),
    ("D0106", "肾内科", "adult", 2.5, 3, False,
     "N18.9:25:15 N18.5:8:25 N03.9:10:12 N04.9:5:15 N39.0:10:6 N17.9:1:10 N20.0:6:2 "
     "E79.0:5:1 I10:5:1"),
    ("D0107", "血液内科", "adult", 1, 2, False,
     "D50.9:25:8 D64.9:20:10 D69.6:12:12 C92.0:3:35 Z51.1:2:25"),
    ("D0108", "风湿免疫科", "adult", 1.5, 1.5, False,
     "M06.9:25:25 M10.9:20:10 M32.9:10:25 M45:10:10 M81.9:10:5 E79.0:8:0"),
    ("D0109", "感染科", "any", 2, 2, True,
     "B18.1:30:15 J11.1:20:10 A09.9:10:10 B01.9:5:5 A15.0:6:15 B34.9:10:10 A41.9:0:10 "
     "R50.9:10:10 U07.1:5:8 K74.6:2:8"),
    ("D0201", "普通外科", "adult", 4, 7, False,
     "K35.8:10:25 K40.9:12:20 K80.2:10:15 K81.0:3:12 K56.7:2:10 K64.9:20:5 C16.9:1:6 "
     "C18.9:2:8 C20:1:5 R10.4:10:0 I83.9:6:6 S01.9:6:0 I80.2:2:4"),
    ("D0202", "骨科", "any", 5, 8, False,
     "M51.2:15:12 M47.8:15:5 M17.9:12:10 M54.5:12:0 S52.5:6:6 S72.0:2:20 S82.8:4:12 "
     "S93.4:8:0 S32.0:1:8 S42.0:3:6 M75.0:6:0 M48.0:3:8 M81.9:4:2"),
    ("D0203", "神经外科", "adult", 1.5, 3, False,
     "I61.9:5:25 S06.0:25:15 I63.9:5:5 R51:20:0 G40.9:5:5 S01.9:15:5 I67.8:10:5"),
    ("D0204", "心胸外科", "adult", 1, 3, False,
     "C34.9:20:35 C15.9:5:12 I25.1:10:12 I71.0:2:12 J90:5:8 R07.4:20:3 J47:5:5"),
    ("D0205", "泌尿外科", "adult", 3, 4, False,
     "N20.0:20:20 N20.1:15:20 N40:25:15 N39.0:15:5 C61:4:12"),
    ("D0206", "肝胆外科", "adult", 1.5, 3, False,
     "K80.2:30:30 K81.0:8:15 C22.0:6:20 K85.9:3:10 K74.6:5:5 K76.0:10:0 R10.4:10:0"),
    ("D0207", "甲状腺乳腺外科", "female", 2.5, 3, False,
     "E04.1:25:10 C73:6:20 C50.9:6:25 N60.1:25:2 D24:8:12 D34:5:10 E05.9:3:2"),
    ("D0301", "妇科", "female", 5, 5, False,
     "N76.0:20:0 N73.9:12:8 N92.6:15:3 D25.9:8:25 N83.2:8:20 N94.6:8:0 N97.9:6:2 "
     "E28.2:5:1 C53.9:1:10 O00.1:1:8"),
    ("D0302", "产科", "obstetric", 4, 6, False,
     "Z34.9:55:3 O80.9:0:40 O82.9:0:30 O24.4:8:5 O14.9:2:8 O21.0:5:3 O03.9:3:5 O42.9:2:8"),
    ("D0401", "儿科", "child", 8, 6, True,
     "J06.9:22:3 J20.9:12:8 J18.9:6:35 J21.9:4:10 J03.9:8:3 J02.9:6:0 R50.9:10:4 R05:8:0 "
     "A09.9:8:10 B08.4:4:5 J45.9:3:3 J11.1:6:3 B01.9:2:1 D50.9:2:1 L20.9:3:0"),
    ("D0402", "新生儿科", "newborn", 0.5, 2, False,
     "P59.9:50:35 P07.3:5:30 P22.9:2:20 J18.9:3:10 Z00.0:40:0"),
    ("D0501", "急诊科", "any", 8, 1, True,
     "R50.9:12:5 J06.9:10:0 J18.9:5:15 R10.4:10:5 K35.8:3:5 S01.9:8:3 S06.0:4:5 S93.4:5:0 "
     "T78.4:5:3 I21.9:2:20 I63.9:3:15 R07.4:6:4 R55:3:5 A09.9:6:2 R42:6:2 J11.1:5:2 "
     "N20.1:4:3 I10:4:3 A41.9:0:10 J96.0:0:6 J00:4:0"),
    ("D0601", "眼科", "any", 4, 2, False,
     "H52.1:25:0 H10.9:18:0 H04.1:15:0 H25.9:12:50 H40.9:6:15 H33.0:1:20 E11.6:2:10"),
    ("D0602", "耳鼻喉科", "any", 4, 2, True,
     "J30.4:18:2 J02.9:12:0 J03.9:8:5 J32.9:10:25 J35.0:5:25 H66.9:6:3 H65.9:4:5 "
     "H81.1:5:5 H91.9:8:5 H93.1:8:2 J34.2:3:20 J06.9:6:0"),
    ("D0603", "口腔科", "any", 4, 0.3, False,
     "K02.9:30:0 K04.0:20:0 K05.3:18:5 K01.1:15:60 K12.0:12:0"),
    ("D0701", "肿瘤科", "adult", 2, 6, False,
     "C34.9:20:20 C16.9:8:10 C18.9:8:10 C22.0:6:8 C50.9:10:10 C15.9:5:5 C25.9:3:5 "
     "C53.9:3:3 Z51.1:30:25 D64.9:3:2"),
    ("D0702", "放疗科", "adult", 0.5, 1.5, False,
     "Z51.0:60:50 C34.9:10:15 C50.9:10:10 C53.9:8:10 C15.9:6:8 C61:2:3"),
    ("D0801", "皮肤科", "any", 4, 0.3, False,
     "L20.9:15:10 L30.9:15:5 L50.9:15:20 L40.0:8:30 L70.0:12:0 B35.3:10:0 B02.9:8:30 "
     "L23.9:8:5"),
    ("D0802", "中医科", "adult", 4, 1, False,
     "K29.5:10:5 F51.0:15:5 M54.5:12:10 M47.8:12:15 R42:10:10 J06.9:8:0 I67.8:8:20 "
     "K59.0:8:5 N94.6:5:0 M75.0:6:10"),
    ("D0803", "康复科", "adult", 1.5, 2, False,
     "I69.3:20:40 G81.9:10:25 M51.2:15:10 M47.8:15:5 M17.9:10:5 M75.0:10:0 S72.0:2:10 "
     "M54.5:15:0"),
    ("D0804", "精神心理科", "adult", 2, 0.5, False,
     "F32.9:25:25 F41.9:25:10 F41.2:15:10 F51.0:20:5 F20.9:10:40 G30.9:2:5"),
]
# fmt: on
_EMERGENCY = {"D0501"}
_MEDICAL_TECHNOLOGY = [
    ("D0901", "检验科"),
    ("D0902", "放射科"),
    ("D0903", "超声医学科"),
    ("D0904", "病理科"),
    ("D0905", "药剂科"),
]
# Merged into 心血管内科 and 神经内科 years ago: kept as an inactive department, sees nobody.
_INACTIVE = [("D0110", "老年医学科", "D01")]

# Routine secondary diagnoses of adults (weights): the comorbidities a tertiary hospital sees daily.
COMORBIDITIES = _dx(
    "I10:30:30 E11.9:15:15 E78.5:15:10 I25.1:8:10 K76.0:8:4 E79.0:5:3 K29.5:6:3 M81.9:4:4 "
    "N18.9:3:5 D64.9:3:6 E87.6:1:5 I48.9:2:5"
)


def departments() -> list[Department]:
    """All departments, divisions first, in code order."""
    out = [Department(code, name, None, "division") for code, name in _DIVISIONS]
    for code, name, pop, op_w, ip_w, resp, dx in _CLINICAL:
        dept_type = "emergency" if code in _EMERGENCY else "clinical"
        out.append(
            Department(code, name, code[:3], dept_type, pop, op_w, ip_w, resp, True, _dx(dx))
        )
    for code, name in _MEDICAL_TECHNOLOGY:
        out.append(Department(code, name, code[:3], "medical_technology"))
    for code, name, parent in _INACTIVE:
        out.append(Department(code, name, parent, "clinical", is_active=False))
    return sorted(out, key=lambda d: (len(d.code), d.code))


def codes_used() -> set[str]:
    """Every ICD-10 code the simulator can emit."""
    used = {c for d in departments() for c, _, _ in d.diagnoses}
    return used | {c for c, _, _ in COMORBIDITIES}


# Surnames with rough relative frequencies (the 100 commonest cover ~85% of Han Chinese).
SURNAMES = (
    "王:7.2 李:7.1 张:6.8 刘:5.4 陈:4.6 杨:3.1 黄:2.2 赵:2.1 吴:2.0 周:1.9 徐:1.4 孙:1.4 马:1.3 "
    "朱:1.3 胡:1.2 郭:1.2 何:1.1 高:1.0 林:1.0 罗:0.9 郑:0.9 梁:0.9 谢:0.8 宋:0.7 唐:0.7 许:0.7 "
    "韩:0.6 冯:0.6 邓:0.6 曹:0.6 彭:0.6 曾:0.5 肖:0.5 田:0.5 董:0.5 袁:0.5 潘:0.4 于:0.4 蒋:0.4 "
    "蔡:0.4 余:0.4 杜:0.4 叶:0.4 程:0.4 苏:0.4 魏:0.4 吕:0.4 丁:0.4 任:0.3 沈:0.3 姚:0.3 卢:0.3 "
    "姜:0.3 崔:0.3 钟:0.3 谭:0.3 陆:0.3 汪:0.3 范:0.3 金:0.3 石:0.3 廖:0.3 贾:0.3 夏:0.3 韦:0.3 "
    "付:0.3 方:0.3 白:0.2 邹:0.2 孟:0.2 熊:0.2 秦:0.2 邱:0.2 江:0.2 尹:0.2 薛:0.2 闫:0.2 段:0.2 "
    "雷:0.2 侯:0.2 龙:0.2 史:0.2 陶:0.2 黎:0.2 贺:0.2 顾:0.2 毛:0.2 郝:0.2 龚:0.2 邵:0.2 万:0.2 "
    "钱:0.2 严:0.1 覃:0.1 武:0.1 戴:0.1 莫:0.1 孔:0.1 向:0.1 汤:0.1 欧阳:0.05 司马:0.01 诸葛:0.01"
)
GIVEN_MALE = (
    "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林建国志文峰斌亮成东海军林波洋振兴德荣"
)
GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀玲桂英红梅琳燕萍雪婷颖倩慧莉晶洁佳欣怡雨悦琪蕾丹玉兰凤岚薇瑶诗"
GIVEN_NEUTRAL = "文华晓子春金秋天思嘉一佳瑞安晨欣梓宇博远"
# Homophones typed instead of the right character on a second registration (同音字).
HOMOPHONES = dict(
    pair.split(":")
    for pair in [
        "伟:玮",
        "强:蔷",
        "磊:雷",
        "军:君",
        "勇:永",
        "杰:洁",
        "涛:韬",
        "明:铭",
        "超:潮",
        "刚:钢",
        "平:萍",
        "辉:晖",
        "鹏:朋",
        "华:桦",
        "飞:菲",
        "波:博",
        "斌:彬",
        "宇:雨",
        "浩:昊",
        "凯:恺",
        "健:建",
        "俊:骏",
        "旭:煦",
        "宁:凝",
        "龙:隆",
        "林:琳",
        "峰:锋",
        "亮:靓",
        "芳:方",
        "娜:纳",
        "敏:闵",
        "静:菁",
        "丽:莉",
        "艳:燕",
        "娟:涓",
        "霞:侠",
        "玲:苓",
        "英:瑛",
        "红:虹",
        "梅:媚",
        "琳:林",
        "萍:平",
        "雪:学",
        "婷:亭",
        "颖:莹",
        "倩:茜",
        "慧:惠",
        "晶:菁",
        "洁:杰",
        "佳:嘉",
        "欣:鑫",
        "怡:宜",
        "悦:月",
        "琪:棋",
        "文:雯",
        "晓:小",
    ]
)

# Real 6-digit administrative region codes. The hospital is in Wuhan: most patients are local.
# (code, address prefix, share)
# fmt: off
REGIONS = [
    (420102, "湖北省武汉市江岸区", 9),
    (420103, "湖北省武汉市江汉区", 7),
    (420104, "湖北省武汉市硚口区", 7),
    (420105, "湖北省武汉市汉阳区", 7),
    (420106, "湖北省武汉市武昌区", 10),
    (420107, "湖北省武汉市青山区", 5),
    (420111, "湖北省武汉市洪山区", 10),
    (420112, "湖北省武汉市东西湖区", 4),
    (420115, "湖北省武汉市江夏区", 5),
    (420116, "湖北省武汉市黄陂区", 4),
    (420202, "湖北省黄石市黄石港区", 2),
    (420502, "湖北省宜昌市西陵区", 2),
    (420606, "湖北省襄阳市樊城区", 2),
    (420902, "湖北省孝感市孝南区", 3),
    (421002, "湖北省荆州市沙市区", 2),
    (421102, "湖北省黄冈市黄州区", 3),
    (420802, "湖北省荆门市东宝区", 1),
    (422801, "湖北省恩施土家族苗族自治州恩施市", 1),
    (110105, "北京市朝阳区", 0.5),
    (110108, "北京市海淀区", 0.4),
    (310115, "上海市浦东新区", 0.5),
    (320106, "江苏省南京市鼓楼区", 0.3),
    (330106, "浙江省杭州市西湖区", 0.3),
    (340104, "安徽省合肥市蜀山区", 0.4),
    (360102, "江西省南昌市东湖区", 0.5),
    (410105, "河南省郑州市金水区", 1),
    (411302, "河南省南阳市宛城区", 0.6),
    (430104, "湖南省长沙市岳麓区", 0.8),
    (430602, "湖南省岳阳市岳阳楼区", 0.5),
    (440106, "广东省广州市天河区", 0.4),
    (440305, "广东省深圳市南山区", 0.4),
    (500103, "重庆市渝中区", 0.5),
    (510107, "四川省成都市武侯区", 0.4),
    (610113, "陕西省西安市雁塔区", 0.3),
    (370102, "山东省济南市历下区", 0.2),
    (130102, "河北省石家庄市长安区", 0.2),
    (650102, "新疆维吾尔自治区乌鲁木齐市天山区", 0.1),
]
# fmt: on
STREETS = [
    "解放大道",
    "中山大道",
    "建设大道",
    "发展大道",
    "和平大道",
    "武珞路",
    "珞喻路",
    "民主路",
    "友谊路",
    "青年路",
    "人民路",
    "新华路",
    "黄浦大街",
    "中北路",
    "徐东大街",
    "雄楚大道",
    "关山大道",
    "光谷大道",
    "江汉路",
    "沿江大道",
    "鹦鹉大道",
    "车城大道",
    "长江路",
    "胜利街",
    "前进路",
    "团结路",
    "文化路",
    "幸福路",
    "滨江路",
    "东风路",
]
# Mobile number prefixes of the three carriers (1[3-9]x).
MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "170",
    "171",
    "173",
    "175",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]
