"""Benchmarks of the platform (docs/benchmarks.md): never imported by the platform `hdp`.

`python -m hdp_bench io|mpi|forecast`: extract/load/gate/dbt paths against side-by-side
baselines (`make bench`), the master patient index against the simulator's truth, and the
demand forecast's candidates and selected method against "same month last year"
(`make forecast-bench`).
"""
