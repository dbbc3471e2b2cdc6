"""`python -m hdp_bench io|mpi|forecast [options]`: the one entry point of the benchmarks."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from hdp_bench import bench, forecast, mpi, mysql_bench

    parser = argparse.ArgumentParser(prog="python -m hdp_bench", description=__doc__)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    for name, module, text in (
        ("io", bench, "extract, load, gate and dbt against side-by-side baselines (make bench)"),
        ("mysql", mysql_bench, "a MariaDB table into the warehouse vs pipe, pgloader, dlt"),
        ("mpi", mpi, "master patient index: pairwise precision/recall vs the simulator's truth"),
        (
            "forecast",
            forecast,
            "forecast candidates, selection and seasonal naive (make forecast-bench)",
        ),
    ):
        command = sub.add_parser(name, help=text)
        module.add_arguments(command)
        command.set_defaults(func=module.command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # Airflow's plugin loader imports every module under plugins/
    sys.exit(main())
