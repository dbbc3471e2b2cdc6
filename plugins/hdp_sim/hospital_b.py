"""Simulated Hospital B (institution H002): a city hospital that joined the group, whose HIS
comes from another vendor (source `hisb`, tables in hisb_schema.sql).

What differs from Hospital A's HIS (his.py), as such systems do:
- tables and columns named by pinyin initials (brxx 病人信息, mzgh 门诊挂号, cfmx 处方明细, ...);
- its own codes: sex as 男/女, its own department codes ('NK01', 'JZK'), diagnoses in the ICD-10
  national clinical edition 2.0 (six characters after the category, 'J18.900', and extension
  codes 'J18.900x001'), its own drug codes with names and specifications only (no ATC);
- business times stored as text in three formats ('2024-01-02 08:30:05', '2024/1/2 8:30',
  '20240102083005'), birth dates in three ('1980-01-02', '19800102', '1980/1/2');
- no updated_at: a change-time column under another name per table (the manifest's watermark);
- patients of Hospital A seen here on referral (转诊), under other local ids, and registered the
  way a city hospital registers them: children and emergencies often without a card number,
  foreigners with a passport, transcription errors in the number, name variants (traditional
  characters, spacing, pinyin, a homophone), a phone changed and an address moved since.

`simulate()` is a pure function of the configuration (generators seeded with (seed, stream)):
the same seed gives the same rows. Hospital A's people are replayed from his.py's registry
with the same seed and scale (`hospital_a_registry`), so a referral is the very person Hospital
A registered, and sim.cross_hospital_truth holds the true pairs for an MPI bench (written to
hisb_sim.cross_hospital_truth). `generate()` writes everything to MySQL/MariaDB (hisb_schema.sql,
multi-row INSERTs). The ICD codes below follow the clinical edition's shape; the base codes are
WHO ICD-10 categories and subcategories, the extensions illustrate how the edition extends them.

Rows per 1.0 of scale (a city hospital, about a quarter of Hospital A), 90 days, seed 42:
brxx 60,000 registered before day one; mzgh ~2,500 a day; zyjl ~60 a day; cfmx ~2.2 lines per
completed registration with a prescription (three in four). Measured at scale 0.1, 90 days,
seed 42 (2.0 s in memory): brxx 6,000, mzgh 22,590, zyjl 520, zdxx 34,961, cfmx 35,552.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from hdp_sim import his
from hdp_sim import people as ppl
from hdp_sim import reference as ref
from hdp_sim.tsv import NULL, column_text, money

log = logging.getLogger(__name__)

SOURCE = "hisb"
INSTITUTION_ID = "H002"
HOSPITAL_A_INSTITUTION_ID = "H001"
SCHEMA_SQL = Path(__file__).with_name("hisb_schema.sql")

DEFECT_KINDS: dict[str, str] = {
    "cross_hospital_referral": "a person of Hospital A's registry registered here under another "
    "local id; clean_value: the person's Hospital A patient_id (the true cross-hospital pair)",
    "missing_id_card": "no card number recorded (children, emergencies, not shown); "
    "clean_value: the person's number",
    "passport_id": "a foreigner registered with a passport (zjlx 护照), no resident card number",
    "mistyped_id_card": "one digit of the card number typed wrong (the check character fails)",
    "name_variant": "a referral's name as typed here: traditional characters, spaces, pinyin or a "
    "homophone; clean_value: the name at Hospital A",
    "moved_address": "a referral's address differs from Hospital A's (moved since)",
    "changed_phone": "a referral's phone differs from Hospital A's",
    "unparseable_timestamp": "a text time no known format reads (an impossible calendar date or a "
    "two-digit year); clean_value: the true time",
    "orphan_patient_ref": "a registration whose brid matches no patient",
    "discharge_before_admission": "cyrq earlier than ryrq",
    "negative_amount": "a prescription line's je with the sign flipped (not a refund)",
    "orphan_drug_ref": "a prescription line whose ypdm matches no catalogue entry",
}

TABLES = ("ksdm", "ysxx", "brxx", "mzgh", "zyjl", "zdxx", "ypzd", "cfmx")
_COLUMN_SPEC = {
    "ksdm": "ksdm ksmc kslb zfbz gxsj",
    "ysxx": "ysdm ysxm ksdm zc xb gxsj",
    "brxx": "brid jzkh xm xb csrq zjlx sfzh lxdh dz djsj xgsj",
    "mzgh": "ghxh brid ksdm ysdm ghsj ghlb ghf thbz czsj",
    "zyjl": "zyh brid ksdm ysdm bq ryrq cyrq cyqk zfy xgsj",
    "zdxx": "zdxh jzlx jzh zddm zdmc zdlb czsj",
    "ypzd": "ypdm ypmc gg dw dj gxsj",
    "cfmx": "mxxh cfh ghxh ypdm sl dw je kfsj czsj",
    "sim.defect_manifest": "sim_day kind table_name record_id column_name clean_value",
    "sim.person_truth": "brid person_id sex birth_date",
    "sim.cross_hospital_truth": "brid his_patient_id person_id",
}
COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(c.split()) for t, c in _COLUMN_SPEC.items()}
MONEY_COLUMNS = {"ghf", "zfy", "je", "dj", "sl"}  # int64 hundredths in the arrays
# each table's watermark (dags/sources/hisb.yml names the same)
WATERMARKS = {
    "ksdm": "gxsj",
    "ysxx": "gxsj",
    "brxx": "xgsj",
    "mzgh": "czsj",
    "zyjl": "xgsj",
    "zdxx": "czsj",
    "ypzd": "gxsj",
    "cfmx": "czsj",
}

# Volumes per 1.0 of scale.
REGISTRY = 60_000
VISITS_PER_DAY = 2_500.0
ADMISSIONS_PER_DAY = 60.0
DOCTORS = 300
REFERRAL_SHARE = 0.10  # of Hospital B's registry: people Hospital A registered first
PERSON_ID_BASE = 1_000_000_000  # Hospital B's own people: no Hospital A person has such an id
ORPHAN_ID_BASE = 900_000_000  # brids in orphan references: no registration has one
BRID_BASE = 100_000
# Registration realities (not defect_rate: shares a city hospital sees).
NO_CARD_CHILD, NO_CARD_ADULT = 0.60, 0.05
PASSPORT_SHARE = 0.004
MISTYPED_CARD_SHARE = 0.02
REFERRAL_NAME_VARIANT, REFERRAL_MOVED, REFERRAL_NEW_PHONE = 0.30, 0.35, 0.30
CANCEL_RATE = 0.04
PRESCRIPTION_SHARE = 0.75
TIME_FORMATS = ("iso", "slash", "compact")
TIME_FORMAT_SHARES = (0.55, 0.30, 0.15)
DATE_FORMAT_SHARES = (0.50, 0.30, 0.20)  # csrq: iso, compact, slash
TITLES = his.TITLES
DISCHARGE = ("治愈", "好转", "未愈", "转院", "死亡")
DISCHARGE_SHARES = (0.32, 0.58, 0.04, 0.05, 0.01)

# ICD-10 national clinical edition 2.0 codes (shape of the edition; see the module docstring).
ICD_CN2: dict[str, str] = {
    "J06.900": "急性上呼吸道感染",
    "J02.900": "急性咽炎",
    "J03.900": "急性扁桃体炎",
    "J18.900": "肺炎",
    "J18.900x001": "社区获得性肺炎",
    "J20.900": "急性支气管炎",
    "J44.100": "慢性阻塞性肺病伴有急性加重",
    "J45.900": "哮喘",
    "I10.x00": "高血压",
    "I10.x00x002": "原发性高血压",
    "I20.000": "不稳定型心绞痛",
    "I25.103": "冠状动脉粥样硬化性心脏病",
    "I50.900": "心力衰竭",
    "I63.900": "脑梗死",
    "G43.900": "偏头痛",
    "K29.700": "胃炎",
    "K21.900": "胃食管反流病",
    "K35.800": "急性阑尾炎",
    "K80.200": "胆囊结石",
    "E11.900": "2型糖尿病",
    "E11.900x001": "2型糖尿病不伴有并发症",
    "E78.500": "高脂血症",
    "M17.900": "膝关节病",
    "M54.500": "下背痛",
    "S72.000": "股骨颈骨折",
    "S06.000": "脑震荡",
    "N39.000": "泌尿道感染",
    "N20.000": "肾结石",
    "N76.000": "急性阴道炎",
    "O80.000": "头位顺产",
    "Z34.900": "正常妊娠监督",
    "A09.900": "胃肠炎",
    "R50.900": "发热",
    "H10.900": "结膜炎",
    "H26.900": "白内障",
    "H66.900": "中耳炎",
    "K02.900": "龋病",
}

# The drug catalogue: local code, name, specification, unit, price (yuan), group. Names and
# specifications only, as such catalogues are; mapping codes to ATC is the warehouse's work.
DRUGS: tuple[tuple[str, str, str, str, float, str], ...] = (
    ("100101", "阿莫西林胶囊", "0.25g*24粒", "盒", 12.50, "resp"),
    ("100102", "头孢呋辛酯片", "0.25g*12片", "盒", 28.00, "resp"),
    ("100103", "左氧氟沙星片", "0.5g*6片", "盒", 22.00, "resp"),
    ("100104", "阿奇霉素片", "0.25g*6片", "盒", 18.60, "resp"),
    ("100105", "复方甘草片", "100片", "瓶", 6.80, "resp"),
    ("100106", "连花清瘟胶囊", "0.35g*24粒", "盒", 14.80, "resp"),
    ("100107", "氨溴索口服溶液", "100ml", "瓶", 19.50, "resp"),
    ("200101", "硝苯地平控释片", "30mg*7片", "盒", 32.00, "cardio"),
    ("200102", "苯磺酸氨氯地平片", "5mg*7片", "盒", 15.30, "cardio"),
    ("200103", "阿托伐他汀钙片", "20mg*7片", "盒", 38.00, "cardio"),
    ("200104", "阿司匹林肠溶片", "100mg*30片", "盒", 13.50, "cardio"),
    ("200105", "复方丹参滴丸", "27mg*180丸", "瓶", 25.00, "cardio"),
    ("300101", "奥美拉唑肠溶胶囊", "20mg*14粒", "盒", 16.00, "gi"),
    ("300102", "铝碳酸镁咀嚼片", "0.5g*20片", "盒", 21.00, "gi"),
    ("300103", "蒙脱石散", "3g*10袋", "盒", 12.00, "gi"),
    ("400101", "二甲双胍片", "0.5g*20片", "盒", 9.80, "endo"),
    ("400102", "格列美脲片", "2mg*15片", "盒", 29.00, "endo"),
    ("500101", "布洛芬缓释胶囊", "0.3g*20粒", "盒", 15.00, "pain"),
    ("500102", "双氯芬酸钠缓释片", "75mg*10片", "盒", 11.00, "pain"),
    ("600101", "布洛芬混悬液", "100ml", "瓶", 17.00, "kids"),
    ("600102", "小儿氨酚黄那敏颗粒", "6g*10袋", "盒", 9.00, "kids"),
    ("700101", "左氧氟沙星滴眼液", "5ml", "支", 18.00, "eye"),
    ("800101", "甲硝唑片", "0.2g*21片", "盒", 5.50, "gyn"),
    ("900101", "0.9%氯化钠注射液", "250ml", "袋", 3.20, "ed"),
    ("900102", "葡萄糖注射液", "5% 250ml", "袋", 3.50, "ed"),
    ("900103", "注射用头孢曲松钠", "1g", "支", 9.60, "ed"),
)


@dataclass(frozen=True)
class _Dept:
    code: str
    name: str
    kind: str  # 临床 / 急诊 / 医技
    population: str  # hdp_sim.people.POPULATIONS
    op_weight: float
    ip_weight: float
    diagnoses: tuple[str, ...]
    drug_groups: tuple[str, ...]


DEPARTMENTS: tuple[_Dept, ...] = (
    _Dept("NK01", "呼吸内科", "临床", "adult", 10, 8,
          ("J06.900", "J18.900", "J18.900x001", "J20.900", "J44.100", "J45.900"), ("resp",)),
    _Dept("NK02", "心血管内科", "临床", "adult", 9, 7,
          ("I10.x00", "I10.x00x002", "I20.000", "I25.103", "I50.900"), ("cardio",)),
    _Dept("NK03", "消化内科", "临床", "adult", 7, 5,
          ("K29.700", "K21.900", "A09.900"), ("gi",)),
    _Dept("NK04", "内分泌科", "临床", "adult", 6, 3, ("E11.900", "E11.900x001", "E78.500"),
          ("endo", "cardio")),
    _Dept("NK05", "神经内科", "临床", "adult", 5, 5, ("I63.900", "G43.900"), ("cardio", "pain")),
    _Dept("WK01", "普通外科", "临床", "adult", 5, 8, ("K35.800", "K80.200"), ("gi", "pain")),
    _Dept("WK02", "骨科", "临床", "adult", 6, 6, ("M17.900", "M54.500", "S72.000"), ("pain",)),
    _Dept("WK03", "泌尿外科", "临床", "adult", 3, 3, ("N39.000", "N20.000"), ("resp", "pain")),
    _Dept("EK01", "儿科", "临床", "child", 10, 4,
          ("J06.900", "J02.900", "J03.900", "J18.900", "A09.900", "R50.900"), ("kids", "resp")),
    _Dept("FK01", "妇科", "临床", "female", 5, 2, ("N76.000", "N39.000"), ("gyn",)),
    _Dept("CK01", "产科", "临床", "obstetric", 3, 4, ("Z34.900", "O80.000"), ("gyn",)),
    _Dept("JZK", "急诊科", "急诊", "any", 8, 0,
          ("J06.900", "J18.900", "R50.900", "S06.000", "A09.900", "I63.900"), ("ed", "resp")),
    _Dept("YK", "眼科", "临床", "any", 3, 1, ("H10.900", "H26.900"), ("eye",)),
    _Dept("EBH", "耳鼻喉科", "临床", "any", 3, 1, ("H66.900", "J02.900", "J03.900"), ("resp",)),
    _Dept("KQ", "口腔科", "临床", "any", 3, 0, ("K02.900",), ("gyn", "pain")),
    _Dept("ZYK", "中医科", "临床", "adult", 3, 0, ("J06.900", "K29.700", "M54.500"),
          ("resp", "gi")),
    _Dept("YJ01", "检验科", "医技", "any", 0, 0, (), ()),
    _Dept("YJ02", "放射科", "医技", "any", 0, 0, (), ()),
)  # fmt: skip

# Name variants: simplified -> traditional for common characters of the simulated names, and
# pinyin for a name written in letters (a name with a character outside the table is written
# in traditional characters instead).
TRADITIONAL = dict(
    zip(
        "张陈刘黄赵吴杨孙马胡郭罗郑梁谢韩冯邓许冯叶苏吕钟谭陆汪贾夏韦邹邱闫伟强军杰涛刚辉鹏华飞"
        "鑫波斌浩凯健帅宁龙国志峰亮东海洋兴荣芳娜静丽艳娟霞玲红梅燕萍颖倩莉晶洁欣悦琪兰凤岚瑶诗"
        "晓春秋嘉瑞晨宇远",
        "張陳劉黃趙吳楊孫馬胡郭羅鄭梁謝韓馮鄧許馮葉蘇呂鍾譚陸汪賈夏韋鄒邱閆偉強軍傑濤剛輝鵬華飛"
        "鑫波斌浩凱健帥寧龍國誌峰亮東海洋興榮芳娜靜麗艷娟霞玲紅梅燕萍穎倩莉晶潔欣悅琪蘭鳳嵐瑤詩"
        "曉春秋嘉瑞晨宇遠",
        strict=True,
    )
)
PINYIN = dict(
    pair.split(":")
    for pair in (  # noqa: SIM905 (a table, one line of text per row, reads better than a list)
        "王:wang 李:li 张:zhang 刘:liu 陈:chen 杨:yang 黄:huang 赵:zhao 吴:wu 周:zhou 徐:xu "
        "孙:sun 马:ma 朱:zhu 胡:hu 郭:guo 何:he 高:gao 林:lin 罗:luo 郑:zheng 梁:liang 谢:xie "
        "宋:song 唐:tang 许:xu 伟:wei 强:qiang 磊:lei 军:jun 勇:yong 杰:jie 涛:tao 明:ming "
        "超:chao 刚:gang 平:ping 辉:hui 鹏:peng 华:hua 飞:fei 鑫:xin 波:bo 斌:bin 宇:yu 浩:hao "
        "凯:kai 健:jian 俊:jun 帆:fan 帅:shuai 旭:xu 宁:ning 龙:long 建:jian 国:guo 志:zhi "
        "文:wen 峰:feng 亮:liang 成:cheng 东:dong 海:hai 洋:yang 芳:fang 娜:na 敏:min 静:jing "
        "丽:li 艳:yan 娟:juan 霞:xia 秀:xiu 玲:ling 桂:gui 英:ying 红:hong 梅:mei 琳:lin "
        "燕:yan 萍:ping 雪:xue 婷:ting 颖:ying 倩:qian 慧:hui 莉:li 晶:jing 洁:jie 佳:jia "
        "欣:xin 怡:yi 雨:yu 悦:yue 琪:qi 晓:xiao 子:zi 春:chun 金:jin 秋:qiu 天:tian 思:si "
        "嘉:jia 一:yi 瑞:rui 安:an 晨:chen 梓:zi 博:bo 远:yuan"
    ).split()
)

DAY_SECONDS = 86_400
_STREAM_STAFF, _STREAM_REGISTRY, _STREAM_DAY = 101, 102, 103


@dataclass(frozen=True)
class HospitalBConfig:
    seed: int = 42
    scale: float = 0.1  # rows per 1.0 of scale: see the module docstring
    history_days: int = 90
    first_day: date = date(2024, 1, 1)
    defect_rate: float = 0.01  # share of rows per defect kind (registration realities aside)


@dataclass
class HospitalB:
    """Every row of one simulation, as column arrays per table."""

    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    manifest: list[tuple] = field(default_factory=list)

    def defect(self, day, kind: str, table: str, record_id, column=None, clean=None) -> None:
        clean_text = None if clean is None else str(clean)
        self.manifest.append((str(day), kind, table, str(record_id), column, clean_text))

    def count(self, table: str) -> int:
        rows = self.tables.get(table)
        return 0 if rows is None else len(rows[COLUMNS[table][0]])

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.manifest:
            out[row[1]] = out.get(row[1], 0) + 1
        return out


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


def _day_ord(day: date) -> int:
    return (day - date(1970, 1, 1)).days


# --------------------------------------------------------------------------------------------
# Hospital A's people, replayed


def hospital_a_registry(seed: int, scale: float, first_day: date) -> dict[str, np.ndarray]:
    """The clean identities of Hospital A's registry (his.py `_registry`, patient_id = person_id
    1..n), replayed draw for draw from the same seed: the people a referral brings here."""
    rng = his._rng(seed, his._STREAM_REGISTRY)
    n = max(10, round(his.REGISTRY * scale))
    d0 = _day_ord(first_day)
    is_male, birth = ppl.age_and_sex(rng, np.full(n, "any"), d0)
    start = np.maximum(birth, d0 - 5 * 365)
    reg_secs = (start * DAY_SECONDS + rng.random(n) * (d0 - start) * DAY_SECONDS).astype(np.int64)
    order = np.argsort(reg_secs, kind="stable")
    is_male, birth = is_male[order], birth[order]
    rows = ppl.people(rng, is_male, birth)
    return {
        "patient_id": np.arange(1, n + 1, dtype=np.int64),
        "is_male": is_male,
        "birth": birth,
        **{k: np.asarray(v, dtype=object) for k, v in rows.items()},
    }


# --------------------------------------------------------------------------------------------
# Text in the vendor's formats


def format_time(ts: datetime, fmt: str) -> str:
    """A time as one of Hospital B's front ends writes it."""
    if fmt == "iso":
        return ts.strftime("%Y-%m-%d %H:%M:%S")
    if fmt == "slash":
        return f"{ts.year}/{ts.month}/{ts.day} {ts.hour}:{ts.minute:02d}"
    return ts.strftime("%Y%m%d%H%M%S")


