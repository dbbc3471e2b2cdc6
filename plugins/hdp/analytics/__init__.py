"""Decisions on top of the marts: the demand forecast and the procurement report."""
