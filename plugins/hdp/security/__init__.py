"""Patient data protection: least-privilege roles, the encrypted identity store, pseudonym keys,
TLS.
"""
