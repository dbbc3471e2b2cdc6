"""Simulated source systems: a deterministic HIS with manifested defects (see his.py)."""

from hdp.simulator.his import (
    DEFECT_KINDS,
    SimConfig,
    advance_day,
    create_schema,
    generate,
    table_counts,
)

__all__ = [
    "DEFECT_KINDS",
    "SimConfig",
    "advance_day",
    "create_schema",
    "generate",
    "table_counts",
]
