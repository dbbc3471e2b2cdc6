"""Monthly demand forecast per drug: candidates from statsforecast, chosen by backtest.

For each drug's monthly quantity (`forecast_many`):

1. **Partial months** (`trim_partial`): when the history's first or last month is not fully
   covered by data (the extract started or stopped mid-month), the month is scaled up by its
   share of working days when at least half of them are covered, and excluded otherwise. The
   forecast says which (`Forecast.partial`); an excluded last month is forecast instead.
2. **Calendar** (`calendar_factors`): with three years or more, a regression of each month's
   change on the same month a year earlier against the change in Spring Festival days and in
   working days (`hdp.analytics.holiday_calendar`) measures the series' holiday effect; the
   significant terms (|t| >= 2) divide it out before the candidates see the series and are put
   back on the forecast. With less than two years (too short for a season), the series is
   turned into demand per working-day equivalent (off days weighted by the institution's
   measured off-day share) so that a month's forecast follows its working days and holidays.
3. **Candidates** (`CANDIDATES`, statsforecast): seasonal naive ("same month last year"),
   AutoETS, AutoTheta, AutoARIMA, and for intermittent demand Croston (SBA); for short
   histories naive, the historic average and non-seasonal ETS. Each needs a minimum history.
4. **Selection by rolling-origin backtest** (`backtest`, `select`): each candidate forecasts
   the last `windows` stretches of the series' own history from what came before; the lowest
   WAPE over those stretches wins, seasonal naive whenever it ties, so the choice cannot lose
   to seasonal naive in backtest. The choice and its backtest WAPE are kept with the forecast.
5. **Intervals** (`step_quantiles`): conformal and symmetric, from the backtest errors pooled
   over the family of series forecast together, each error divided by its series' scale (mean
   of the last year) and spread (mean |error| / scale); 80%, 90% and 95%, each the split-conformal
   rank ceil((n + 1) x level) of n errors (`conformal_quantile`). A large family (at
   least `MIN_STEP_ERRORS` errors of the chosen methods at a step) gets a quantile per step,
   grown by the square root of the step past the backtest's longest stretch; a small one takes
   every candidate's errors (the chosen method's own are optimistic after selection), per step
   as well when each step has `MIN_INTERVAL_ERRORS` of them, else pooled with a width growing
   as step^b, b measured on those errors (`growth_exponent`). Their coverage on
   held-back data, pooled and for the first three months (what reorder points use), is what
   `make forecast-bench` prints next to the nominal level.

`evaluate(series, holdout)` holds the last months back, forecasts them and scores WAPE (sum
|error| / sum |actual|) and MAPE (mean |error| / |actual| over non-zero actuals) of the chosen
forecast, of every candidate and of seasonal naive, with interval coverage.
`hdp.analytics.forecast_mart.forecast_table` writes the marts.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from hdp.analytics.holiday_calendar import MonthCalendar, month_calendar, span_calendar

SEASON = 12  # months
LEVELS = (80, 90, 95)  # interval levels, percent
BACKTEST_WINDOWS = 6
MIN_INTERVAL_ERRORS = 30  # pooled backtest errors below which intervals fall back to normal
CALENDAR_MIN_MONTHS = 3 * SEASON  # yearly changes needed to measure a holiday effect
SHORT_MONTHS = 2 * SEASON  # below this a series has no season: demand per working day
PARTIAL_MIN_COVERAGE = 0.5  # a partial month covering less than this share is excluded
DEFAULT_COUNTRY = "CN"
MAX_FIT_MONTHS = 10 * SEASON  # older history is left out: it slows AutoARIMA and rarely helps


# --------------------------------------------------------------------------------------------
# Series


def month_index(start: date, periods: int) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(start), periods=periods, freq="MS")


def monthly_series(rows: Iterable[tuple[str, date, float]]) -> dict[str, pd.Series]:
    """(key, first-of-month, quantity) rows → one gap-free monthly series per key.

    Each series runs from the key's first month to the last month of all rows; months without
    a row are zero (nothing dispensed). Rows of one key and month are summed.
    """
    frame = pd.DataFrame(list(rows), columns=["key", "month", "quantity"])
    if frame.empty:
        return {}
    frame["month"] = pd.to_datetime(frame["month"]).dt.to_period("M").dt.to_timestamp()
    frame["quantity"] = frame["quantity"].astype(float)
    last = frame["month"].max()
    out: dict[str, pd.Series] = {}
    for key, part in frame.groupby("key", sort=True):
        sums = part.groupby("month")["quantity"].sum()
        index = pd.date_range(sums.index.min(), last, freq="MS")
        out[str(key)] = sums.reindex(index, fill_value=0.0).rename(str(key))
    return out


def _months_after(history: pd.Series, horizon: int) -> list[date]:
    start = pd.Timestamp(history.index[-1]) + pd.offsets.MonthBegin(1)
    return [ts.date() for ts in month_index(start.date(), horizon)]


# --------------------------------------------------------------------------------------------
# Calendar


@dataclass(frozen=True)
class CalendarSpec:
    """Whose holidays, and how much an off day sells compared with a working day."""

    country: str | None = DEFAULT_COUNTRY
    off_day_weight: float = 1.0  # measured per institution from daily totals when known


def working_days(cal: MonthCalendar, spec: CalendarSpec) -> float:
    """Working-day equivalents of a month: working days plus weighted off days."""
    return cal.workdays + spec.off_day_weight * cal.off_days


def trim_partial(
    history: pd.Series, first_day: date | None, last_day: date | None, spec: CalendarSpec
) -> tuple[pd.Series, str]:
    """Scale up or drop the first and last month when data covers only part of them.

    Returns the series and what was done to its last month: 'complete', 'scaled xK.KK' or
    'excluded' (the first month is treated the same way, silently: it is history, not news).
    """
    y = history.astype(float).copy()
    note = "complete"
    if len(y) == 0:
        return y, note
    if last_day is not None:
        month = pd.Timestamp(y.index[-1]).date()
        full = span_calendar(month, _month_end(month), spec.country)
        if last_day < _month_end(month):
            part = span_calendar(month, last_day, spec.country)
            share = working_days(part, spec) / max(working_days(full, spec), 1e-9)
            if share >= PARTIAL_MIN_COVERAGE:
                y.iloc[-1] = y.iloc[-1] / share
                note = f"scaled x{1 / share:.2f}"
            else:
                y = y.iloc[:-1]
                note = "excluded"
    if first_day is not None and len(y):
        month = pd.Timestamp(y.index[0]).date()
        if first_day > month:
            full = span_calendar(month, _month_end(month), spec.country)
            part = span_calendar(first_day, _month_end(month), spec.country)
            share = working_days(part, spec) / max(working_days(full, spec), 1e-9)
            if share >= PARTIAL_MIN_COVERAGE:
                y.iloc[0] = y.iloc[0] / share
            else:
                y = y.iloc[1:]
    return y, note


def _month_end(month: date) -> date:
    return (pd.Timestamp(month) + pd.offsets.MonthEnd(0)).date()


@lru_cache(maxsize=8)
def _reference_features(country: str | None) -> np.ndarray:
    """Mean Spring Festival days and working days of each calendar month over 2000-2039: what
    a seasonal model already knows about a January; only the deviation from it is news."""
    months = [date(y, m, 1) for y in range(2000, 2040) for m in range(1, 13)]
    feats = _raw_features(months, country).reshape(40, SEASON, 2)
    return feats.mean(axis=0)


def _raw_features(months: Sequence[date], country: str | None) -> np.ndarray:
    cals = month_calendar(months, country)
    return np.array([[c.spring_festival_days, c.workdays] for c in cals], dtype=float)


def calendar_features(months: Sequence[date], country: str | None) -> np.ndarray:
    """Per month: Spring Festival days and working days, minus their calendar month's mean."""
    ref = _reference_features(country)
    raw = _raw_features(months, country)
    return raw - ref[[m.month - 1 for m in months]]


