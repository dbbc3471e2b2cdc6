"""Generated secrets, kept outside the code in $HDP_HOME/secrets (mode 0600).

Set-up generates each secret once; later runs read the same file. Production passes secrets
through the environment instead (see .env.example).
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def _password() -> str:
    return secrets.token_urlsafe(24)


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _hex_key() -> str:
    return secrets.token_hex(32)


GENERATORS: dict[str, Callable[[], str]] = {
    "pg_superuser_password": _password,
    # superuser of the embedded cluster that holds only Airflow's metadata (hdp.pgcluster)
    "pg_airflow_superuser_password": _password,
    "warehouse_password": _password,
    "loader_password": _password,
    "transformer_password": _password,
    "quality_reader_password": _password,
    "his_owner_password": _password,
    "his_reader_password": _password,
    "pharmacy_owner_password": _password,
    "pharmacy_reader_password": _password,
    "airflow_db_password": _password,
    "airflow_fernet_key": _fernet_key,
    "airflow_jwt_secret": _hex_key,
    "pseudonym_key": _hex_key,
    # encrypts the identity store hdp_private.patient_identity; never stored in the database
    "identity_key": _password,
}


def secret(secrets_dir: Path, name: str) -> str:
    """Return the named secret, generating it on first use."""
    path = secrets_dir / name
    if path.exists():
        return path.read_text().strip()
    secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    value = GENERATORS[name]()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