def format_date(day: date, fmt: str) -> str:
    if fmt == "iso":
        return day.isoformat()
    if fmt == "slash":
        return f"{day.year}/{day.month}/{day.day}"
    return day.strftime("%Y%m%d")


def _unparseable(ts: datetime, rng: np.random.Generator) -> str:
    """A time no format reads: an impossible calendar date, or a two-digit year."""
    if rng.random() < 0.5:
        return f"{ts.year}-02-30 {ts.hour:02d}:{ts.minute:02d}:00"
    return f"{ts.year % 100:02d}-{ts.month}-{ts.day} {ts.hour}:{ts.minute:02d}"


def _times_text(rng: np.random.Generator, stamps: np.ndarray) -> np.ndarray:
    """datetime64[s] values as text, each in a format drawn by share."""
    fmts = rng.choice(len(TIME_FORMATS), size=len(stamps), p=TIME_FORMAT_SHARES)
    out = [
        format_time(t, TIME_FORMATS[f])
        for t, f in zip(stamps.astype("datetime64[s]").tolist(), fmts.tolist(), strict=True)
    ]
    return np.asarray(out, dtype=object)


def name_variant(name: str, rng: np.random.Generator) -> str:
    """The name as another registration desk types it."""
    kind = int(rng.integers(4))
    if kind == 0 or (kind == 2 and not all(c in PINYIN for c in name)):
        variant = "".join(TRADITIONAL.get(c, c) for c in name)
        if variant != name:
            return variant
        kind = 1
    if kind == 1:
        i = ppl.given_name_start(name)
        return name[:i] + (" " if rng.random() < 0.5 else "\u3000") + name[i:]
    if kind == 2:
        i = ppl.given_name_start(name)
        surname = "".join(PINYIN[c] for c in name[:i]).upper()
        return f"{surname} {''.join(PINYIN[c] for c in name[i:]).capitalize()}"
    start = ppl.given_name_start(name)
    for pos in range(start, len(name)):
        typo = ref.HOMOPHONES.get(name[pos])
        if typo:
            return name[:pos] + typo + name[pos + 1 :]
    return name[:start] + " " + name[start:]


