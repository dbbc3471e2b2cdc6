"""Alert notifications against real servers on 127.0.0.1: an HTTP server for the webhook, a
minimal SMTP responder for email. No Airflow and no PostgreSQL needed."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import secrets
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from hdp.orchestration import notify
from hdp.orchestration.notify import Alert, alert_from_context, on_task_failure, send

# generated per run: a token literal in the repository would trip the secrets scan
TOKEN = "tok-" + secrets.token_hex(8)
DETAIL = "门诊量为 0：心血管内科\n检查 row_count_between 失败"


def _alert(**overrides) -> Alert:
    fields = {
        "kind": "quality_gate_failed",
        "title": "raw_his.outpatient_visit 质量门未通过",
        "detail": DETAIL,
        "dag_id": "hdp_ingest_his",
        "task_id": "gate",
        "run_id": "scheduled__2024-05-01T00:00:00+00:00",
        "link": "http://airflow.local/dags/hdp_ingest_his",
        "severity": "error",
    }
    return Alert(**{**fields, **overrides})


# --- a real HTTP server for the webhook ------------------------------------------------------


@dataclass
class Webhook:
    url: str
    status: int = 200
    requests: list[dict] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(hook.status)
            if hook.status in {301, 302, 307, 308}:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/hdp"
    yield hook
    server.shutdown()
    server.server_close()
    thread.join(5)


def _webhook_env(url: str) -> dict[str, str]:
    return {
        "HDP_ALERT_CHANNELS": "webhook",
        "HDP_ALERT_WEBHOOK_URL": url,
        "HDP_ALERT_WEBHOOK_TOKEN": TOKEN,
    }


def test_webhook_posts_the_documented_json(webhook: Webhook):
    assert send(_alert(), env=_webhook_env(webhook.url)) == {"webhook": True}

    (request,) = webhook.requests
    assert request["path"] == "/hooks/hdp"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Content-Type"].startswith("application/json")
    payload = json.loads(request["body"].decode("utf-8"))
    assert set(payload) == {
        "kind",
        "title",
        "detail",
        "severity",
        "dag_id",
        "task_id",
        "run_id",
        "link",
        "sent_at",
    }
    assert payload["kind"] == "quality_gate_failed"
    assert payload["detail"] == DETAIL
    assert payload["dag_id"] == "hdp_ingest_his"
    assert payload["run_id"] == "scheduled__2024-05-01T00:00:00+00:00"
    assert payload["severity"] == "error"
    assert payload["sent_at"].endswith("+00:00")


def test_webhook_server_error_is_reported_not_raised(webhook: Webhook, caplog):
    webhook.status = 500
    with caplog.at_level(logging.ERROR, logger="hdp.orchestration.notify"):
        assert send(_alert(), env=_webhook_env(webhook.url)) == {"webhook": False}
    assert len(webhook.requests) == 1
    assert "HTTP 500" in caplog.text
    assert TOKEN not in caplog.text


def test_webhook_redirect_is_not_followed_with_the_token(webhook: Webhook):
    webhook.status = 302
    assert send(_alert(), env=_webhook_env(webhook.url)) == {"webhook": False}
    assert [r["path"] for r in webhook.requests] == ["/hooks/hdp"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_webhook_names_the_host_not_the_token(caplog):
    port = _closed_port()
    with caplog.at_level(logging.ERROR, logger="hdp.orchestration.notify"):
        result = send(_alert(), env=_webhook_env(f"http://127.0.0.1:{port}/hooks/hdp"))
    assert result == {"webhook": False}
    assert f"127.0.0.1:{port}" in caplog.text
    assert TOKEN not in caplog.text


def test_webhook_without_url_names_the_variable(caplog):
    with caplog.at_level(logging.ERROR, logger="hdp.orchestration.notify"):
        assert send(_alert(), env={"HDP_ALERT_CHANNELS": "webhook"}) == {"webhook": False}
    assert "HDP_ALERT_WEBHOOK_URL" in caplog.text


# --- a minimal real SMTP server --------------------------------------------------------------


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, MAIL, RCPT, DATA (with dot-unstuffing), QUIT."""

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")

    def _read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in {b".\r\n", b""}:
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)

    def handle(self) -> None:
        envelope: dict = {"to": []}
        self._reply("220 test.local ESMTP")
        while line := self.rfile.readline():
            command = line.decode("utf-8", "replace").strip()
            verb = command[:4].upper()
            if verb == "EHLO":
                self._reply("250-test.local")
                self._reply("250 8BITMIME")
            elif verb == "MAIL":
                envelope["from"] = command.split(":", 1)[1].strip().strip("<>")
                self._reply("250 OK")
            elif verb == "RCPT":
                envelope["to"].append(command.split(":", 1)[1].strip().strip("<>"))
                self._reply("250 OK")
            elif verb == "DATA":
                self._reply("354 end with <CRLF>.<CRLF>")
                envelope["data"] = self._read_data()
                self.server.messages.append(dict(envelope))  # type: ignore[attr-defined]
                self._reply("250 queued")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("250 OK")


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[dict]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1], server.messages  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_email_reaches_every_recipient_in_utf8(smtp_server):
    port, messages = smtp_server
    env = {
        "HDP_ALERT_CHANNELS": "email",
        "HDP_ALERT_EMAIL_TO": "data-team@hospital.test, it-oncall@hospital.test",
        "HDP_ALERT_EMAIL_FROM": "hdp@hospital.test",
        "HDP_SMTP_HOST": "127.0.0.1",
        "HDP_SMTP_PORT": str(port),
    }
    assert send(_alert(), env=env) == {"email": True}

    (received,) = messages
    assert received["from"] == "hdp@hospital.test"
    assert received["to"] == ["data-team@hospital.test", "it-oncall@hospital.test"]
    message = email.message_from_bytes(received["data"], policy=email.policy.default)
    assert message["Subject"] == "[HDP][error] raw_his.outpatient_visit 质量门未通过"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    body = message.get_content()
    assert "心血管内科" in body
    assert "检查 row_count_between 失败" in body
    assert "run: scheduled__2024-05-01T00:00:00+00:00" in body


