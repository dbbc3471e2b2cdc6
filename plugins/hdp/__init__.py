"""hdp: the hospital data platform library: config, embedded PostgreSQL, extract, gates, CLI."""

__version__ = "0.1.0"