def mistype_card(card: str, rng: np.random.Generator) -> str:
    """One of the first 17 digits typed wrong: the check character no longer matches."""
    pos = int(rng.integers(17))
    wrong = [d for d in "0123456789" if d != card[pos]]
    return card[:pos] + wrong[int(rng.integers(len(wrong)))] + card[pos + 1 :]


# --------------------------------------------------------------------------------------------
# The simulation


def simulate(config: HospitalBConfig) -> HospitalB:
    """Every row of Hospital B for the configured history (pure: no database)."""
    if config.history_days < 1:
        raise ValueError("HospitalBConfig.history_days must be at least 1")
    out = HospitalB()
    day0 = config.first_day
    _departments(out, day0)
    doctors = _doctors(out, config)
    _drugs(out, day0)
    patients = _registry(out, config)
    last = day0 + timedelta(days=config.history_days - 1)
    ids = _Ids()
    days = [_simulate_day(config, day0 + timedelta(days=k), last, patients, doctors, ids)
            for k in range(config.history_days)]  # fmt: skip
    for table in ("mzgh", "zyjl", "zdxx", "cfmx"):
        chunks = [d.tables[table] for d in days if table in d.tables]
        out.tables[table] = {
            c: np.concatenate([ch[c] for ch in chunks]) if chunks else np.zeros(0, dtype=object)
            for c in COLUMNS[table]
        }
    for d in days:
        out.manifest.extend(d.manifest)
    return out