def test_email_without_recipients_names_the_variable(caplog):
    env = {"HDP_ALERT_CHANNELS": "email", "HDP_SMTP_HOST": "127.0.0.1"}
    with caplog.at_level(logging.ERROR, logger="hdp.orchestration.notify"):
        assert send(_alert(), env=env) == {"email": False}
    assert "HDP_ALERT_EMAIL_TO" in caplog.text


def test_smtp_password_is_never_logged(caplog):
    env = {
        "HDP_ALERT_CHANNELS": "email",
        "HDP_ALERT_EMAIL_TO": "data-team@hospital.test",
        "HDP_ALERT_EMAIL_FROM": "hdp@hospital.test",
        "HDP_SMTP_HOST": "127.0.0.1",
        "HDP_SMTP_PORT": str(_closed_port()),
        "HDP_SMTP_USER": "hdp",
        "HDP_SMTP_PASSWORD": TOKEN,
    }
    with caplog.at_level(logging.ERROR, logger="hdp.orchestration.notify"):
        assert send(_alert(), env=env) == {"email": False}
    assert "127.0.0.1" in caplog.text
    assert TOKEN not in caplog.text


# --- log channel and channel selection -------------------------------------------------------


def test_log_is_the_default_channel(caplog):
    with caplog.at_level(logging.WARNING, logger="hdp.orchestration.notify"):
        assert send(_alert(kind="task_failed"), env={}) == {"log": True}
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("HDP ALERT [task_failed] ")


def test_warning_alerts_log_at_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="hdp.orchestration.notify"):
        send(_alert(kind="source_stale", severity="warning"), env={"HDP_ALERT_CHANNELS": "log"})
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "HDP ALERT [source_stale]" in record.getMessage()


def test_every_channel_is_tried_and_reported(caplog):
    env = {"HDP_ALERT_CHANNELS": "log, webhook, pager"}
    with caplog.at_level(logging.ERROR, logger="hdp.orchestration.notify"):
        assert send(_alert(), env=env) == {"log": True, "webhook": False, "pager": False}
    assert "'pager'" in caplog.text


def test_alert_rejects_unknown_severity():
    with pytest.raises(ValueError, match="severity"):
        _alert(severity="critical")


