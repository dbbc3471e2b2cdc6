"""Encrypted connections: a throwaway PostgreSQL that accepts only TLS with a client certificate,
certificates made by the test's own CA. Connects with verify-full and a client certificate;
without one, or with one from another CA, or the wrong user's, the server refuses."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest

from hdp.security import tls
from hdp.warehouse.clusters import Cluster, _runs_as_root
from hdp.warehouse.database import Login, connect

USER = "tls_user"
PASSWORD = secrets.token_urlsafe(16)  # a throwaway server that lives for this test module


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("tls-home")
    port = int(os.environ.get("HDP_PG_PORT", "55433")) + 7
    cluster = Cluster.for_home(home, port)
    cluster.init()
    # the server's files must be readable by the server's user (postgres, when we are root)
    server_dir = cluster.root / "tls"
    ca = tls.make_ca(server_dir, "hospital CA")
    server = tls.issue(ca, server_dir, "warehouse", hosts=("127.0.0.1", "localhost"))
    clients = tmp_path_factory.mktemp("tls-clients")
    client = tls.issue(ca, clients, USER, client=True)
    wrong_user = tls.issue(ca, clients, "someone_else", client=True)
    rogue_ca = tls.make_ca(clients, "rogue CA")
    rogue_client = tls.issue(rogue_ca, clients / "rogue", USER, client=True)
    with open(cluster.data_dir / "postgresql.auto.conf", "a") as conf:
        for key, value in tls.server_settings(server, ca.cert).items():
            conf.write(f"{key} = {value}\n")
    (cluster.data_dir / "pg_hba.conf").write_text(tls.HBA_REQUIRE_CLIENT_CERT)
    if _runs_as_root():
        for path in [server_dir, *server_dir.iterdir(), cluster.data_dir / "pg_hba.conf"]:
            shutil.chown(path, "postgres", "postgres")
    cluster.start()
    admin = psycopg2.connect(
        host=str(cluster.socket_dir),
        port=port,
        user="postgres",
        password=cluster.superuser_password(),
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"create role {USER} login password %s", (PASSWORD,))
    admin.close()
    login = Login(
        user=USER,
        password=PASSWORD,
        host="127.0.0.1",
        port=port,
        dbname="postgres",
        sslmode="verify-full",
        sslrootcert=str(ca.cert),
        sslcert=str(client.cert),
        sslkey=str(client.key),
    )
    yield {
        "login": login,
        "wrong_user": wrong_user,
        "rogue_ca": rogue_ca,
        "rogue_client": rogue_client,
    }
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


def _ssl_in_use(login: Login) -> tuple[bool, str]:
    conn = connect(login)
    try:
        with conn.cursor() as cur:
            cur.execute("select ssl, client_dn from pg_stat_ssl where pid = pg_backend_pid()")
            return cur.fetchone()
    finally:
        conn.close()


def _refused(login: Login) -> str:
    with pytest.raises(psycopg2.OperationalError) as info:
        connect(login).close()
    return str(info.value)


def test_verify_full_with_a_client_certificate_connects_over_tls(tls_server):
    login = tls_server["login"]
    ssl, client_dn = _ssl_in_use(login)
    assert ssl is True
    assert f"CN={USER}" in client_dn


def test_login_carries_the_certificates_through_its_url(tls_server):
    login = tls_server["login"]
    assert Login.from_url(login.url) == login
    assert "sslmode=verify-full" in login.url and "sslcert=" in login.url
    assert _ssl_in_use(Login.from_url(login.url))[0] is True


def test_without_a_client_certificate_the_server_refuses(tls_server):
    login = tls_server["login"]
    # an explicit missing file: libpq must not pick up a ~/.postgresql/postgresql.crt
    message = _refused(replace(login, sslcert="/nonexistent.crt", sslkey="/nonexistent.key"))
    assert "certificate" in message


def test_a_client_certificate_from_another_ca_is_refused(tls_server):
    rogue = tls_server["rogue_client"]
    _refused(replace(tls_server["login"], sslcert=str(rogue.cert), sslkey=str(rogue.key)))


def test_a_certificate_for_another_user_is_refused(tls_server):
    other = tls_server["wrong_user"]
    # CN must equal the user name; the server reports it as a failed authentication
    _refused(replace(tls_server["login"], sslcert=str(other.cert), sslkey=str(other.key)))


def test_the_client_refuses_a_server_its_ca_did_not_sign(tls_server):
    message = _refused(replace(tls_server["login"], sslrootcert=str(tls_server["rogue_ca"].cert)))
    assert "certificate verify failed" in message


def test_an_unencrypted_connection_is_refused(tls_server):
    login = tls_server["login"]
    message = _refused(replace(login, sslmode="disable"))
    assert "no encryption" in message or "pg_hba.conf" in message


def test_client_private_keys_are_private(tls_server):
    assert (Path(tls_server["login"].sslkey).stat().st_mode & 0o777) == 0o600