@dataclass(frozen=True)
class CalendarEffect:
    """Multiplicative calendar factors of the history and of the forecast months."""

    past: np.ndarray
    future: np.ndarray
    label: str  # none | per_working_day | spring_festival, working_days or both joined by +


NO_CALENDAR = "none"


def calendar_effect(
    y: np.ndarray, months: Sequence[date], future: Sequence[date], spec: CalendarSpec
) -> CalendarEffect:
    """The series' calendar factors (see the module docstring, step 2)."""
    if len(y) < SHORT_MONTHS:
        cals = month_calendar(list(months) + list(future), spec.country)
        wd = np.array([working_days(c, spec) for c in cals])
        ref = float(wd[: len(y)].mean()) if len(y) else 1.0
        factors = wd / max(ref, 1e-9)
        return CalendarEffect(factors[: len(y)], factors[len(y) :], "per_working_day")
    ones = CalendarEffect(np.ones(len(y)), np.ones(len(future)), NO_CALENDAR)
    if len(y) < CALENDAR_MIN_MONTHS or spec.country is None:
        return ones
    x = calendar_features(list(months) + list(future), spec.country)
    b = holiday_betas(y, x[: len(y)])
    if b is None or not b.any():
        return ones
    factors = np.clip(np.exp(x @ b), 0.3, 3.0)
    names = ("spring_festival", "working_days")
    label = "+".join(n for n, v in zip(names, b, strict=True) if v != 0)
    return CalendarEffect(factors[: len(y)], factors[len(y) :], label)