# --- alert_from_context and the Airflow callback ---------------------------------------------


def _ti(**overrides) -> SimpleNamespace:
    fields = {
        "dag_id": "hdp_ingest_his",
        "task_id": "extract",
        "run_id": "manual__2024-05-01T08:00:00+00:00",
        "map_index": 3,
        "try_number": 2,
    }
    return SimpleNamespace(**{**fields, **overrides})


class QualityGateFailed(RuntimeError):
    """Same name as hdp.quality.gate.QualityGateFailed: recognised by name, not imported."""


def test_context_keeps_only_the_first_line_of_an_error():
    error = RuntimeError(
        'duplicate key value violates unique constraint "patient_pkey"\n'
        "DETAIL: Key (id_card_no)=(110101199003071234) already exists."
    )
    alert = alert_from_context({"ti": _ti(), "exception": error}, env={})

    assert alert.kind == "task_failed"
    assert alert.severity == "error"
    assert (alert.dag_id, alert.task_id) == ("hdp_ingest_his", "extract")
    assert alert.run_id == "manual__2024-05-01T08:00:00+00:00"
    assert alert.title == "hdp_ingest_his.extract[3] failed (try 2)"
    assert alert.detail == (
        'RuntimeError: duplicate key value violates unique constraint "patient_pkey"'
    )
    assert "110101199003071234" not in repr(alert)
    assert alert.link is None


def test_context_first_line_is_truncated_and_long_numbers_redacted():
    error = ValueError('invalid input syntax for type bigint: "110101199003071234"' + "x" * 500)
    alert = alert_from_context({"task_instance": _ti(), "exception": error}, env={})
    assert "110101199003071234" not in alert.detail
    assert len(alert.detail) <= len("ValueError: ") + 300


def test_quality_gate_failure_keeps_every_line():
    message = "raw_his.outpatient_visit: 2 blocking checks failed\n- row_count\n- dept_code_in_set"
    alert = alert_from_context({"ti": _ti(task_id="gate"), "exception": QualityGateFailed(message)})
    assert alert.kind == "quality_gate_failed"
    assert alert.detail == f"QualityGateFailed: {message}"


def test_link_to_the_run_in_the_airflow_ui():
    env = {"AIRFLOW__API__BASE_URL": "https://airflow.hospital.test/"}
    alert = alert_from_context({"ti": _ti(), "exception": RuntimeError("boom")}, env=env)
    assert alert.link == (
        "https://airflow.hospital.test/dags/hdp_ingest_his/runs/"
        "manual__2024-05-01T08%3A00%3A00%2B00%3A00"
    )


def test_run_id_can_come_from_the_dag_run():
    dag_run = SimpleNamespace(dag_id="hdp_transform", run_id="asset_triggered__1")
    alert = alert_from_context({"dag_run": dag_run}, env={})
    assert (alert.dag_id, alert.run_id, alert.task_id) == (
        "hdp_transform",
        "asset_triggered__1",
        None,
    )
    assert alert.detail == "no exception in the callback context"


class _BrokenContext(dict):
    def get(self, key, default=None):
        raise RuntimeError("context exploded")


def test_on_task_failure_never_raises(monkeypatch, caplog):
    monkeypatch.delenv("HDP_ALERT_CHANNELS", raising=False)
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    with caplog.at_level(logging.ERROR, logger="hdp.orchestration.notify"):
        assert on_task_failure({}) is None
        assert on_task_failure(_BrokenContext()) is None
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("HDP ALERT [task_failed] unknown DAG.unknown task failed")
    assert "HDP alert callback failed" in messages[1]


def test_on_task_failure_sends_to_the_configured_channels(monkeypatch, webhook: Webhook):
    for name, value in _webhook_env(webhook.url).items():
        monkeypatch.setenv(name, value)
    on_task_failure({"ti": _ti(), "exception": RuntimeError("boom\nDETAIL: secret row")})
    payload = json.loads(webhook.requests[0]["body"])
    assert payload["detail"] == "RuntimeError: boom"
    assert payload["task_id"] == "extract"
    assert notify.configured_channels() == ["webhook"]
