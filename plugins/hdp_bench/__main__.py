"""`python -m hdp_bench <benchmark> [options]`: the one entry point of the benchmarks."""

import sys

BENCHMARKS = ("io", "mpi", "forecast")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m hdp_bench {{{','.join(BENCHMARKS)}}} [options]  (--help each)")
        return 2
    name, rest = argv[0], argv[1:]
    if name == "io":
        from hdp_bench.bench import main as run
    elif name == "mpi":
        from hdp_bench.mpi import main as run

        rest = ["bench", *rest]
    else:
        from hdp_bench.forecast import bench as run
    return run(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