def holiday_betas(y: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Log effect per Spring Festival day and per working day, from the change of each month
    on the same month a year earlier; terms with |t| < 2 are zero. None when too few."""
    both = (y[SEASON:] > 0) & (y[:-SEASON] > 0)
    if both.sum() < SEASON:
        return None
    d = np.log(y[SEASON:][both]) - np.log(y[:-SEASON][both])
    dx = (x[SEASON:] - x[:-SEASON])[both]
    design = np.column_stack([np.ones(len(d)), dx])
    beta, *_ = np.linalg.lstsq(design, d, rcond=None)
    resid = d - design @ beta
    dof = len(d) - design.shape[1]
    if dof < 3:
        return None
    try:
        cov = float(resid @ resid) / dof * np.linalg.inv(design.T @ design)
    except np.linalg.LinAlgError:
        return None
    se = np.sqrt(np.maximum(np.diag(cov), 1e-18))
    keep = np.abs(beta / se) >= 2.0
    return np.where(keep, beta, 0.0)[1:]  # the intercept is growth, not calendar


# --------------------------------------------------------------------------------------------
# Candidates


@dataclass(frozen=True)
class Candidate:
    name: str
    min_months: int  # least history it is fitted on
    make: Callable[[], object]
    long: bool  # a candidate for series of two years or more
    short: bool  # a candidate for shorter series
    intermittent_only: bool = False
    calendar: bool = True  # sees the calendar-adjusted series (seasonal naive: the raw one)


def _candidates() -> tuple[Candidate, ...]:
    from statsforecast.models import (
        AutoARIMA,
        AutoETS,
        AutoTheta,
        CrostonSBA,
        HistoricAverage,
        Naive,
        SeasonalNaive,
    )

    return (
        Candidate(
            "seasonal_naive", SEASON, lambda: SeasonalNaive(season_length=SEASON), True, True
        ),
        Candidate("auto_ets", 2 * SEASON, lambda: AutoETS(season_length=SEASON), True, False),
        Candidate("auto_theta", 2 * SEASON, lambda: AutoTheta(season_length=SEASON), True, False),
        Candidate("auto_arima", 3 * SEASON, lambda: AutoARIMA(season_length=SEASON), True, False),
        Candidate("croston_sba", 6, CrostonSBA, True, True, intermittent_only=True),
        Candidate("last_month", 1, Naive, False, True),
        Candidate("historic_average", 1, HistoricAverage, False, True),
        Candidate("ets", 6, lambda: AutoETS(season_length=1), False, True),
    )


CANDIDATE_NAMES = (
    "seasonal_naive",
    "combination",
    "auto_ets",
    "auto_theta",
    "auto_arima",
    "croston_sba",
    "last_month",
    "historic_average",
    "ets",
)
INTERMITTENT_ZERO_SHARE = 0.3  # months without demand from which Croston is a candidate


def candidates_for(y: np.ndarray, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates that fit this series' length and demand pattern, seasonal naive first."""
    short = len(y) < SHORT_MONTHS
    zero_share = float((y <= 0).mean()) if len(y) else 1.0
    return [
        c
        for c in candidates
        if (c.short if short else c.long)
        and len(y) >= c.min_months
        and (not c.intermittent_only or zero_share >= INTERMITTENT_ZERO_SHARE)
    ]


def predict(candidate: Candidate, y: np.ndarray, horizon: int) -> np.ndarray | None:
    """One candidate's mean forecast, non-negative; None when it fails or explodes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = candidate.make().forecast(y=np.asarray(y, dtype=float), h=horizon)["mean"]
        except Exception:
            return None
    values = np.asarray(out, dtype=float)
    top = max(float(np.max(y)) if len(y) else 0.0, 1.0)
    if values.shape != (horizon,) or not np.isfinite(values).all() or values.max() > 3 * top:
        return None
    return np.maximum(values, 0.0)


def seasonal_naive(history: pd.Series, horizon: int) -> np.ndarray:
    """The baseline: each month as it was a year earlier (the last value when < 12 months)."""
    y = history.to_numpy(dtype=float)
    if len(y) == 0:
        return np.zeros(horizon)
    if len(y) < SEASON:
        return np.full(horizon, y[-1])
    last_season = y[-SEASON:]
    return np.array([last_season[h % SEASON] for h in range(horizon)])


# --------------------------------------------------------------------------------------------
# Backtest and selection


@dataclass
class Backtest:
    """Errors of each candidate over the same rolling origins of one series."""

    origins: list[int]
    horizon: int
    abs_error: dict[str, float] = field(default_factory=dict)
    actual_sum: float = 0.0
    errors: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    # candidate → (step, signed error, scale) per backtest point

    def wape(self, name: str) -> float:
        if name not in self.abs_error or self.actual_sum <= 0:
            return math.nan
        return self.abs_error[name] / self.actual_sum


def rolling_origins(n: int, horizon: int, windows: int, least: int) -> tuple[list[int], int]:
    """Origins (train lengths) of up to `windows` backtest stretches, each at least `least`
    months of training, and the stretch length (the horizon, shortened for short series)."""
    h = max(1, min(horizon, (n - least) if n > least else 0))
    if n - h < least:
        return [], h
    step = max(1, h // 2)
    origins = [n - h - k * step for k in range(windows)]
    return [o for o in origins if o >= least], h


def _scale(y: np.ndarray, origin: int) -> float:
    past = y[max(0, origin - SEASON) : origin]
    return max(float(past.mean()) if len(past) else 0.0, 1e-6)


def _scored_origins(
    n: int, horizon: int, windows: int, candidates: Sequence[Candidate]
) -> tuple[list[Candidate], list[int], int]:
    """The candidates, origins and stretch length of a backtest: all candidates on at least
    two common origins if possible, with a shorter stretch (6, then 3 months) before a
    candidate that needs the longest history is left out."""
    pool = sorted(candidates, key=lambda c: c.min_months)
    base = SEASON if n >= SEASON + 1 else 1
    stretches = list(dict.fromkeys([horizon, min(horizon, 6), min(horizon, 3)]))
    while pool:
        least = max(base, *(c.min_months for c in pool))
        for stretch in stretches:
            origins, h = rolling_origins(n, stretch, windows, least)
            if len(origins) >= min(2, windows):
                return pool, origins, h
        if len(pool) == 1 and origins:
            return pool, origins, h
        pool = pool[:-1]
    return [], [], 0


def in_units(candidate: Candidate, pred: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """A candidate's forecast in the series' own units (calendar factors put back)."""
    return pred * factors if candidate.calendar else pred


def backtest(
    y_adj: np.ndarray,
    y: np.ndarray,
    factors: np.ndarray,
    candidates: Sequence[Candidate],
    horizon: int,
    windows: int,
) -> tuple[Backtest | None, list[Candidate]]:
    """Forecast the last stretches of the history from what came before, every candidate.

    All candidates are scored on the same origins (`_scored_origins`). Seasonal naive sees
    the series as it is (it is the baseline); the others see it calendar-adjusted. Returns
    the backtest and the candidates it scored.
    """
    pool, origins, h = _scored_origins(len(y), horizon, windows, candidates)
    if not pool:
        return None, list(candidates)
    bt = Backtest(origins, h)
    for o in origins:
        actual = y[o : o + h]
        bt.actual_sum += float(np.abs(actual).sum())
        preds: dict[str, np.ndarray | None] = {}
        for c in pool:
            pred = predict(c, (y_adj if c.calendar else y)[:o], h)
            preds[c.name] = None if pred is None else in_units(c, pred, factors[o : o + h])
        preds.update(combinations(preds))
        for name, pred in preds.items():
            if pred is None:
                bt.abs_error[name] = math.inf
                continue
            err = actual - pred
            bt.abs_error[name] = bt.abs_error.get(name, 0.0) + float(np.abs(err).sum())
            scale = _scale(y, o)
            bt.errors.setdefault(name, []).extend((j, float(e), scale) for j, e in enumerate(err))
    return bt, pool


COMBINATION = "combination"  # mean of AutoETS, AutoTheta and AutoARIMA (those that fitted)
COMBINED = ("auto_ets", "auto_theta", "auto_arima")


def combinations(preds: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    """The equal-weight mean of the statistical models' forecasts, when two or more fitted:
    combining ETS, Theta and ARIMA is the most robust single rule of the M3/M4 competitions."""
    parts = [preds[n] for n in COMBINED if preds.get(n) is not None]
    return {COMBINATION: np.mean(parts, axis=0)} if len(parts) >= 2 else {}


COMBINATION_MARGIN = 0.10  # a single model must beat the combination by this share to win


def select(bt: Backtest | None, eligible: Sequence[Candidate]) -> str:
    """The method with the least backtest error, with two rules on top: seasonal naive wins
    ties (the choice never loses to it in backtest), and the combination is kept unless a
    single model's backtest error is at least COMBINATION_MARGIN lower (a small backtest win
    is mostly noise; the combination is the robust default). Without a backtest: seasonal
    naive when it is eligible, else the historic average."""
    names = [c.name for c in eligible] + [COMBINATION]
    if bt is not None:
        scored = [(bt.abs_error[n], i, n) for i, n in enumerate(names) if n in bt.abs_error]
        scored = [s for s in scored if math.isfinite(s[0])]
        if scored:
            best = min(e for e, _, _ in scored)
            tied = [s for s in scored if s[0] <= best * (1 + 1e-9) + 1e-12]
            winner = min(tied, key=lambda s: s[1])[2]
            combined = bt.abs_error.get(COMBINATION, math.inf)
            naive = bt.abs_error.get("seasonal_naive", math.inf)
            if combined * (1 - COMBINATION_MARGIN) <= best and combined < naive:
                return COMBINATION
            return winner
    for fallback in ("seasonal_naive", "historic_average", "last_month"):
        if fallback in names:
            return fallback
    return names[0]


# --------------------------------------------------------------------------------------------
# Forecasts


@dataclass(frozen=True)
class Forecast:
    """Forecast of one series for the months after its history, with intervals per level."""

    months: list[date]
    values: np.ndarray
    lower: dict[int, np.ndarray]
    upper: dict[int, np.ndarray]
    method: str  # the chosen candidate
    backtest_wape: float  # its WAPE over the rolling-origin backtest; nan without one
    calendar: str  # the calendar effect applied (CalendarEffect.label)
    partial: str  # what was done to a partial last month: complete | scaled xK | excluded
    candidates: Mapping[str, np.ndarray] = field(default_factory=dict)  # all, when asked


@dataclass
class _Fit:
    months: list[date]
    values: np.ndarray
    method: str
    backtest_wape: float
    calendar: str
    partial: str
    level: float  # mean of the last year of history: the interval's scale
    errors: list[tuple[int, float, float]]  # the chosen method's backtest errors
    all_errors: dict[str, list[tuple[int, float, float]]]  # every scored candidate's
    candidates: dict[str, np.ndarray]


def _fit_one(
    history: pd.Series,
    horizon: int,
    spec: CalendarSpec,
    bounds: tuple[date | None, date | None],
    windows: int,
    all_candidates: bool,
    pool: Sequence[Candidate],
) -> _Fit:
    trimmed, partial = trim_partial(history, bounds[0], bounds[1], spec)
    if len(trimmed) == 0:
        trimmed = history.iloc[:0]
    trimmed = trimmed.iloc[-MAX_FIT_MONTHS:]
    y = trimmed.to_numpy(dtype=float)
    months = [ts.date() for ts in trimmed.index]
    if len(trimmed):
        future = _months_after(trimmed, horizon)
    else:
        future = _months_after(history.iloc[:1], horizon) if len(history) else []
    if len(y) == 0 or float(np.abs(y).sum()) == 0:
        zeros = np.zeros(horizon)
        return _Fit(future, zeros, "zero", math.nan, NO_CALENDAR, partial, 0.0, [], {}, {})
    effect = calendar_effect(y, months, future, spec)
    y_adj = y / effect.past
    eligible = candidates_for(y, pool)
    bt, scored = backtest(y_adj, y, effect.past, eligible, horizon, windows)
    method = select(bt, scored)
    if all_candidates:
        wanted = eligible
    elif method == COMBINATION:
        wanted = [c for c in scored if c.name in COMBINED]
    else:
        wanted = [c for c in scored if c.name == method]
    fitted: dict[str, np.ndarray | None] = {}
    for c in wanted:
        pred = predict(c, y_adj if c.calendar else y, horizon)
        fitted[c.name] = None if pred is None else in_units(c, pred, effect.future)
    fitted.update(combinations(fitted) if method == COMBINATION or all_candidates else {})
    fitted = {n: p for n, p in fitted.items() if p is not None}
    values = fitted.get(method)
    if values is None:  # the chosen one failed on the whole history: same month last year
        if len(y) >= SEASON:
            method, values = "seasonal_naive", seasonal_naive(pd.Series(y), horizon)
        else:
            method, values = "historic_average", np.full(horizon, y_adj.mean()) * effect.future
    return _Fit(
        future,
        np.maximum(values, 0.0),
        method,
        bt.wape(method) if bt is not None else math.nan,
        effect.label,
        partial,
        _scale(y, len(y)),
        bt.errors.get(method, []) if bt is not None else [],
        bt.errors if bt is not None else {},
        fitted,
    )


MIN_STEP_ERRORS = 100  # errors at a step from which that step gets its own quantile
DEFAULT_GROWTH = 0.5  # a small family's growth exponent when too few steps measure it
BEYOND_GROWTH = 0.5  # past the backtest's longest step: widths grow with its square root

Errors = Sequence[tuple[int, float, float]]  # (step, signed error, the series' scale)


def spread(errors: Errors) -> float:
    """A series' own error size: mean |backtest error| / its scale; nan with fewer than 6."""
    r = np.array([abs(e) / s for _, e, s in errors if s > 0], dtype=float)
    return float(r.mean()) if len(r) >= 6 else math.nan


