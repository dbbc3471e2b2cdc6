"""Quality gate of the HIS source: per raw table, on top of defaults.table_defaults."""

from __future__ import annotations

import great_expectations as gx
from great_expectations.expectations import Expectation

E = gx.expectations

GENDER_CODES = ["1", "2", "M", "F", "男", "女", "m", "f", "0", "9", "未知", "U", ""]
ID_CARD = r"^[0-9]{17}[0-9Xx]$"
MOBILE = r"^1[3-9][0-9]{9}$"
# Single implausible values (a negative fee) are row defects that staging flags; a daily batch can
# be small (tens of admissions), so the gate blocks only when a fifth of a batch is implausible.
PLAUSIBLE = 0.8
ICD10_LOOSE = r"^\s*[A-Za-z][0-9]{2}(\.?[0-9A-Za-z]{0,4})?\s*$"


def expectations_for(table: str) -> list[Expectation]:
    checks: dict[str, list[Expectation]] = {
        "departments": [
            E.ExpectColumnValuesToNotBeNull(column="dept_name"),
            E.ExpectColumnValuesToBeInSet(
                column="dept_type",
                value_set=["division", "clinical", "emergency", "medical_technology"],
            ),
        ],
        "doctors": [
            E.ExpectColumnValuesToBeInSet(
                column="title", value_set=["主任医师", "副主任医师", "主治医师", "住院医师"]
            ),
            E.ExpectColumnValuesToNotBeNull(column="dept_code", mostly=0.95),
        ],
        "patients": [
            E.ExpectColumnValuesToNotBeNull(column="mrn"),
            E.ExpectColumnValuesToMatchRegex(column="id_card_no", regex=ID_CARD, mostly=0.95),
            E.ExpectColumnValuesToMatchRegex(column="phone", regex=MOBILE, mostly=0.95),
            E.ExpectColumnValuesToBeInSet(column="gender", value_set=GENDER_CODES, mostly=0.98),
            E.ExpectColumnValuesToNotBeNull(column="birth_date", mostly=0.98),
        ],
        "outpatient_visits": [
            E.ExpectColumnValuesToNotBeNull(column="patient_id", mostly=0.98),
            E.ExpectColumnValuesToNotBeNull(column="dept_code", mostly=0.98),
            E.ExpectColumnValuesToBeInSet(column="visit_type", value_set=["普通", "专家", "急诊"]),
            E.ExpectColumnValuesToBeInSet(column="status", value_set=["completed", "cancelled"]),
            E.ExpectColumnValuesToBeBetween(
                column="fee", min_value=0, max_value=100_000, mostly=PLAUSIBLE
            ),
        ],
        "inpatient_admissions": [
            E.ExpectColumnValuesToNotBeNull(column="patient_id", mostly=0.98),
            E.ExpectColumnValuesToBeBetween(
                column="total_cost", min_value=0, max_value=10_000_000, mostly=PLAUSIBLE
            ),
        ],
        "diagnoses": [
            E.ExpectColumnValuesToBeInSet(column="encounter_type", value_set=["OP", "IP"]),
            E.ExpectColumnValuesToMatchRegex(column="icd10_code", regex=ICD10_LOOSE, mostly=0.95),
        ],
    }
    return checks.get(table, [])
