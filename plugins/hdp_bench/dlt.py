"""The dlt baseline of `python -m hdp_bench.bench`, run by var/bench/venv/bin/python (not .venv).

dlt is not in the platform's lock: `make bench` installs requirements/bench.lock into its own
venv and runs this file there as a subprocess. It imports nothing from hdp. Prints one JSON line:
{"seconds": wall time of pipeline.run, "rows": rows loaded}.

    python bench_dlt.py --src URL --dst URL --schema his --table diagnoses \
        --backend connectorx --file-format parquet --dataset bench_dlt_fast --workdir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", required=True)
    parser.add_argument("--dst", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--backend", default="sqlalchemy")
    parser.add_argument("--file-format", default=None)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt
    from dlt.sources.sql_database import sql_table

    backend_kwargs = None
    src = args.src
    if args.backend == "connectorx":
        # connectorx takes the URL itself; arrow is its fastest return type
        backend_kwargs = {"conn": src.split("?", 1)[0], "return_type": "arrow"}
    resource = sql_table(
        credentials=src,
        schema=args.schema,
        table=args.table,
        backend=args.backend,
        backend_kwargs=backend_kwargs,
        reflection_level="full",
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"hdp_bench_{args.dataset}",
        pipelines_dir=args.workdir,
        destination=dlt.destinations.postgres(credentials=args.dst),
        dataset_name=args.dataset,
    )
    started = time.perf_counter()
    info = pipeline.run(resource, loader_file_format=args.file_format, write_disposition="replace")
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(args.table, 0)
    print(json.dumps({"seconds": seconds, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
