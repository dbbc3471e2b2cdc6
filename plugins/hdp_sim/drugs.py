"""The simulated pharmacy's drug catalogue: real generics with WHO ATC codes and DDDs.

About 90 generic drugs are written out by hand below, each with one or more presentations
(规格 and dosage form); `catalogue()` turns them into ~200 local drug codes (several
manufacturers and pack sizes per presentation), the way a hospital's 药品字典 grows.

ATC codes and DDDs follow the WHO ATC/DDD index (WHO DDD of the route named). A DDD of None
means WHO assigns none for that form (infusion fluids, eye drops) or it was left out here;
unit 'UD' is WHO's "unit dose" (one tablet), so DDDs = quantity for those. `strength_mg` is the
amount of the DDD substance in one dispensing unit (片/粒/支/瓶/袋), in mg, so that
    DDDs dispensed = quantity * strength_mg / (ddd_value in mg).
Chinese patent medicines (中成药) carry no ATC code: they are the hospital's unmapped codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

# Prescribing groups (what a diagnosis calls for); see pharmacy.py for the mix per diagnosis.
GROUPS = (
    "abx_oral",  # 0 oral antibacterials, outpatient
    "abx_iv",  # 1 parenteral antibacterials
    "abx_reserve",  # 2 特殊使用级 antibacterials (carbapenems, glycopeptides, ...)
    "resp_symptom",  # 3 expectorants, antitussives, cold remedies
    "resp_airway",  # 4 inhalers, nebulised drugs, montelukast, theophyllines
    "fever",  # 5 antipyretics
    "cardio",  # 6 antihypertensives, antianginals, diuretics
    "lipid",  # 7 statins
    "antiplatelet",  # 8
    "diabetes",  # 9
    "gi",  # 10 PPIs, prokinetics
    "pain",  # 11 NSAIDs and other analgesics
    "psych",  # 12 antidepressants, anxiolytics, hypnotics
    "neuro",  # 13 antiepileptics, dementia, Parkinson's
    "thyroid",  # 14
    "steroid",  # 15 systemic corticosteroids
    "blood",  # 16 iron, folic acid, vitamin D
    "uro",  # 17 prostate
    "topical",  # 18 eye drops, nasal sprays
    "fluid",  # 19 infusion fluids (inpatients)
    "antiviral",  # 20 influenza, hepatitis B, antifungal
    "allergy",  # 21 antihistamines
    "antiemetic",  # 22
    "gout",  # 23
    "tcm_cardio",  # 24 中成药 for the circulation
)
ANTIBACTERIAL_GROUPS = ("abx_oral", "abx_iv", "abx_reserve")


@dataclass(frozen=True)
class Presentation:
    spec: str  # 规格 as printed on the box
    form: str  # dosage form 剂型
    unit: str  # dispensing unit: 片 粒 支 瓶 袋 ...
    strength_mg: float | None  # mg of the DDD substance per dispensing unit
    pack: int  # dispensing units per 盒
    price: float  # yuan per dispensing unit (reference manufacturer)
    per_day: float  # dispensing units a patient takes per day (typical)
    route: str  # WHO administration route: O P Inhal N ...
    ddd: float | None = None  # overrides the generic's DDD for this route
    ddd_unit: str | None = None


@dataclass(frozen=True)
class Generic:
    name: str  # 通用名
    atc: str | None
    ddd: float | None  # WHO DDD of the route of the first presentation
    ddd_unit: str | None  # g mg mcg UD
    group: str
    essential: bool  # 国家基本药物
    grade: str | None  # antibiotic grade 非限制 / 限制 / 特殊 (antibacterials only)
    presentations: tuple[Presentation, ...]
    brand: str | None = None  # originator's brand name in China


def _p(spec, form, unit, mg, pack, price, per_day, route="O", ddd=None, ddd_unit=None):
    return Presentation(spec, form, unit, mg, pack, price, per_day, route, ddd, ddd_unit)


def _g(name, atc, ddd, unit, group, essential, grade, *pres, brand=None):
    return Generic(name, atc, ddd, unit, group, essential, grade, tuple(pres), brand)


T, C, I, INF = "片剂", "胶囊剂", "注射剂", "注射液"  # noqa: E741

# fmt: off
GENERICS: tuple[Generic, ...] = (
    # ---- J01 antibacterials: oral
    _g("阿莫西林", "J01CA04", 1.5, "g", "abx_oral", True, "非限制",
       _p("0.25g*24粒", C, "粒", 250, 24, 0.35, 6)),
    _g("阿莫西林克拉维酸钾", "J01CR02", 1.5, "g", "abx_oral", True, "非限制",
       _p("0.375g(0.25g:0.125g)*12片", T, "片", 250, 12, 1.60, 3), brand="安灭菌"),
    _g("头孢呋辛酯", "J01DC02", 0.5, "g", "abx_oral", True, "非限制",
       _p("0.25g*12片", T, "片", 250, 12, 1.90, 2), brand="西力欣"),
    _g("头孢克洛", "J01DC04", 1.0, "g", "abx_oral", False, "非限制",
       _p("0.25g*12粒", C, "粒", 250, 12, 1.40, 3)),
    _g("头孢克肟", "J01DD08", 0.4, "g", "abx_oral", False, "限制",
       _p("0.1g*6片", T, "片", 100, 6, 2.80, 2)),
    _g("左氧氟沙星", "J01MA12", 0.5, "g", "abx_oral", True, "非限制",
       _p("0.5g*4片", T, "片", 500, 4, 3.20, 1),
       _p("0.5g:100ml", INF, "瓶", 500, 1, 18.50, 1, "P", 0.5, "g"), brand="可乐必妥"),
    _g("莫西沙星", "J01MA14", 0.4, "g", "abx_oral", False, "限制",
       _p("0.4g*3片", T, "片", 400, 3, 9.80, 1),
       _p("0.4g:250ml", INF, "瓶", 400, 1, 68.00, 1, "P", 0.4, "g"), brand="拜复乐"),
    _g("阿奇霉素", "J01FA10", 0.3, "g", "abx_oral", True, "非限制",
       _p("0.25g*6片", T, "片", 250, 6, 2.10, 2),
       _p("0.5g", I, "支", 500, 1, 25.00, 1, "P", 0.5, "g"), brand="希舒美"),
    _g("克拉霉素", "J01FA09", 0.5, "g", "abx_oral", True, "非限制",
       _p("0.25g*6片", T, "片", 250, 6, 1.50, 2), brand="克拉仙"),
    _g("多西环素", "J01AA02", 0.1, "g", "abx_oral", True, "非限制",
       _p("0.1g*10片", T, "片", 100, 10, 0.60, 2)),
    _g("呋喃妥因", "J01XE01", 0.2, "g", "abx_oral", True, "非限制",
       _p("50mg*100片", T, "片", 50, 100, 0.12, 4)),
    # ---- J01 antibacterials: parenteral
    _g("头孢呋辛钠", "J01DC02", 3.0, "g", "abx_iv", True, "非限制",
       _p("0.75g", I, "支", 750, 1, 6.80, 3, "P"), brand="西力欣"),
    _g("头孢唑林钠", "J01DB04", 3.0, "g", "abx_iv", True, "非限制",
       _p("1.0g", I, "支", 1000, 1, 4.50, 2, "P")),
    _g("头孢曲松钠", "J01DD04", 2.0, "g", "abx_iv", True, "非限制",
       _p("1.0g", I, "支", 1000, 1, 5.20, 2, "P"), brand="罗氏芬"),
    _g("头孢他啶", "J01DD02", 4.0, "g", "abx_iv", True, "限制",
       _p("1.0g", I, "支", 1000, 1, 9.60, 3, "P"), brand="复达欣"),
    _g("头孢哌酮舒巴坦钠", "J01DD62", 4.0, "g", "abx_iv", False, "限制",
       _p("1.5g(1.0g:0.5g)", I, "支", 1000, 1, 22.00, 4, "P"), brand="舒普深"),
    _g("哌拉西林他唑巴坦钠", "J01CR05", 14.0, "g", "abx_iv", True, "限制",
       _p("4.5g(4.0g:0.5g)", I, "支", 4000, 1, 32.00, 3, "P"), brand="特治星"),
    _g("克林霉素磷酸酯", "J01FF01", 1.8, "g", "abx_iv", True, "非限制",
       _p("0.6g:4ml", I, "支", 600, 1, 3.80, 2, "P")),
    _g("甲硝唑", "J01XD01", 1.5, "g", "abx_iv", True, "非限制",
       _p("0.5g:100ml", INF, "瓶", 500, 1, 2.60, 2, "P")),
    # ---- J01 antibacterials: 特殊使用级
    _g("美罗培南", "J01DH02", 3.0, "g", "abx_reserve", True, "特殊",
       _p("0.5g", I, "支", 500, 1, 45.00, 6, "P"), brand="美平"),
    _g("亚胺培南西司他丁钠", "J01DH51", 2.0, "g", "abx_reserve", True, "特殊",
       _p("1.0g(0.5g:0.5g)", I, "支", 500, 1, 58.00, 4, "P"), brand="泰能"),
    _g("万古霉素", "J01XA01", 2.0, "g", "abx_reserve", True, "特殊",
       _p("0.5g", I, "支", 500, 1, 48.00, 4, "P"), brand="稳可信"),
    _g("利奈唑胺", "J01XX08", 1.2, "g", "abx_reserve", False, "特殊",
       _p("0.6g:300ml", INF, "袋", 600, 1, 160.00, 2, "P"), brand="斯沃"),
    _g("替加环素", "J01AA12", 0.1, "g", "abx_reserve", False, "特殊",
       _p("50mg", I, "支", 50, 1, 190.00, 2, "P"), brand="泰阁"),
    # ---- antivirals, antifungals
    _g("奥司他韦", "J05AH02", 0.15, "g", "antiviral", True, None,
       _p("75mg*10粒", C, "粒", 75, 10, 4.20, 2), brand="达菲"),
    _g("恩替卡韦", "J05AF10", 0.5, "mg", "antiviral", True, None,
       _p("0.5mg*28片", T, "片", 0.5, 28, 0.65, 1), brand="博路定"),
    _g("氟康唑", "J02AC01", 0.2, "g", "antiviral", True, None,
       _p("150mg*1粒", C, "粒", 150, 1, 6.50, 1), brand="大扶康"),
    # ---- R respiratory
    _g("氨溴索", "R05CB06", 0.12, "g", "resp_symptom", True, None,
       _p("30mg*20片", T, "片", 30, 20, 0.35, 3),
       _p("15mg:2ml", I, "支", 15, 1, 4.80, 4, "P", None, None), brand="沐舒坦"),
    _g("乙酰半胱氨酸", "R05CB01", 0.5, "g", "resp_symptom", False, None,
       _p("0.6g*10片(泡腾片)", T, "片", 600, 10, 2.80, 1),
       _p("0.3g:3ml(吸入溶液)", I, "支", 300, 1, 7.20, 2, "Inhal", None, None),
       brand="富露施"),
    _g("羧甲司坦", "R05CB03", 1.5, "g", "resp_symptom", True, None,
       _p("0.25g*24片", T, "片", 250, 24, 0.25, 6)),
    _g("右美沙芬", "R05DA09", None, None, "resp_symptom", False, None,
       _p("15mg*24片", T, "片", 15, 24, 0.30, 3)),
    _g("沙丁胺醇", "R03AC02", 0.8, "mg", "resp_airway", True, None,
       _p("100μg*200揿(气雾剂)", "气雾剂", "支", 20, 1, 24.00, 0.2, "Inhal"), brand="万托林"),
    _g("布地奈德", "R03BA02", 1.5, "mg", "resp_airway", True, None,
       _p("1mg:2ml(混悬液)", "吸入混悬液", "支", 1, 1, 6.50, 2, "Inhal"),
       brand="普米克令舒"),
    _g("异丙托溴铵", "R03BB01", 0.3, "mg", "resp_airway", True, None,
       _p("0.5mg:2ml(吸入溶液)", "吸入溶液", "支", 0.5, 1, 3.40, 3, "Inhal"),
       brand="爱全乐"),
    _g("噻托溴铵", "R03BB04", 18.0, "mcg", "resp_airway", False, None,
       _p("18μg*30粒(吸入粉雾剂)", "吸入粉雾剂", "粒", 0.018, 30, 6.20, 1, "Inhal"),
       brand="思力华"),
    _g("孟鲁司特", "R03DC03", 10.0, "mg", "resp_airway", True, None,
       _p("10mg*5片", T, "片", 10, 5, 3.90, 1), brand="顺尔宁"),
    _g("氨茶碱", "R03DA05", 0.6, "g", "resp_airway", True, None,
       _p("0.1g*100片", T, "片", 100, 100, 0.05, 3),
       _p("0.25g:10ml", I, "支", 250, 1, 0.90, 2, "P", 0.6, "g")),
    _g("糠酸莫米松鼻喷雾剂", "R01AD09", 0.2, "mg", "topical", False, None,
       _p("50μg*60揿", "鼻喷雾剂", "支", 3, 1, 68.00, 0.07, "N"), brand="内舒拿"),
    # ---- antihistamines
    _g("氯雷他定", "R06AX13", 10.0, "mg", "allergy", True, None,
       _p("10mg*6片", T, "片", 10, 6, 2.50, 1), brand="开瑞坦"),
    _g("西替利嗪", "R06AE07", 10.0, "mg", "allergy", True, None,
       _p("10mg*12片", T, "片", 10, 12, 1.80, 1), brand="仙特明"),
    # ---- antipyretics, analgesics
    _g("对乙酰氨基酚", "N02BE01", 3.0, "g", "fever", True, None,
       _p("0.5g*12片", T, "片", 500, 12, 0.30, 3), brand="泰诺林"),
    _g("布洛芬", "M01AE01", 1.2, "g", "fever", True, None,
       _p("0.3g*20粒(缓释胶囊)", C, "粒", 300, 20, 0.60, 2),
       _p("100ml:2g(混悬液)", "口服混悬液", "瓶", 2000, 1, 12.00, 0.3), brand="芬必得"),
    _g("双氯芬酸钠", "M01AB05", 0.1, "g", "pain", True, None,
       _p("75mg*10片(缓释片)", T, "片", 75, 10, 1.20, 1), brand="扶他林"),
    _g("塞来昔布", "M01AH01", 0.2, "g", "pain", False, None,
       _p("0.2g*6粒", C, "粒", 200, 6, 3.60, 1), brand="西乐葆"),
    _g("曲马多", "N02AX02", 0.3, "g", "pain", True, None,
       _p("50mg*10片", T, "片", 50, 10, 0.90, 3),
       _p("0.1g:2ml", I, "支", 100, 1, 2.20, 2, "P", 0.3, "g")),
    # ---- cardiovascular
    _g("氨氯地平", "C08CA01", 5.0, "mg", "cardio", True, None,
       _p("5mg*28片", T, "片", 5, 28, 0.30, 1), brand="络活喜"),
    _g("硝苯地平", "C08CA05", 30.0, "mg", "cardio", True, None,
       _p("30mg*7片(控释片)", T, "片", 30, 7, 3.30, 1), brand="拜新同"),
    _g("缬沙坦", "C09CA03", 80.0, "mg", "cardio", True, None,
       _p("80mg*7粒", C, "粒", 80, 7, 1.10, 1), brand="代文"),
    _g("厄贝沙坦", "C09CA04", 150.0, "mg", "cardio", True, None,
       _p("0.15g*7片", T, "片", 150, 7, 0.80, 1), brand="安博维"),
    _g("贝那普利", "C09AA07", 7.5, "mg", "cardio", True, None,
       _p("10mg*14片", T, "片", 10, 14, 1.00, 1), brand="洛汀新"),
    _g("美托洛尔", "C07AB02", 0.15, "g", "cardio", True, None,
       _p("47.5mg*7片(缓释片)", T, "片", 47.5, 7, 1.70, 1),
       _p("25mg*20片", T, "片", 25, 20, 0.15, 2), brand="倍他乐克"),
    _g("比索洛尔", "C07AB07", 10.0, "mg", "cardio", True, None,
       _p("5mg*10片", T, "片", 5, 10, 1.30, 1), brand="康忻"),
    _g("氢氯噻嗪", "C03AA03", 25.0, "mg", "cardio", True, None,
       _p("25mg*100片", T, "片", 25, 100, 0.04, 1)),
    _g("呋塞米", "C03CA01", 40.0, "mg", "cardio", True, None,
       _p("20mg*100片", T, "片", 20, 100, 0.05, 1),
       _p("20mg:2ml", I, "支", 20, 1, 0.60, 2, "P", 40.0, "mg")),
    _g("螺内酯", "C03DA01", 75.0, "mg", "cardio", True, None,
       _p("20mg*100片", T, "片", 20, 100, 0.08, 1)),
    _g("单硝酸异山梨酯", "C01DA14", 40.0, "mg", "cardio", True, None,
       _p("40mg*10片(缓释片)", T, "片", 40, 10, 1.60, 1)),
    _g("地高辛", "C01AA05", 0.25, "mg", "cardio", True, None,
       _p("0.25mg*30片", T, "片", 0.25, 30, 0.20, 1)),
    _g("阿托伐他汀钙", "C10AA05", 20.0, "mg", "lipid", True, None,
       _p("20mg*7片", T, "片", 20, 7, 0.90, 1), brand="立普妥"),
    _g("瑞舒伐他汀钙", "C10AA07", 10.0, "mg", "lipid", True, None,
       _p("10mg*7片", T, "片", 10, 7, 0.70, 1), brand="可定"),
    _g("阿司匹林", "B01AC06", 1.0, "UD", "antiplatelet", True, None,
       _p("100mg*30片(肠溶片)", T, "片", 100, 30, 0.50, 1), brand="拜阿司匹灵"),
    _g("氯吡格雷", "B01AC04", 75.0, "mg", "antiplatelet", True, None,
       _p("75mg*7片", T, "片", 75, 7, 2.30, 1), brand="波立维"),
    # ---- diabetes
    _g("二甲双胍", "A10BA02", 2.0, "g", "diabetes", True, None,
       _p("0.5g*20片", T, "片", 500, 20, 0.25, 3), brand="格华止"),
    _g("格列美脲", "A10BB12", 2.0, "mg", "diabetes", True, None,
       _p("2mg*15片", T, "片", 2, 15, 1.40, 1), brand="亚莫利"),
    _g("格列齐特", "A10BB09", 60.0, "mg", "diabetes", True, None,
       _p("30mg*30片(缓释片)", T, "片", 30, 30, 0.90, 2), brand="达美康"),
    _g("阿卡波糖", "A10BF01", 0.3, "g", "diabetes", True, None,
       _p("50mg*30片", T, "片", 50, 30, 0.65, 3), brand="拜唐苹"),
    _g("西格列汀", "A10BH01", 0.1, "g", "diabetes", False, None,
       _p("0.1g*7片", T, "片", 100, 7, 4.50, 1), brand="捷诺维"),
    # ---- digestive
    _g("奥美拉唑", "A02BC01", 20.0, "mg", "gi", True, None,
       _p("20mg*14粒(肠溶胶囊)", C, "粒", 20, 14, 0.40, 2),
       _p("40mg", I, "支", 40, 1, 8.50, 2, "P", 20.0, "mg"), brand="洛赛克"),
    _g("泮托拉唑钠", "A02BC02", 40.0, "mg", "gi", True, None,
       _p("40mg*7片(肠溶片)", T, "片", 40, 7, 1.20, 1),
       _p("40mg", I, "支", 40, 1, 9.80, 2, "P", 40.0, "mg"), brand="潘妥洛克"),
    _g("雷贝拉唑钠", "A02BC04", 20.0, "mg", "gi", False, None,
       _p("10mg*7片(肠溶片)", T, "片", 10, 7, 1.90, 2), brand="波利特"),
    _g("多潘立酮", "A03FA03", 30.0, "mg", "gi", True, None,
       _p("10mg*30片", T, "片", 10, 30, 0.35, 3), brand="吗丁啉"),
    _g("昂丹司琼", "A04AA01", 16.0, "mg", "antiemetic", True, None,
       _p("8mg:4ml", I, "支", 8, 1, 5.60, 2, "P"),
       _p("8mg*10片", T, "片", 8, 10, 2.40, 2, "O", 16.0, "mg")),
    # ---- nervous system
    _g("舍曲林", "N06AB06", 50.0, "mg", "psych", True, None,
       _p("50mg*14片", T, "片", 50, 14, 2.60, 1), brand="左洛复"),
    _g("艾司西酞普兰", "N06AB10", 10.0, "mg", "psych", False, None,
       _p("10mg*7片", T, "片", 10, 7, 3.80, 1), brand="来士普"),
    _g("阿普唑仑", "N05BA12", 1.0, "mg", "psych", True, None,
       _p("0.4mg*20片", T, "片", 0.4, 20, 0.12, 2)),
    _g("艾司唑仑", "N05CD04", 3.0, "mg", "psych", True, None,
       _p("1mg*20片", T, "片", 1, 20, 0.10, 1)),
    _g("唑吡坦", "N05CF02", 10.0, "mg", "psych", False, None,
       _p("10mg*7片", T, "片", 10, 7, 3.20, 1), brand="思诺思"),
    _g("左乙拉西坦", "N03AX14", 1.5, "g", "neuro", True, None,
       _p("0.5g*30片", T, "片", 500, 30, 2.90, 2), brand="开浦兰"),
    _g("多奈哌齐", "N06DA02", 7.5, "mg", "neuro", True, None,
       _p("5mg*7片", T, "片", 5, 7, 3.10, 1), brand="安理申"),
    _g("多巴丝肼", "N04BA02", 0.6, "g", "neuro", True, None,
       _p("0.25g(0.2g:0.05g)*40片", T, "片", 200, 40, 1.40, 3), brand="美多芭"),
    # ---- hormones
    _g("地塞米松磷酸钠", "H02AB02", 1.5, "mg", "steroid", True, None,
       _p("5mg:1ml", I, "支", 5, 1, 0.70, 1, "P")),
    _g("甲泼尼龙琥珀酸钠", "H02AB04", 20.0, "mg", "steroid", True, None,
       _p("40mg", I, "支", 40, 1, 16.00, 1, "P"), brand="甲强龙"),
    _g("泼尼松", "H02AB07", 10.0, "mg", "steroid", True, None,
       _p("5mg*100片", T, "片", 5, 100, 0.06, 6)),
    _g("左甲状腺素钠", "H03AA01", 0.15, "mg", "thyroid", True, None,
       _p("50μg*100片", T, "片", 0.05, 100, 0.28, 1), brand="优甲乐"),
    _g("甲巯咪唑", "H03BB02", 10.0, "mg", "thyroid", True, None,
       _p("10mg*50片", T, "片", 10, 50, 0.30, 1), brand="赛治"),
    # ---- blood, minerals, vitamins
    _g("硫酸亚铁", "B03AA07", 0.2, "g", "blood", True, None,
       _p("0.3g*100片(含铁60mg)", T, "片", 60, 100, 0.05, 3)),
    _g("叶酸", "B03BB01", 0.4, "mg", "blood", True, None,
       _p("0.4mg*31片", T, "片", 0.4, 31, 0.15, 1)),
    _g("骨化三醇", "A11CC04", 1.0, "mcg", "blood", True, None,
       _p("0.25μg*10粒", C, "粒", 0.00025, 10, 1.80, 2), brand="罗盖全"),
    # ---- urology, gout
    _g("坦索罗辛", "G04CA02", 0.4, "mg", "uro", True, None,
       _p("0.2mg*10粒(缓释胶囊)", C, "粒", 0.2, 10, 2.20, 1), brand="哈乐"),
    _g("非那雄胺", "G04CB01", 5.0, "mg", "uro", True, None,
       _p("5mg*10片", T, "片", 5, 10, 2.50, 1), brand="保列治"),
    _g("别嘌醇", "M04AA01", 0.4, "g", "gout", True, None,
       _p("0.1g*100片", T, "片", 100, 100, 0.06, 2)),
    _g("非布司他", "M04AA03", 80.0, "mg", "gout", False, None,
       _p("40mg*16片", T, "片", 40, 16, 1.50, 1), brand="优立通"),
    # ---- eye drops (no WHO DDD)
    _g("左氧氟沙星滴眼液", "S01AE05", None, None, "topical", True, None,
       _p("5ml:24.4mg", "滴眼剂", "支", 24.4, 1, 9.50, 0.2, "Instill"), brand="可乐必妥"),
    _g("玻璃酸钠滴眼液", "S01KA01", None, None, "topical", False, None,
       _p("0.1%(5ml:5mg)", "滴眼剂", "支", 5, 1, 28.00, 0.2, "Instill"), brand="爱丽"),
    # ---- infusion fluids (inpatients; no WHO DDD)
    _g("氯化钠注射液", "B05XA03", None, None, "fluid", True, None,
       _p("0.9%*100ml", INF, "袋", 900, 1, 2.10, 2, "P"),
       _p("0.9%*250ml", INF, "袋", 2250, 1, 2.60, 1, "P"),
       _p("0.9%*500ml", INF, "瓶", 4500, 1, 3.10, 1, "P")),
    _g("葡萄糖注射液", "B05BA03", None, None, "fluid", True, None,
       _p("5%*250ml", INF, "袋", 12500, 1, 2.70, 1, "P"),
       _p("10%*500ml", INF, "瓶", 50000, 1, 3.40, 1, "P")),
    _g("氯化钾注射液", "B05XA01", None, None, "fluid", True, None,
       _p("10ml:1.5g", I, "支", 1500, 1, 0.55, 1, "P")),
    # ---- Chinese patent medicines 中成药: no ATC code (the unmapped local codes)
    _g("连花清瘟胶囊", None, None, None, "resp_symptom", True, None,
       _p("0.35g*24粒", C, "粒", None, 24, 0.60, 12)),
    _g("蒲地蓝消炎口服液", None, None, None, "resp_symptom", False, None,
       _p("10ml*10支", "口服液", "支", None, 10, 2.40, 3)),
    _g("疏风解毒胶囊", None, None, None, "resp_symptom", False, None,
       _p("0.52g*36粒", C, "粒", None, 36, 0.75, 12)),
    _g("小儿肺热咳喘口服液", None, None, None, "resp_symptom", False, None,
       _p("10ml*6支", "口服液", "支", None, 6, 3.10, 3)),
    _g("藿香正气口服液", None, None, None, "gi", True, None,
       _p("10ml*10支", "口服液", "支", None, 10, 1.20, 2)),
    _g("复方丹参滴丸", None, None, None, "tcm_cardio", True, None,
       _p("27mg*180丸", "滴丸剂", "瓶", None, 1, 26.00, 0.1)),
    _g("血塞通注射液", None, None, None, "tcm_cardio", False, None,
       _p("0.2g:5ml", I, "支", None, 1, 12.00, 2, "P")),
)
# fmt: on

MANUFACTURERS = (
    "石药集团欧意药业有限公司",
    "华北制药股份有限公司",
    "齐鲁制药有限公司",
    "扬子江药业集团有限公司",
    "江苏恒瑞医药股份有限公司",
    "四川科伦药业股份有限公司",
    "浙江海正药业股份有限公司",
    "正大天晴药业集团股份有限公司",
    "上海医药集团股份有限公司",
    "华润双鹤药业股份有限公司",
    "广州白云山医药集团股份有限公司",
    "山东新华制药股份有限公司",
    "哈药集团制药总厂",
    "湖南九典制药股份有限公司",
)
# originator products carry the brand name and the reference price
ORIGINATORS = {
    "辉瑞": "希舒美 络活喜 立普妥 舒普深 特治星 斯沃 泰阁 大扶康 西乐葆 左洛复 甲强龙",
    "阿斯利康": "可定 洛赛克 倍他乐克 普米克令舒",
    "拜耳": "拜复乐 拜新同 拜阿司匹灵 拜唐苹",
    "默沙东": "泰能 顺尔宁 捷诺维 保列治 内舒拿",
    "葛兰素史克": "西力欣 万托林 安灭菌",
    "罗氏": "罗氏芬 达菲 美多芭 罗盖全",
    "勃林格殷格翰": "沐舒坦 思力华 爱全乐",
    "赛诺菲": "波立维 安博维 亚莫利 思诺思",
    "诺华": "代文 洛汀新 扶他林",
}
_ORIGINATOR_OF = {b: f"{m}(原研)" for m, bs in ORIGINATORS.items() for b in bs.split()}


@dataclass(frozen=True)
class Catalogue:
    """One row per local drug code, as numpy arrays (index = position in the catalogue)."""

    drug_id: np.ndarray
    drug_code: np.ndarray
    generic_name: np.ndarray
    brand_name: np.ndarray  # object, None for most generics
    specification: np.ndarray
    dosage_form: np.ndarray
    unit: np.ndarray
    pack_size: np.ndarray
    strength_mg: np.ndarray  # float, nan when unknown
    route: np.ndarray
    manufacturer: np.ndarray
    atc_code: np.ndarray  # object, None when unmapped
    ddd_value: np.ndarray  # float, nan when none
    ddd_unit: np.ndarray  # object
    is_essential: np.ndarray
    antibiotic_grade: np.ndarray  # object
    base_price_cents: np.ndarray  # price on the first simulated day
    per_day: np.ndarray  # dispensing units per patient-day
    group: np.ndarray  # index into GROUPS
    popularity: np.ndarray  # relative weight among the codes of its group

    def __len__(self) -> int:
        return len(self.drug_id)


def _hash_unit(*keys: int) -> float:
    """A fixed pseudo-random number in [0, 1) per key tuple (catalogue must not use a seed)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7919, *keys])))
    return float(rng.random())