def conformal_quantile(scores: Sequence[float] | np.ndarray, level: float) -> float:
    """Split-conformal quantile of `scores` at `level` (0-1): the ceil((n + 1) x level)-th
    smallest, so a new exchangeable error falls inside with probability at least `level`
    (the plain empirical quantile undercovers by about 1 / n); the largest when n is small."""
    r = np.sort(np.asarray(scores, dtype=float))
    rank = min(math.ceil((len(r) + 1) * level), len(r))
    return float(r[rank - 1])


def _normal_quantiles(r: np.ndarray, levels: Sequence[int]) -> dict[int, float]:
    """Too few errors for quantiles: a normal with their root mean square (or 1.25)."""
    from statistics import NormalDist

    sd = float(np.sqrt(np.mean(r**2))) if len(r) >= 3 else 1.25
    return {lv: NormalDist().inv_cdf(1 - (1 - lv / 100) / 2) * sd for lv in levels}


def growth_exponent(per_step: Mapping[int, Sequence[float]]) -> float:
    """How a family's backtest errors grow with the forecast step: the slope b of log(mean
    |error|) against log(step), clipped to [0, 1] (0: flat, 0.5: a random walk's square root,
    1: linear), from the steps with at least 3 errors; DEFAULT_GROWTH when fewer than 3 steps
    have them. Measured, not assumed: a width linear in the step leaves the first months far
    too narrow when errors hardly grow (the first month's 80% interval covered 0-46% on the
    real families) and the last ones too wide."""
    steps = sorted(j for j, v in per_step.items() if len(v) >= 3 and np.mean(v) > 0)
    if len(steps) < 3:
        return DEFAULT_GROWTH
    x = np.log(np.array(steps, dtype=float) + 1.0)
    m = np.log([float(np.mean(per_step[j])) for j in steps])
    return float(min(max(np.polyfit(x, m, 1)[0], 0.0), 1.0))