@dataclass
class _Ids:
    """The next key of each table: monotonic across days, as the vendor's sequences are."""

    ghxh: int = 50_001
    zyh: int = 1
    zdxh: int = 1
    mxxh: int = 200_001
    cfh: int = 1

    def take(self, name: str, n: int) -> np.ndarray:
        first = getattr(self, name)
        setattr(self, name, first + n)
        return np.arange(first, first + n, dtype=np.int64)


def _departments(out: HospitalB, day0: date) -> None:
    n = len(DEPARTMENTS)
    out.tables["ksdm"] = {
        "ksdm": np.asarray([d.code for d in DEPARTMENTS]),
        "ksmc": np.asarray([d.name for d in DEPARTMENTS]),
        "kslb": np.asarray([d.kind for d in DEPARTMENTS]),
        "zfbz": np.full(n, "0"),
        "gxsj": np.full(n, np.datetime64(datetime(day0.year - 3, 3, 1, 9), "s")),
    }


@dataclass
class _Staff:
    code: np.ndarray
    dept: np.ndarray  # index into DEPARTMENTS
    senior: np.ndarray


def _doctors(out: HospitalB, cfg: HospitalBConfig) -> _Staff:
    rng = _rng(cfg.seed, _STREAM_STAFF)
    weight = np.asarray([d.op_weight + d.ip_weight + 1 for d in DEPARTMENTS])
    per = np.maximum(2, np.rint(DOCTORS * cfg.scale * weight / weight.sum())).astype(int)
    dept = np.repeat(np.arange(len(DEPARTMENTS)), per)
    n = len(dept)
    rank = rng.choice(len(TITLES), size=n, p=his.TITLE_SHARES)
    first = np.concatenate([[0], np.cumsum(per)[:-1]])
    rank[first] = 0  # every department has a 主任医师
    is_male = rng.random(n) < 0.5
    codes = np.asarray([f"YS{i:04d}" for i in range(1, n + 1)])
    hired = np.datetime64(datetime(cfg.first_day.year - 2, 6, 1, 10), "s")
    out.tables["ysxx"] = {
        "ysdm": codes,
        "ysxm": ppl.names(rng, is_male),
        "ksdm": np.asarray([DEPARTMENTS[i].code for i in dept]),
        "zc": np.asarray(TITLES)[rank],
        "xb": np.where(is_male, "男", "女"),
        "gxsj": hired + rng.integers(0, 400, n).astype("timedelta64[D]"),
    }
    return _Staff(codes, dept, rank <= 1)