@cache
def catalogue() -> Catalogue:
    """The local drug dictionary: 1-3 codes (manufacturers) per presentation, fixed forever.

    The catalogue does not depend on the simulation seed: a hospital's drug codes are stable,
    and downstream seeds or tests can rely on them.
    """
    rows: list[tuple] = []
    for gi, g in enumerate(GENERICS):
        for pi, p in enumerate(g.presentations):
            n_mfr = 1 + int(_hash_unit(gi, pi, 1) * 3)  # 1-3 manufacturers
            if g.atc is None:
                n_mfr = 2 if _hash_unit(gi, pi, 9) < 0.5 else 3
            first = int(_hash_unit(gi, pi, 2) * len(MANUFACTURERS))
            for m in range(n_mfr):
                originator = m == 0 and g.brand is not None and g.atc is not None
                maker = (
                    _ORIGINATOR_OF.get(g.brand or "", "进口原研企业")
                    if originator
                    else MANUFACTURERS[(first + 5 * m) % 14]
                )
                factor = 1.0 if m == 0 else 0.45 + 0.5 * _hash_unit(gi, pi, m, 3)
                if originator:
                    factor = 1.0
                elif m == 0:
                    factor = 0.6 + 0.3 * _hash_unit(gi, pi, 4)
                price = max(0.01, round(p.price * factor, 2))
                pack = p.pack if m == 0 or p.pack == 1 else p.pack * (1 + m % 2)
                spec = p.spec if pack == p.pack else p.spec.replace(f"*{p.pack}", f"*{pack}")
                popularity = (2.5 if m == 0 else 1.0) * (0.5 + _hash_unit(gi, pi, m, 5))
                if p.ddd is not None:
                    ddd, ddd_unit = p.ddd, p.ddd_unit
                elif p.route == g.presentations[0].route:
                    ddd, ddd_unit = g.ddd, g.ddd_unit
                else:
                    ddd, ddd_unit = None, None  # another route: its WHO DDD not given here
                rows.append(
                    (
                        g.name,
                        g.brand if originator else None,
                        spec,
                        p.form,
                        p.unit,
                        pack,
                        np.nan if p.strength_mg is None else float(p.strength_mg),
                        p.route,
                        maker,
                        g.atc,
                        np.nan if ddd is None else float(ddd),
                        ddd_unit,
                        g.essential,
                        g.grade,
                        round(price * 100),
                        p.per_day,
                        GROUPS.index(g.group),
                        popularity,
                        g.atc[:1] if g.atc else "Z",
                    )
                )
    # codes by therapeutic class: Y + ATC main group letter position + sequence
    letters = "ABCDGHJLMNRSZ"
    order = sorted(range(len(rows)), key=lambda i: (letters.index(rows[i][18]), i))
    rows = [rows[i] for i in order]
    seq: dict[str, int] = {}
    ids = []
    for r in rows:
        k = letters.index(r[18]) + 1
        seq[r[18]] = seq.get(r[18], 0) + 1
        ids.append(10_000 + k * 1000 + seq[r[18]])
    col = list(zip(*rows, strict=True))
    drug_id = np.asarray(ids, dtype=np.int64)
    return Catalogue(
        drug_id=drug_id,
        drug_code=np.asarray([f"Y{i:05d}" for i in ids]),
        generic_name=np.asarray(col[0]),
        brand_name=np.asarray(col[1], dtype=object),
        specification=np.asarray(col[2]),
        dosage_form=np.asarray(col[3]),
        unit=np.asarray(col[4]),
        pack_size=np.asarray(col[5], dtype=np.int64),
        strength_mg=np.asarray(col[6], dtype=float),
        route=np.asarray(col[7]),
        manufacturer=np.asarray(col[8]),
        atc_code=np.asarray(col[9], dtype=object),
        ddd_value=np.asarray(col[10], dtype=float),
        ddd_unit=np.asarray(col[11], dtype=object),
        is_essential=np.asarray(col[12], dtype=bool),
        antibiotic_grade=np.asarray(col[13], dtype=object),
        base_price_cents=np.asarray(col[14], dtype=np.int64),
        per_day=np.asarray(col[15], dtype=float),
        group=np.asarray(col[16], dtype=np.int64),
        popularity=np.asarray(col[17], dtype=float),
    )
