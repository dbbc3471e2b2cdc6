"""The demo's simulated source systems (never imported by the platform `hdp`).

A deterministic HIS with manifested defects (his.py), the pharmacy that follows its days
(pharmacy.py), the LIS's daily CSV drops (lab.py), their databases and logins (sources.py), and
the demo itself (demo.py: `python -m hdp_sim demo`, which `make demo` runs).
"""

from hdp_sim.his import (
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
