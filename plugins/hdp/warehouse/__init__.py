"""Where the data lives: logins and connections, the embedded PostgreSQL clusters, the warehouse's
platform schema (schema.sql).
"""
