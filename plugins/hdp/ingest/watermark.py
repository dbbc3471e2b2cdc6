"""Watermarks of every kind a database source keeps: how each is compared, stepped back by the
look-back window, and stored in audit.load_batch.

The source column's type decides the kind (hdp.ingest.extract reads it from the catalogue):

- `timestamp` (without time zone), no zone declared: compared and stored as the source has
  it (every source before issue 16; unchanged);
- `timestamptz`: compared as instants; stored in UTC;
- `timestamp` with the source's time zone declared in the manifest (`time_zone`): wall-clock
  time of that zone; stored in UTC, stepped back in real time (across a daylight-saving change);
- `smallint` / `integer` / `bigint`: a monotonic number the source raises on every change;
  stored as a number, stepped back by the manifest's `lookback_ids`.

audit.load_batch keeps a timestamp watermark in low/high_watermark and a number in
low/high_watermark_id, with the kind in watermark_kind (null: a batch of before, a timestamp
as the source had it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from hdp.manifest import time_zone_info

WatermarkValue = datetime | int

INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


class WatermarkError(ValueError):
    """A watermark the extract cannot use as declared; the message says what to do."""


class WatermarkKind(StrEnum):
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    ZONED_TIMESTAMP = "zoned_timestamp"
    INTEGER = "integer"


# kinds whose stored value is an instant in UTC
_UTC_KINDS = frozenset({WatermarkKind.TIMESTAMPTZ, WatermarkKind.ZONED_TIMESTAMP})


@dataclass(frozen=True)
class StoredWatermark:
    """One watermark as audit.load_batch holds it. `at_tz`: `at` read as timestamptz in the
    warehouse session (only a batch of before needs it: see Watermark.from_audit)."""

    kind: str | None
    at: datetime | None
    id: int | None
    at_tz: datetime | None = None


def zone(name: str, where: str) -> ZoneInfo:
    """The IANA time zone `name`, or a refusal naming `where` it was declared."""
    try:
        return time_zone_info(name, where)
    except ValueError as exc:
        raise WatermarkError(str(exc)) from None


def watermark_of(column: str, sql_type: str, time_zone: str | None, where: str) -> Watermark:
    """The watermark of a source column of SQL type `sql_type` (PostgreSQL's format_type);
    `time_zone`: the manifest's, for naive timestamps; `where`: schema.table, for messages."""
    if sql_type.startswith("timestamp") and sql_type.endswith(" without time zone"):
        if time_zone:
            zone(time_zone, where)
            return Watermark(column, WatermarkKind.ZONED_TIMESTAMP, time_zone, where)
        return Watermark(column, WatermarkKind.TIMESTAMP, None, where)
    if sql_type.startswith("timestamp") and sql_type.endswith(" with time zone"):
        return Watermark(column, WatermarkKind.TIMESTAMPTZ, None, where)
    if sql_type in INTEGER_TYPES:
        return Watermark(column, WatermarkKind.INTEGER, None, where)
    raise WatermarkError(
        f"{where}: watermark {column} is {sql_type}: a watermark must be a timestamp, a "
        "timestamptz or an integer (smallint, integer, bigint) the source raises on every "
        "change. Name another column in the manifest, or ask the source for a view that casts "
        "this one."
    )


@dataclass(frozen=True)
class Watermark:
    column: str
    kind: WatermarkKind
    time_zone: str | None  # ZONED_TIMESTAMP only
    where: str  # schema.table at the source, for messages

    def check(self, value: object) -> WatermarkValue:
        """A value read from the source (its max), refused unless it is of this kind."""
        if self.kind is WatermarkKind.INTEGER:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(value, datetime):
            ok = (value.tzinfo is not None) == (self.kind is WatermarkKind.TIMESTAMPTZ)
        else:
            ok = False
        if not ok:
            raise WatermarkError(
                f"{self.where}: watermark {self.column} returned a {type(value).__name__}, "
                f"not a {self.kind.value} value: has the column's type changed at the source?"
            )
        return value  # type: ignore[return-value]

    def later(self, a: WatermarkValue, b: WatermarkValue) -> bool:
        """Whether `a` comes after `b` (both of this kind, as `check` returns them)."""
        return a > b  # type: ignore[operator]

    def back(self, value: WatermarkValue, minutes: timedelta, ids: int) -> WatermarkValue:
        """`value` less the look-back window: `minutes` for timestamps, `ids` for integers."""
        if self.kind is WatermarkKind.INTEGER:
            return value - ids  # type: ignore[operator]
        if self.kind is WatermarkKind.ZONED_TIMESTAMP:
            # wall time cannot tell the two passes of the hour a clock falls back apart, nor
            # does it count the hour a clock springs forward: read back by the window in real
            # time and in wall time, whichever reaches further (re-read rows are not stored)
            real = self._wall(self._utc(value) - minutes)  # type: ignore[arg-type]
            return min(real, value - minutes)  # type: ignore[operator]
        return value - minutes  # type: ignore[operator]

    def to_audit(self, value: WatermarkValue | None) -> StoredWatermark:
        """How audit.load_batch stores `value` (None: no watermark yet)."""
        if value is None:
            return StoredWatermark(self.kind.value, None, None)
        if self.kind is WatermarkKind.INTEGER:
            return StoredWatermark(self.kind.value, None, value)  # type: ignore[arg-type]
        if self.kind in _UTC_KINDS:
            return StoredWatermark(self.kind.value, self._utc(value), None)  # type: ignore[arg-type]
        return StoredWatermark(self.kind.value, value, None)  # type: ignore[arg-type]

    def from_audit(self, stored: StoredWatermark) -> WatermarkValue | None:
        """A stored watermark in the source's terms (what `check` returns), or None. A batch
        stored before watermark_kind existed (kind None) holds a timestamp: as the source had it
        (a naive one, or its wall time in the declared zone), or an aware one the warehouse
        converted to its session's zone (read back through it: `at_tz`)."""
        kind = self._stored_kind(stored)
        if kind is WatermarkKind.INTEGER:
            return stored.id
        if stored.at is None:
            return None
        if stored.kind is None and self.kind is WatermarkKind.TIMESTAMPTZ:
            return stored.at_tz
        if kind in _UTC_KINDS:
            instant = stored.at.replace(tzinfo=UTC)
            return instant if self.kind is WatermarkKind.TIMESTAMPTZ else self._wall(instant)
        return stored.at

    def _stored_kind(self, stored: StoredWatermark) -> WatermarkKind:
        if stored.kind is None:  # before watermark_kind: whatever this column is now
            return WatermarkKind.TIMESTAMP if self.kind is not WatermarkKind.INTEGER else self.kind
        kind = WatermarkKind(stored.kind)
        compatible = (
            kind is self.kind
            or (kind in _UTC_KINDS and self.kind in _UTC_KINDS)
            # the zone declared since: the stored values are the same column's wall time
            or (kind is WatermarkKind.TIMESTAMP and self.kind is WatermarkKind.ZONED_TIMESTAMP)
        )
        if not compatible:
            raise WatermarkError(
                f"{self.where}: watermark {self.column} is now {self._describe()}, but the "
                f"published batches of this table hold {kind.value} watermarks: the next "
                "interval cannot start from them. Restore the manifest's watermark (or time "
                "zone), or, to start this table afresh, re-extract it in full under a new "
                "raw table (a migration)."
            )
        return kind

    def _describe(self) -> str:
        if self.kind is WatermarkKind.ZONED_TIMESTAMP:
            return f"a timestamp in {self.time_zone}"
        return f"a {self.kind.value}"

    def _utc(self, value: datetime) -> datetime:
        """The instant of an aware value, or of a wall time in the declared zone (an ambiguous
        wall time, in the hour a clock falls back, is the earlier instant), as naive UTC."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(self.time_zone or "UTC"), fold=0)
        return value.astimezone(UTC).replace(tzinfo=None)

    def _wall(self, utc: datetime) -> datetime:
        """Naive UTC (or an aware instant) as wall time in the declared zone."""
        instant = utc if utc.tzinfo is not None else utc.replace(tzinfo=UTC)
        return instant.astimezone(ZoneInfo(self.time_zone or "UTC")).replace(tzinfo=None)