def _normalised(errors: Mapping[str, Errors], spreads: Mapping[str, float]) -> dict[int, list]:
    """|error| / (scale x spread) per forecast step, over every series of `errors`."""
    per_step: dict[int, list[float]] = {}
    for key, errs in errors.items():
        for j, e, s in errs:
            if s > 0 and math.isfinite(e):
                per_step.setdefault(j, []).append(abs(e) / s / spreads[key])
    return per_step


def _covered_steps(per_step: Mapping[int, Sequence[float]], least: int) -> int:
    """How many steps from the first have at least `least` errors each."""
    covered = 0
    while len(per_step.get(covered, ())) >= least:
        covered += 1
    return covered


def _per_step(
    per_step: Mapping[int, Sequence[float]], covered: int, horizon: int, levels: Sequence[int]
) -> dict[int, np.ndarray]:
    """Each step's own conformal quantile, never narrower than an earlier step's; past the
    last covered step, the last one grown by the square root of the step ratio."""
    steps = np.arange(horizon, dtype=float)
    beyond = np.maximum((steps + 1) / covered, 1.0) ** BEYOND_GROWTH
    out = {}
    for lv in levels:
        q = [conformal_quantile(per_step[min(j, covered - 1)], lv / 100) for j in range(horizon)]
        out[lv] = np.maximum.accumulate(np.array(q)) * beyond
    return out


