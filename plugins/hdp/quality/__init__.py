"""The quality gate (write-audit-publish): the checks catalogue, row checks and GX batch checks,
publish, replay, quality history.
"""
