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


def password() -> str:
    return secrets.token_urlsafe(24)


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _hex_key() -> str:
    return secrets.token_hex(32)


GENERATORS: dict[str, Callable[[], str]] = {
    "pg_superuser_password": password,
    # superuser of the embedded cluster that holds only Airflow's metadata (hdp.warehouse.clusters)
    "pg_airflow_superuser_password": password,
    "warehouse_password": password,
    "loader_password": password,
    "transformer_password": password,
    "quality_reader_password": password,
    "airflow_db_password": password,
    "airflow_fernet_key": _fernet_key,
    "airflow_jwt_secret": _hex_key,
    # the distributed run (hdp.runtime.celery): the Redis broker's password, and the key that
    # signs the api-server's log requests to the workers' log servers
    "redis_password": _hex_key,
    "airflow_api_secret_key": _hex_key,
    "pseudonym_key": _hex_key,
    # encrypts the identity store hdp_private.patient_identity; never stored in the database
    "identity_key": password,
    # the embedded MariaDB server of the MySQL sources (hdp.warehouse.mariadb): root, user hdp
    "mariadb_root_password": password,
    "mariadb_user_password": password,
}


def secret(secrets_dir: Path, name: str, generate: Callable[[], str] | None = None) -> str:
    """Return the named secret, generating it on first use (with `generate`, or the platform's
    generator of that name)."""
    path = secrets_dir / name
    if path.exists():
        return path.read_text().strip()
    secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    value = (generate or GENERATORS[name])()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