def step_quantiles(
    chosen: Mapping[str, Errors],
    every: Mapping[str, Errors],
    spreads: Mapping[str, float],
    horizon: int,
    levels: Sequence[int] = LEVELS,
) -> dict[int, np.ndarray]:
    """Conformal half-widths per level and forecast step, in units of each series' scale and
    spread (symmetric: a bias of the backtest is not carried into the future).

    - **Large families** (at least `MIN_STEP_ERRORS` errors of the chosen methods at a step):
      each step's own quantile of the chosen methods' |error| / (scale x spread).
    - **Small families**: every scored candidate's errors (the chosen method's few errors are
      optimistic after selection), each step's own quantile when every step has at least
      `MIN_INTERVAL_ERRORS` of them.
    - **Tiny families** (fewer): pooled over steps after dividing each by step^b, where b is
      how the family's errors grow with the step (`growth_exponent`); the width grows as
      step^b.

    A width per step, not one rule of growth: a width linear in the step (the rule before)
    left the first month's 80% interval covering 0-46% on the real families and the last
    months' near 100%, while their pooled coverage looked right.
    """
    own = _normalised(chosen, spreads)
    covered = _covered_steps(own, MIN_STEP_ERRORS)
    if covered:
        return _per_step(own, covered, horizon, levels)
    pooled = _normalised(every, spreads)
    covered = _covered_steps(pooled, MIN_INTERVAL_ERRORS)
    if covered and covered >= min(horizon, max(pooled) + 1):
        return _per_step(pooled, covered, horizon, levels)
    b = growth_exponent(pooled)
    growth = (np.arange(horizon, dtype=float) + 1) ** b
    r = np.array([v / (j + 1) ** b for j, vs in pooled.items() for v in vs], dtype=float)
    if len(r) >= MIN_INTERVAL_ERRORS:
        base = {lv: conformal_quantile(r, lv / 100) for lv in levels}
    else:
        base = _normal_quantiles(r, levels)
    return {lv: base[lv] * growth for lv in levels}


