"""Getting source data into raw_<source>: COPY extract of database sources, file drops,
freshness.
"""