def _drugs(out: HospitalB, day0: date) -> None:
    n = len(DRUGS)
    out.tables["ypzd"] = {
        "ypdm": np.asarray([d[0] for d in DRUGS]),
        "ypmc": np.asarray([d[1] for d in DRUGS]),
        "gg": np.asarray([d[2] for d in DRUGS]),
        "dw": np.asarray([d[3] for d in DRUGS]),
        "dj": np.asarray([round(d[4] * 100) for d in DRUGS], dtype=np.int64),
        "gxsj": np.full(n, np.datetime64(datetime(day0.year - 1, 12, 1, 9), "s")),
    }


@dataclass
class _Patients:
    brid: np.ndarray
    age_days: np.ndarray  # at the first simulated day
    is_male: np.ndarray
    weight: np.ndarray  # how often the patient comes back


def _registry(out: HospitalB, cfg: HospitalBConfig) -> _Patients:  # noqa: PLR0915
    """Hospital B's registry before the first day: its own people and Hospital A's referrals."""
    rng = _rng(cfg.seed, _STREAM_REGISTRY)
    d0 = _day_ord(cfg.first_day)
    n = max(20, round(REGISTRY * cfg.scale))
    a = hospital_a_registry(cfg.seed, cfg.scale, cfg.first_day)
    k = min(len(a["patient_id"]), max(2, round(n * REFERRAL_SHARE)))
    referral_idx = np.sort(rng.choice(len(a["patient_id"]), size=k, replace=False))
    own = n - k
    is_male, birth = ppl.age_and_sex(rng, np.full(own, "any"), d0)
    mine = ppl.people(rng, is_male, birth)
    # referrals are spread among Hospital B's own registrations (ids follow registration order)
    is_referral = np.zeros(n, bool)
    is_referral[rng.choice(n, size=k, replace=False)] = True
    ref_pos, own_pos = np.flatnonzero(is_referral), np.flatnonzero(~is_referral)
    cols = {c: np.empty(n, dtype=object) for c in ("name", "id_card_no", "phone", "address")}
    sex = np.empty(n, bool)
    births = np.empty(n, np.int64)
    person = np.empty(n, np.int64)
    for c, values in cols.items():
        values[own_pos] = np.asarray(mine[c], dtype=object)
        values[ref_pos] = a[c][referral_idx]
    sex[own_pos], sex[ref_pos] = is_male, a["is_male"][referral_idx]
    births[own_pos], births[ref_pos] = birth, a["birth"][referral_idx]
    person[own_pos] = PERSON_ID_BASE + np.arange(1, own + 1)
    person[ref_pos] = a["patient_id"][referral_idx]
    brid = BRID_BASE + np.arange(1, n + 1, dtype=np.int64)
    start = np.maximum(births, d0 - 6 * 365)
    reg_secs = np.sort(
        (start * DAY_SECONDS + rng.random(n) * (d0 - start) * DAY_SECONDS).astype(np.int64)
    )
    registered = reg_secs.astype("datetime64[s]")
    reg_days = registered.astype("datetime64[D]").astype(str)
    # referrals: the true pairs, and how this desk recorded the person
    for i in ref_pos.tolist():
        out.defect(reg_days[i], "cross_hospital_referral", "brxx", brid[i], None, person[i])
        u = rng.random(3)
        if u[0] < REFERRAL_NAME_VARIANT:
            clean = cols["name"][i]
            cols["name"][i] = name_variant(clean, rng)
            if cols["name"][i] != clean:
                out.defect(reg_days[i], "name_variant", "brxx", brid[i], "xm", clean)
        if u[1] < REFERRAL_MOVED:
            clean = cols["address"][i]
            local = ppl._tables()["local_idx"]
            cols["address"][i] = ppl.addresses(rng, 1, local[rng.integers(len(local), size=1)])[0]
            out.defect(reg_days[i], "moved_address", "brxx", brid[i], "dz", clean)
        if u[2] < REFERRAL_NEW_PHONE:
            clean = cols["phone"][i]
            cols["phone"][i] = ppl.phones(rng, 1)[0]
            out.defect(reg_days[i], "changed_phone", "brxx", brid[i], "lxdh", clean)
    # the card as recorded: none, a passport, a mistyped number
    age_at_reg = (reg_secs // DAY_SECONDS) - births
    child = age_at_reg < 16 * ppl.DAYS_PER_YEAR
    zjlx = np.full(n, "身份证", dtype=object)
    u = rng.random(n)
    for i in np.flatnonzero(u < np.where(child, NO_CARD_CHILD, NO_CARD_ADULT)).tolist():
        out.defect(reg_days[i], "missing_id_card", "brxx", brid[i], "sfzh", cols["id_card_no"][i])
        cols["id_card_no"][i], zjlx[i] = None, None
    v = rng.random(n)
    # Hospital A knows a referral by a resident card: only Hospital B's own people are foreigners
    passport = np.flatnonzero((v < PASSPORT_SHARE) & ~child & (zjlx == "身份证") & ~is_referral)
    for i in passport.tolist():
        out.defect(reg_days[i], "passport_id", "brxx", brid[i], "sfzh", cols["id_card_no"][i])
        cols["id_card_no"][i] = f"E{int(rng.integers(10**7, 10**8))}"
        zjlx[i] = "护照"
    w = rng.random(n)
    for i in np.flatnonzero((w < MISTYPED_CARD_SHARE) & (zjlx == "身份证")).tolist():
        clean = cols["id_card_no"][i]
        cols["id_card_no"][i] = mistype_card(clean, rng)
        out.defect(reg_days[i], "mistyped_id_card", "brxx", brid[i], "sfzh", clean)
    birth_dates = births.astype("datetime64[D]").tolist()
    date_fmt = rng.choice(3, size=n, p=DATE_FORMAT_SHARES)
    out.tables["brxx"] = {
        "brid": brid,
        "jzkh": np.asarray([f"B{b:09d}" for b in brid.tolist()]),
        "xm": cols["name"],
        "xb": np.where(sex, "男", "女"),
        "csrq": np.asarray(
            [
                format_date(b, ("iso", "compact", "slash")[f])
                for b, f in zip(birth_dates, date_fmt.tolist(), strict=True)
            ],
            dtype=object,
        ),
        "zjlx": zjlx,
        "sfzh": cols["id_card_no"],
        "lxdh": cols["phone"],
        "dz": cols["address"],
        "djsj": _times_text(rng, registered),
        "xgsj": registered,
    }
    out.tables["sim.person_truth"] = {
        "brid": brid,
        "person_id": person,
        "sex": np.where(sex, "M", "F"),
        "birth_date": births.astype("datetime64[D]"),
    }
    out.tables["sim.cross_hospital_truth"] = {
        "brid": brid[ref_pos],
        "his_patient_id": person[ref_pos],  # Hospital A's registry: patient_id = person_id
        "person_id": person[ref_pos],
    }
    weight = np.exp(his._hash_normal(brid, cfg.seed, 111))
    return _Patients(brid, d0 - births, sex, weight)


# One day reads top to bottom (registrations, stays, diagnoses, prescription lines, defects);
# splitting it further would scatter the shared per-day arrays across many signatures.
def _simulate_day(  # noqa: PLR0915
    cfg: HospitalBConfig, day: date, horizon: date, pts: _Patients, staff: _Staff, ids: _Ids
) -> HospitalB:
    """One day's registrations, stays, diagnoses and prescription lines."""
    out = HospitalB()
    rng = _rng(cfg.seed, _day_ord(day), _STREAM_DAY)
    dow = day.weekday()
    op_w = np.asarray([d.op_weight for d in DEPARTMENTS], dtype=float)
    ip_w = np.asarray([d.ip_weight for d in DEPARTMENTS], dtype=float)
    emergency = np.asarray([d.kind == "急诊" for d in DEPARTMENTS])
    week = np.where(emergency, his.ED_WEEK[dow], his.OP_WEEK[dow])
    op_n = rng.poisson(VISITS_PER_DAY * cfg.scale * op_w / op_w.sum() * week)
    ip_n = rng.poisson(ADMISSIONS_PER_DAY * cfg.scale * ip_w / ip_w.sum() * his.IP_WEEK[dow])
    d_ord = _day_ord(day)
    elapsed = d_ord - _day_ord(cfg.first_day)
    age = pts.age_days + elapsed
    year = ppl.DAYS_PER_YEAR
    masks = {
        "child": age < 14 * year,
        "adult": age >= 14 * year,
        "female": ~pts.is_male & (age >= 16 * year),
        "obstetric": ~pts.is_male & (age >= 20 * year) & (age < 45 * year),
        "any": np.ones(len(age), bool),
    }

    def patients_for(dept_idx: np.ndarray) -> np.ndarray:
        chosen = np.empty(len(dept_idx), np.int64)
        # sorted: a set of strings iterates in a per-process order, the draws must not
        for pop in sorted({DEPARTMENTS[i].population for i in dept_idx.tolist()}):
            sel = np.flatnonzero([DEPARTMENTS[i].population == pop for i in dept_idx.tolist()])
            cand = np.flatnonzero(masks[pop])
            if not len(cand):
                cand = np.arange(len(age))
            w = pts.weight[cand]
            chosen[sel] = pts.brid[cand[rng.choice(len(cand), len(sel), p=w / w.sum())]]
        return chosen

    def doctors_for(dept_idx: np.ndarray, senior: bool = False) -> np.ndarray:
        out_codes = np.empty(len(dept_idx), dtype=object)
        for d in np.unique(dept_idx).tolist():
            sel = np.flatnonzero(dept_idx == d)
            pool = np.flatnonzero((staff.dept == d) & (staff.senior if senior else True))
            if not len(pool):
                pool = np.flatnonzero(staff.dept == d)
            out_codes[sel] = staff.code[pool[rng.integers(len(pool), size=len(sel))]]
        return out_codes

    # --- outpatient registrations
    vd = np.repeat(np.arange(len(DEPARTMENTS)), op_n)
    m = len(vd)
    secs = np.where(
        emergency[vd],
        rng.random(m) * DAY_SECONDS,
        np.where(rng.random(m) < 0.7, rng.normal(9.5, 1.0, m), rng.normal(14.8, 0.9, m)) * 3600,
    )
    secs = np.clip(secs, 0, DAY_SECONDS - 120).astype(np.int64)
    order = np.argsort(secs, kind="stable")
    vd, secs = vd[order], secs[order]
    at = np.datetime64(day, "s") + secs.astype("timedelta64[s]")
    v_doctor = doctors_for(vd)
    senior = np.isin(v_doctor, staff.code[staff.senior])
    ghlb = np.where(emergency[vd], "急诊", np.where(senior & (rng.random(m) < 0.6), "专家", "普通"))
    cancelled = rng.random(m) < CANCEL_RATE
    fee = np.where(ghlb == "专家", 3000, np.where(ghlb == "急诊", 2000, 1000)).astype(np.int64)
    brid = patients_for(vd)
    ghsj = _times_text(rng, at)
    ghxh = ids.take("ghxh", m)
    local = np.arange(m)
    for i in his._pick(rng, local, cfg.defect_rate).tolist():
        clean = str(at[i]).replace("T", " ")
        out.defect(day, "unparseable_timestamp", "mzgh", ghxh[i], "ghsj", clean)
        ghsj[i] = _unparseable(at[i].astype(datetime), rng)
    for i in his._pick(rng, local, cfg.defect_rate).tolist():
        out.defect(day, "orphan_patient_ref", "mzgh", ghxh[i], "brid", brid[i])
        brid[i] = ORPHAN_ID_BASE + ghxh[i]
    out.tables["mzgh"] = {
        "ghxh": ghxh,
        "brid": brid,
        "ksdm": np.asarray([DEPARTMENTS[i].code for i in vd.tolist()]),
        "ysdm": v_doctor,
        "ghsj": ghsj,
        "ghlb": ghlb,
        "ghf": fee,
        "thbz": np.where(cancelled, "1", "0"),
        "czsj": at + np.where(cancelled, rng.integers(300, 3600, m), 0).astype("timedelta64[s]"),
    }

    # --- inpatient stays (discharged by the horizon are written discharged)
    ad = np.repeat(np.arange(len(DEPARTMENTS)), ip_n)
    k = len(ad)
    a_secs = np.clip(rng.normal(10.5, 2.0, k) * 3600, 0, DAY_SECONDS - 1).astype(np.int64)
    admitted = np.datetime64(day, "s") + a_secs.astype("timedelta64[s]")
    los = np.clip(np.rint(6.0 * np.exp(0.5 * rng.normal(0, 1, k))), 1, 60).astype(np.int64)
    out_secs = np.clip(rng.normal(10.0, 1.5, k) * 3600, 0, DAY_SECONDS - 1).astype(np.int64)
    discharged_at = (np.datetime64(day, "D") + los.astype("timedelta64[D]")).astype(
        "datetime64[s]"
    ) + out_secs.astype("timedelta64[s]")
    discharged = discharged_at.astype("datetime64[D]") <= np.datetime64(horizon, "D")
    cyrq = _times_text(rng, discharged_at)
    cyrq[~discharged] = None
    status = np.asarray(DISCHARGE)[rng.choice(len(DISCHARGE), size=k, p=DISCHARGE_SHARES)]
    cost = np.rint(los * 180_000 * np.exp(0.3 * rng.normal(0, 1, k))).astype(np.int64)
    zyh = np.asarray([f"ZY{i:08d}" for i in ids.take("zyh", k).tolist()], dtype=object)
    for i in his._pick(rng, np.flatnonzero(discharged), cfg.defect_rate).tolist():
        out.defect(day, "discharge_before_admission", "zyjl", zyh[i], "cyrq", cyrq[i])
        cyrq[i] = format_time(
            (admitted[i] - np.timedelta64(int(rng.integers(3600, 2 * DAY_SECONDS)), "s")).astype(
                datetime
            ),
            "iso",
        )
    out.tables["zyjl"] = {
        "zyh": zyh,
        "brid": patients_for(ad),
        "ksdm": np.asarray([DEPARTMENTS[i].code for i in ad.tolist()]),
        "ysdm": doctors_for(ad, senior=True),
        "bq": np.asarray([f"{DEPARTMENTS[i].name[:2]}病区" for i in ad.tolist()], dtype=object),
        "ryrq": _times_text(rng, admitted),
        "cyrq": cyrq,
        "cyqk": np.where(discharged, status, None).astype(object),
        "zfy": np.where(discharged, cost, his.MONEY_NULL),
        "xgsj": np.where(discharged, discharged_at, admitted + np.timedelta64(600, "s")),
    }

    # --- diagnoses of completed registrations and of stays
    done = np.flatnonzero(~cancelled)
    enc_kind = np.concatenate([np.full(len(done), "门诊"), np.full(k, "住院")])
    enc_key = np.concatenate([ghxh[done].astype(str).astype(object), zyh])
    enc_dept = np.concatenate([vd[done], ad])
    enc_at = np.concatenate([at[done], admitted])
    per = rng.choice([1, 2, 3], size=len(enc_kind), p=[0.55, 0.32, 0.13])
    rows_enc = np.repeat(np.arange(len(enc_kind)), per)
    slot = np.arange(len(rows_enc)) - np.repeat(np.cumsum(per) - per, per)
    codes = np.asarray(
        [
            DEPARTMENTS[enc_dept[e]].diagnoses[
                int(rng.integers(len(DEPARTMENTS[enc_dept[e]].diagnoses)))
            ]
            for e in rows_enc.tolist()
        ],
        dtype=object,
    )
    out.tables["zdxx"] = {
        "zdxh": ids.take("zdxh", len(rows_enc)),
        "jzlx": enc_kind[rows_enc],
        "jzh": enc_key[rows_enc],
        "zddm": codes,
        "zdmc": np.asarray([ICD_CN2[c] for c in codes.tolist()], dtype=object),
        "zdlb": np.where(slot == 0, "主要诊断", "其他诊断"),
        "czsj": enc_at[rows_enc] + (600 + slot * 60).astype("timedelta64[s]"),
    }

    # --- prescription lines of completed registrations
    has_rx = done[rng.random(len(done)) < PRESCRIPTION_SHARE]
    lines = rng.choice([1, 2, 3, 4], size=len(has_rx), p=[0.3, 0.35, 0.22, 0.13])
    line_visit = np.repeat(has_rx, lines)
    groups = {g: [i for i, d in enumerate(DRUGS) if d[5] == g] for g in {d[5] for d in DRUGS}}

    def drug_for(visit: int) -> int:
        options = DEPARTMENTS[vd[visit]].drug_groups
        group = groups[options[int(rng.integers(len(options)))]]
        return group[int(rng.integers(len(group)))]

    drug_idx = np.asarray([drug_for(v) for v in line_visit.tolist()], dtype=np.int64)
    n_lines = len(line_visit)
    qty = rng.choice([1, 1, 1, 2, 2, 3], size=n_lines).astype(np.int64)
    price = np.asarray([round(d[4] * 100) for d in DRUGS], dtype=np.int64)
    amount = qty * price[drug_idx] if n_lines else np.zeros(0, np.int64)
    ypdm = np.asarray([DRUGS[i][0] for i in drug_idx.tolist()], dtype=object)
    written = at[line_visit] + rng.integers(300, 1800, n_lines).astype("timedelta64[s]")
    idx = np.arange(n_lines)
    mxxh = ids.take("mxxh", n_lines)
    cfh_of_visit = ids.take("cfh", len(has_rx))
    cfh = np.asarray([f"CF{c:09d}" for c in np.repeat(cfh_of_visit, lines).tolist()], dtype=object)
    for i in his._pick(rng, idx, cfg.defect_rate).tolist():
        out.defect(day, "negative_amount", "cfmx", mxxh[i], "je", money(amount[i : i + 1])[0])
        amount[i] = -amount[i]
    for i in his._pick(rng, idx, cfg.defect_rate).tolist():
        out.defect(day, "orphan_drug_ref", "cfmx", mxxh[i], "ypdm", ypdm[i])
        ypdm[i] = f"99{int(rng.integers(1000, 9999))}"
    out.tables["cfmx"] = {
        "mxxh": mxxh,
        "cfh": cfh,
        "ghxh": ghxh[line_visit],
        "ypdm": ypdm,
        "sl": qty * 100,  # a quantity in hundredths, written like money
        "dw": np.asarray([DRUGS[i][3] for i in drug_idx.tolist()], dtype=object),
        "je": amount,
        "kfsj": _times_text(rng, written),
        "czsj": written,
    }
    return out


# --------------------------------------------------------------------------------------------
# Writing


SIM_DATABASE = "hisb_sim"  # the simulator's bookkeeping (sim.* in memory); never extracted
_BATCH = 5_000  # rows per multi-row INSERT


def _target(table: str) -> str:
    """The MySQL table a simulated table is written to: `hisb.<t>`, or `hisb_sim.<t>`."""
    return f"{SIM_DATABASE}.{table[4:]}" if table.startswith("sim.") else f"{SOURCE}.{table}"


def schema_statements() -> list[str]:
    """hisb_schema.sql's statements (the file is MySQL DDL, one statement per ';')."""
    text = "\n".join(
        line.split("--", 1)[0] for line in SCHEMA_SQL.read_text(encoding="utf-8").splitlines()
    )
    return [s.strip() for s in text.split(";") if s.strip()]


def create_schema(conn) -> None:
    """Create the hisb and hisb_sim tables (idempotent) on a PyMySQL connection whose login owns
    both databases (hdp_sim.sources makes them)."""
    with conn.cursor() as cur:
        for statement in schema_statements():
            cur.execute(statement)
    conn.commit()


def table_counts(conn) -> dict[str, int]:
    """Rows per hisb.* table."""
    out = {}
    with conn.cursor() as cur:
        for t in TABLES:
            cur.execute(f"select count(*) from {SOURCE}.{t}")
            out[t] = cur.fetchone()[0]
    conn.rollback()
    return out


def _mysql_values(values: np.ndarray) -> list[str | None]:
    """One column as MySQL literals' Python values: text, or None for NULL."""
    text = column_text(values)
    if values.dtype.kind == "M":  # '2024-01-02T08:30:05' -> '2024-01-02 08:30:05'
        return [None if v == NULL else v.replace("T", " ") for v in text]
    return [None if v == NULL else v for v in text]


def _insert_rows(cur, table: str, columns: tuple[str, ...], data: list[np.ndarray]) -> int:
    """Multi-row INSERTs of equal-length column arrays (PyMySQL's executemany batches them)."""
    n = len(data[0]) if data else 0
    statement = (
        f"insert into {table} ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})"
    )
    for start in range(0, n, _BATCH):
        parts = [_mysql_values(a[start : start + _BATCH]) for a in data]
        cur.executemany(statement, list(zip(*parts, strict=True)))
    return n


def generate(conn, config: HospitalBConfig) -> dict[str, int]:
    """(Re)create the source on MariaDB/MySQL: empty hisb.* and hisb_sim.*, write the
    simulation; rows per table. `conn` is a PyMySQL connection of the databases' owner."""
    sim = simulate(config)
    try:
        with conn.cursor() as cur:
            for statement in schema_statements():
                cur.execute(statement)
            names = [f"sim.{t}" for t in ("clock", "defect_manifest", "person_truth")]
            for table in [*TABLES, *names, "sim.cross_hospital_truth"]:
                # truncate commits implicitly in MySQL: the load below is one transaction
                cur.execute(f"truncate table {_target(table)}")
            for table, rows in sim.tables.items():
                cols = COLUMNS[table]
                data = [money(rows[c]) if c in MONEY_COLUMNS else rows[c] for c in cols]
                _insert_rows(cur, _target(table), cols, data)
            manifest = list(zip(*sim.manifest, strict=True)) if sim.manifest else []
            if manifest:
                _insert_rows(cur, _target("sim.defect_manifest"), COLUMNS["sim.defect_manifest"],
                             [np.asarray(col, dtype=object) for col in manifest])  # fmt: skip
            last = config.first_day + timedelta(days=config.history_days - 1)
            cur.execute(
                f"insert into {_target('sim.clock')} "
                "(seed, scale, first_day, current_day, defect_rate) values (%s, %s, %s, %s, %s)",
                (config.seed, config.scale, config.first_day, last, config.defect_rate),
            )
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    counts = table_counts(conn)
    log.info("Hospital B source generated: %s", counts)
    return counts