def forecast_many(
    series: Mapping[str, pd.Series],
    horizon: int,
    *,
    spec: CalendarSpec | None = None,
    specs: Mapping[str, CalendarSpec] | None = None,
    bounds: Mapping[str, tuple[date | None, date | None]] | None = None,
    windows: int = BACKTEST_WINDOWS,
    all_candidates: bool = False,
    candidates: Sequence[str] | None = None,
) -> dict[str, Forecast]:
    """Forecast every series (see the module docstring); intervals pooled over all of them.

    `candidates` limits the candidate methods by name (default: all of CANDIDATE_NAMES).
    """
    pool = tuple(c for c in _candidates() if candidates is None or c.name in candidates)
    default = spec or CalendarSpec()
    fits = {
        key: _fit_one(
            y,
            horizon,
            (specs or {}).get(key, default),
            (bounds or {}).get(key, (None, None)),
            windows,
            all_candidates,
            pool,
        )
        for key, y in series.items()
    }
    spreads = {key: spread(f.errors) for key, f in fits.items()}
    known = [v for v in spreads.values() if math.isfinite(v) and v > 0]
    typical = float(np.median(known)) if known else 0.5
    spreads = {k: v if math.isfinite(v) and v > 0 else typical for k, v in spreads.items()}
    half = step_quantiles(
        {key: f.errors for key, f in fits.items()},
        {key: [e for errs in f.all_errors.values() for e in errs] for key, f in fits.items()},
        spreads,
        horizon,
    )
    out = {}
    for key, f in fits.items():
        width = {lv: f.level * spreads[key] * q for lv, q in half.items()}
        lower = {lv: np.maximum(f.values - w, 0.0) for lv, w in width.items()}
        upper = {lv: f.values + w for lv, w in width.items()}
        out[key] = Forecast(
            f.months,
            f.values,
            lower,
            upper,
            f.method,
            f.backtest_wape,
            f.calendar,
            f.partial,
            f.candidates,
        )
    return out


def forecast_series(
    history: pd.Series,
    horizon: int,
    *,
    bounds: tuple[date | None, date | None] = (None, None),
    **kwargs,
) -> Forecast:
    """The forecast of one monthly series (intervals from its own backtest errors only)."""
    return forecast_many({"series": history}, horizon, bounds={"series": bounds}, **kwargs)[
        "series"
    ]


# --------------------------------------------------------------------------------------------
# Accuracy


@dataclass(frozen=True)
class Scores:
    wape: float  # sum |error| / sum |actual|; nan when every actual is zero
    mape: float  # mean |error| / |actual| over the non-zero actuals; nan when there are none
    months: int  # drug-months scored


def scores(actual: Sequence[float], predicted: Sequence[float]) -> Scores:
    """WAPE and MAPE of one set of predictions (pooled over whatever they cover)."""
    a, p = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    err = np.abs(a - p)
    denom = np.abs(a).sum()
    nonzero = a != 0
    wape = float(err.sum() / denom) if denom > 0 else math.nan
    mape = float((err[nonzero] / np.abs(a[nonzero])).mean()) if nonzero.any() else math.nan
    return Scores(wape, mape, len(a))


