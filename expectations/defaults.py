"""Checks every raw table gets: volume reconciled with the source, schema, primary key."""

from __future__ import annotations

import great_expectations as gx
from great_expectations.expectations import Expectation

#: Row count read from the source in the extract's snapshot; passed in at validation time.
EXPECTED_ROWS = {"$PARAMETER": "expected_row_count"}


def table_defaults(columns: list[str], primary_key: list[str]) -> list[Expectation]:
    checks: list[Expectation] = [
        gx.expectations.ExpectTableRowCountToEqual(value=EXPECTED_ROWS),
        gx.expectations.ExpectTableColumnsToMatchSet(
            column_set=[*columns, "_batch_id", "_extracted_at", "_source"], exact_match=True
        ),
    ]
    for key in primary_key:
        checks.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=key))
    if len(primary_key) == 1:
        checks.append(gx.expectations.ExpectColumnValuesToBeUnique(column=primary_key[0]))
    else:
        checks.append(
            gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(primary_key))
        )
    checks.append(gx.expectations.ExpectColumnValuesToNotBeNull(column="updated_at"))
    return checks
