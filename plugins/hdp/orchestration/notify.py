"""Failure and alert notifications: task failures, failed quality gates, stale sources.

Channels are chosen by the environment; nothing secret lives in code:

- ``HDP_ALERT_CHANNELS``: comma-separated ``log`` (default), ``webhook``, ``email``.
- ``webhook``: ``HDP_ALERT_WEBHOOK_URL`` (required), ``HDP_ALERT_WEBHOOK_TOKEN`` (optional, sent
  as ``Authorization: Bearer <token>``). The body is one JSON object, always the same shape::

      {"kind", "title", "detail", "severity", "dag_id", "task_id", "run_id", "link", "sent_at"}

  (``sent_at`` is ISO 8601 UTC; unknown values are null). Redirects are not followed, so the
  token is never forwarded to another host.
- ``email``: ``HDP_ALERT_EMAIL_TO`` (comma-separated, required), ``HDP_ALERT_EMAIL_FROM``
  (required), ``HDP_SMTP_HOST`` (required), ``HDP_SMTP_PORT`` (default 25), ``HDP_SMTP_USER`` and
  ``HDP_SMTP_PASSWORD`` (optional, both or neither), ``HDP_SMTP_STARTTLS`` ("1" = STARTTLS).
- ``AIRFLOW__API__BASE_URL``: when set, alerts built from a task context link to the DAG run.

A channel that fails is logged and reported as ``False`` by :func:`send`; it never raises, so
a notification problem cannot mask the task failure it reports. Secrets are never logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import smtplib
import ssl
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote, urlsplit

log = logging.getLogger(__name__)

SEVERITIES = ("error", "warning")
DEFAULT_CHANNELS = ("log",)
TIMEOUT_SECONDS = 10
FIRST_LINE_LIMIT = 300  # database errors quote row values after the first line
GATE_MESSAGE_LIMIT = 2000  # QualityGateFailed messages name checks and counts, never values
GATE_EXCEPTION = "QualityGateFailed"
# Belt and braces on the first line too ('invalid input syntax ...: "<value>"'): digit runs as
# long as a mobile number or an ID card number are replaced.
_LONG_NUMBER = re.compile(r"\d{11,}[\dXx]?")


class ChannelError(RuntimeError):
    """A channel is misconfigured or its delivery failed; the message is safe to log."""


@dataclass(frozen=True)
class Alert:
    """One notification. ``detail`` must already be free of patient data."""

    kind: str  # "task_failed", "quality_gate_failed", "source_stale", ...
    title: str
    detail: str = ""
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    link: str | None = None
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Alert severity must be one of {SEVERITIES}, not {self.severity!r}")


# --- configuration ---------------------------------------------------------------------------


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _require(env: Mapping[str, str], name: str, channel: str) -> str:
    value = (env.get(name) or "").strip()
    if not value:
        raise ChannelError(f"{channel} alerts are enabled but {name} is not set")
    return value


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def configured_channels(env: Mapping[str, str] | None = None) -> list[str]:
    """The channels named in HDP_ALERT_CHANNELS, in order, without duplicates; default ``log``."""
    names = _split(_environ(env).get("HDP_ALERT_CHANNELS", "").lower())
    return list(dict.fromkeys(names)) or list(DEFAULT_CHANNELS)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- channels --------------------------------------------------------------------------------


def _where(alert: Alert) -> str:
    named = (("dag", alert.dag_id), ("task", alert.task_id), ("run", alert.run_id))
    parts = " ".join(f"{name}={value}" for name, value in named if value)
    return f" ({parts})" if parts else ""


def send_log(alert: Alert, env: Mapping[str, str]) -> None:
    """Log the alert: first line ``HDP ALERT [kind] title (where)``, then detail and link."""
    level = logging.ERROR if alert.severity == "error" else logging.WARNING
    lines = [f"HDP ALERT [{alert.kind}] {_one_line(alert.title)}{_where(alert)}"]
    lines += [line for line in (alert.detail.rstrip(), alert.link and f"see {alert.link}") if line]
    log.log(level, "\n".join(lines))


def webhook_payload(alert: Alert, sent_at: datetime | None = None) -> dict[str, Any]:
    """The JSON object POSTed to HDP_ALERT_WEBHOOK_URL."""
    moment = sent_at or datetime.now(UTC)
    return {**asdict(alert), "sent_at": moment.isoformat(timespec="seconds")}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: urllib would forward the Authorization header to the new host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def send_webhook(alert: Alert, env: Mapping[str, str]) -> None:
    """POST the alert as JSON to HDP_ALERT_WEBHOOK_URL (bearer token if one is set)."""
    url = _require(env, "HDP_ALERT_WEBHOOK_URL", "webhook")
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ChannelError("HDP_ALERT_WEBHOOK_URL must be an http:// or https:// URL")
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if token := (env.get("HDP_ALERT_WEBHOOK_TOKEN") or "").strip():
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(webhook_payload(alert), ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        raise ChannelError(f"webhook to {_host(url)} failed: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    code = getattr(exc, "code", None)  # HTTPError: the server answered
    return f"HTTP {code} {reason}" if code else reason


def email_message(alert: Alert, sender: str, recipients: list[str]) -> EmailMessage:
    """The plain-text UTF-8 message: subject ``[HDP][severity] title``."""
    message = EmailMessage()
    message["Subject"] = f"[HDP][{alert.severity}] {_one_line(alert.title)}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    facts = [f"{name}: {value}" for name, value in _facts(alert) if value]
    body = "\n".join([alert.detail.rstrip(), "", *facts]).strip() + "\n"
    message.set_content(body, charset="utf-8", cte="quoted-printable")
    return message


def _facts(alert: Alert) -> list[tuple[str, str | None]]:
    return [
        ("kind", alert.kind),
        ("dag", alert.dag_id),
        ("task", alert.task_id),
        ("run", alert.run_id),
        ("link", alert.link),
    ]


def _smtp_port(env: Mapping[str, str]) -> int:
    raw = (env.get("HDP_SMTP_PORT") or "25").strip()
    if not raw.isdigit():
        raise ChannelError(f"HDP_SMTP_PORT must be a port number, not {raw!r}")
    return int(raw)


def send_email(alert: Alert, env: Mapping[str, str]) -> None:
    """Send the alert by SMTP to HDP_ALERT_EMAIL_TO."""
    recipients = _split(_require(env, "HDP_ALERT_EMAIL_TO", "email"))
    sender = _require(env, "HDP_ALERT_EMAIL_FROM", "email")
    host, port = _require(env, "HDP_SMTP_HOST", "email"), _smtp_port(env)
    user = (env.get("HDP_SMTP_USER") or "").strip()
    password = _require(env, "HDP_SMTP_PASSWORD", "email (HDP_SMTP_USER is set)") if user else ""
    message = email_message(alert, sender, recipients)
    try:
        with smtplib.SMTP(host, port, timeout=TIMEOUT_SECONDS) as smtp:
            if env.get("HDP_SMTP_STARTTLS", "").strip() == "1":
                smtp.starttls(context=ssl.create_default_context())
            if user:
                smtp.login(user, password)
            smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    except (OSError, smtplib.SMTPException) as exc:
        raise ChannelError(f"email via {host}:{port} failed: {type(exc).__name__}: {exc}") from None


CHANNELS: dict[str, Callable[[Alert, Mapping[str, str]], None]] = {
    "log": send_log,
    "webhook": send_webhook,
    "email": send_email,
}


def _deliver(channel: str, alert: Alert, env: Mapping[str, str]) -> bool:
    deliver = CHANNELS.get(channel)
    if deliver is None:
        known = ", ".join(CHANNELS)
        log.error("HDP alert channel %r in HDP_ALERT_CHANNELS is unknown (use %s)", channel, known)
        return False
    try:
        deliver(alert, env)
    except ChannelError as exc:
        log.error("HDP alert [%s] not delivered: %s", alert.kind, exc)
        return False
    except Exception as exc:  # a bug in a channel must not hide the task failure either
        log.error("HDP alert [%s] not delivered by %s: %s", alert.kind, channel, type(exc).__name__)
        return False
    return True


def send(alert: Alert, env: Mapping[str, str] | None = None) -> dict[str, bool]:
    """Deliver the alert to every configured channel; never raises. Returns channel → delivered."""
    environ = _environ(env)
    return {channel: _deliver(channel, alert, environ) for channel in configured_channels(environ)}


# --- Airflow task callbacks ------------------------------------------------------------------


def _attr(obj: object, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


def _exception_name(exc: object) -> str | None:
    return type(exc).__name__ if isinstance(exc, BaseException) else None


def exception_summary(exc: object) -> str:
    """What of an exception may leave the platform: the first line only, except for gates."""
    if exc is None:
        return "no exception in the callback context"
    name, message = _exception_name(exc), str(exc).strip()
    if name == GATE_EXCEPTION:
        return f"{name}: {message}"[:GATE_MESSAGE_LIMIT]
    first = _LONG_NUMBER.sub("<redacted>", message.splitlines()[0] if message else "")
    first = first[:FIRST_LINE_LIMIT]
    return f"{name}: {first}" if name else first


def run_link(dag_id: str | None, run_id: str | None, env: Mapping[str, str]) -> str | None:
    """The Airflow UI page of a DAG run, if AIRFLOW__API__BASE_URL is set."""
    base = (env.get("AIRFLOW__API__BASE_URL") or "").strip().rstrip("/")
    if not (base and dag_id and run_id):
        return None
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _task_label(task_id: str | None, map_index: object) -> str:
    label = task_id or "unknown task"
    return f"{label}[{map_index}]" if isinstance(map_index, int) and map_index >= 0 else label


def alert_from_context(context: Mapping, env: Mapping[str, str] | None = None) -> Alert:
    """An Alert for a failed task, from an Airflow task callback context (or a plain dict)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag_id = _attr(ti, "dag_id") or _attr(dag_run, "dag_id")
    run_id = _attr(ti, "run_id") or _attr(dag_run, "run_id")
    task_id, try_number = _attr(ti, "task_id"), _attr(ti, "try_number")
    exc = context.get("exception")
    is_gate = _exception_name(exc) == GATE_EXCEPTION
    task = _task_label(task_id, _attr(ti, "map_index"))
    attempt = f" (try {try_number})" if try_number else ""
    return Alert(
        kind="quality_gate_failed" if is_gate else "task_failed",
        title=f"{dag_id or 'unknown DAG'}.{task} failed{attempt}",
        detail=exception_summary(exc),
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        link=run_link(dag_id, run_id, _environ(env)),
        severity="error",
    )


def on_task_failure(context: Mapping) -> None:
    """Airflow ``on_failure_callback``: send an alert; never raises."""
    try:
        send(alert_from_context(context))
    except Exception:
        log.exception("HDP alert callback failed; the task failure itself is unaffected")