@dataclass(frozen=True)
class Evaluation:
    """Holdout predictions: one row per series and held-back month.

    Columns: medication_key, month, actual, forecast (the chosen method), method, naive
    (same month last year), lo80/hi80, lo90/hi90, lo95/hi95, and c_<candidate> for every
    candidate that could fit the series (NaN where it could not).
    """

    points: pd.DataFrame

    def candidate_names(self) -> list[str]:
        return [c[2:] for c in self.points.columns if c.startswith("c_")]

    def per_drug(self) -> pd.DataFrame:
        rows = []
        for key, part in self.points.groupby("medication_key", sort=True):
            f = scores(part["actual"], part["forecast"])
            n = scores(part["actual"], part["naive"])
            rows.append(
                {
                    "medication_key": key,
                    "method": part["method"].iloc[0],
                    "forecast_wape": f.wape,
                    "forecast_mape": f.mape,
                    "naive_wape": n.wape,
                    "naive_mape": n.mape,
                }
            )
        return pd.DataFrame(rows)

    def _subset(self, keys: Iterable[str] | None) -> pd.DataFrame:
        pts = self.points
        if keys is not None:
            pts = pts[pts["medication_key"].isin(set(keys))]
        return pts

    def aggregate(self, keys: Iterable[str] | None = None) -> dict[str, Scores]:
        """Pooled scores of the chosen forecast, of seasonal naive, and of every candidate
        used alone (with seasonal naive on the series it cannot fit, so that all cover the
        same points)."""
        pts = self._subset(keys)
        out = {
            "forecast": scores(pts["actual"], pts["forecast"]),
            "naive": scores(pts["actual"], pts["naive"]),
        }
        for name in self.candidate_names():
            col = pts[f"c_{name}"].fillna(pts["naive"])  # seasonal naive where it cannot fit
            if len(pts):
                out[name] = scores(pts["actual"], col)
        return out

    def coverage(
        self, keys: Iterable[str] | None = None, first: int | None = None
    ) -> dict[int, float]:
        """Share of held-back actuals inside each interval level; with `first`, of the first
        `first` months after each origin only (the months a reorder point looks at)."""
        pts = self._subset(keys)
        if first is not None and not pts.empty:
            step = pts.groupby(["origin", "medication_key"], sort=False).cumcount()
            pts = pts[step < first]
        if pts.empty:
            return {lv: math.nan for lv in LEVELS}
        return {
            lv: float(
                ((pts["actual"] >= pts[f"lo{lv}"]) & (pts["actual"] <= pts[f"hi{lv}"])).mean()
            )
            for lv in LEVELS
        }


def evaluate(
    series: Mapping[str, pd.Series],
    holdout_months: int,
    *,
    origins: int = 1,
    step: int = 3,
    **kwargs,
) -> Evaluation:
    """Forecast each series' last `holdout_months` from the months before them.

    With `origins` > 1 the evaluation is repeated from earlier origins, each `step` months
    before the last (a rolling-origin backtest of the whole procedure, selection included);
    the points of all origins are pooled, with column `origin` (0 = the latest). Series with
    less than 12 months before a holdout are left out there (no baseline exists). Keyword
    arguments go to `forecast_many`.
    """
    if holdout_months < 1:
        raise ValueError("holdout_months must be at least 1")
    frames = []
    for k in range(origins):
        cut = k * step
        shortened = {key: y.iloc[: len(y) - cut] if cut else y for key, y in series.items()}
        part = _evaluate_once(shortened, holdout_months, **kwargs)
        if not part.empty:
            part.insert(0, "origin", k)
            frames.append(part)
    if not frames:
        columns = ["origin", "medication_key", "month", "actual", "forecast", "method", "naive"]
        return Evaluation(pd.DataFrame(columns=columns))
    return Evaluation(pd.concat(frames, ignore_index=True))


def _evaluate_once(series: Mapping[str, pd.Series], holdout_months: int, **kwargs) -> pd.DataFrame:
    trains, tests = {}, {}
    for key, y in series.items():
        train, test = y.iloc[:-holdout_months], y.iloc[-holdout_months:]
        if len(test) < holdout_months or len(train) < SEASON:
            continue
        trains[key], tests[key] = train, test
    forecasts = forecast_many(trains, holdout_months, all_candidates=True, **kwargs)
    frames = []
    for key, fc in forecasts.items():
        test = tests[key]
        frame = pd.DataFrame(
            {
                "medication_key": key,
                "month": [ts.date() for ts in test.index],
                "actual": test.to_numpy(dtype=float),
                "forecast": fc.values,
                "method": fc.method,
                "naive": seasonal_naive(trains[key], holdout_months),
            }
        )
        for lv in LEVELS:
            frame[f"lo{lv}"], frame[f"hi{lv}"] = fc.lower[lv], fc.upper[lv]
        for name in CANDIDATE_NAMES:
            if name in fc.candidates:
                frame[f"c_{name}"] = fc.candidates[name]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
