"""One patient's course over time: disease activity, treatment courses, SvdH totals, wearable trends and alerts.

:func:`patient_timeline` computes the frames from the patient's registry
tables (as :func:`rxpredict.store.records.patient_tables` returns them) and
flare-risk alerts (as :func:`rxpredict.store.alerts.patient_alerts` does);
:func:`timeline_charts` draws them as interactive Altair charts (tooltips,
drag to pan, scroll to zoom on the time axis). Computing and drawing are
apart, so the frames can be tested and shown as tables too.

Example
-------
>>> import polars as pl
>>> from rxpredict.registry import read_registry
>>> reg = read_registry("rxpredict/data/example_registry")
>>> timeline = patient_timeline({n: t.filter(pl.col("patient_id") == "EX001") for n, t in reg.tables.items()})
>>> timeline.scores.height, list(timeline_charts(timeline))[0]
(3, 'Disease activity and treatments')
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import altair as alt
import polars as pl

from rxpredict.clinical import ACTIVITY_THRESHOLDS, svdh_totals, visit_scores
from rxpredict.monitoring.baselines import personal_baselines, streams
from rxpredict.schemas import load_contract

#: Wearable columns averaged per week, in schema order.
WEARABLE_MEASURES = ("steps", "active_min", "sleep_min", "resting_hr_bpm", "pain_0_10", "stiffness_min")
#: Date column of each registry table that has one (treatments have start and stop).
_DATE_COLUMNS = {"visits": ("visit_date",), "treatments": ("start_date", "stop_date"), "imaging": ("exam_date",),
                 "wearables": ("date",)}

#: Width of every chart's plot area in pixels: legends and axis titles fit beside it in the app's page.
CHART_WIDTH = 560
#: Height of each wearable stream's panel in pixels.
STREAM_PANEL_HEIGHT = 90
#: Each stream's title with its unit stands above its panel, left-aligned: beside it, rotated, it would be longer
#: than the panel is high and run into the next one's.
STREAM_HEADER = alt.Header(labelOrient="top", labelAngle=0, labelAnchor="start", labelFontWeight="bold",
                           labelPadding=4)
#: Columns of the alerts a timeline marks, and the colour of each alert status.
ALERT_COLUMNS = {"date": pl.Date, "p_flare_28d": pl.Float64, "status": pl.String}
ALERT_COLOURS = {"open": "#d62728", "acknowledged": "#ff7f0e", "dismissed": "#7f7f7f"}


@dataclass(frozen=True)
class Timeline:
    """A patient's timeline as frames, each sorted by date.

    scores: visit_date, the four indices and their ``*_category`` columns.
    courses: drug, therapy_option, option_title, start_date, end_date (the
    stop date, or the last date recorded for the patient while ongoing),
    ongoing, stop_reason. svdh: one row per exam (:func:`rxpredict.clinical.svdh_totals`).
    wearables: week (its Monday), days with data, and the weekly mean of each
    of :data:`WEARABLE_MEASURES`. baselines: one row per stream and day from
    the first to the last wearable day: date, stream, value (null on a day
    without data or with the device unworn), the patient's baseline, and low
    and high, one scale below and above it within the stream's range in the
    data contract (null until there is a baseline;
    :func:`rxpredict.monitoring.baselines.personal_baselines`). alerts: date,
    p_flare_28d and status of each flare-risk alert.
    """

    patient_id: str | None
    scores: pl.DataFrame
    courses: pl.DataFrame
    svdh: pl.DataFrame
    wearables: pl.DataFrame
    baselines: pl.DataFrame
    alerts: pl.DataFrame

    @property
    def empty(self) -> bool:
        """True when there is nothing to draw: no visits, courses, exams or wearable weeks."""
        return all(f.is_empty() for f in (self.scores, self.courses, self.svdh, self.wearables))


def _tables(tables: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Every registry table, an absent one as an empty frame of its schema."""
    contract = load_contract()
    return {name: tables[name] if name in tables else schema.empty() for name, schema in contract.tables.items()}


def _patient_id(tables: Mapping[str, pl.DataFrame]) -> str | None:
    ids = {i for t in tables.values() if "patient_id" in t.columns for i in t.get_column("patient_id").unique()}
    if len(ids) > 1:
        raise ValueError(f"a timeline shows one patient; the tables hold {len(ids)}")
    return next(iter(ids), None)


def _last_date(tables: Mapping[str, pl.DataFrame]) -> dt.date | None:
    """The latest date recorded for the patient in any table (None when there is none)."""
    dates = [tables[t].get_column(c).max() for t, cols in _DATE_COLUMNS.items() for c in cols]
    return max((d for d in dates if d is not None), default=None)


def _scores(visits: pl.DataFrame) -> pl.DataFrame:
    exprs = visit_scores()[:-1]  # the indices and their categories, not the esr_floored flag
    return visits.sort("visit_date").select("visit_date", *exprs)


def _courses(treatments: pl.DataFrame, last: dt.date | None) -> pl.DataFrame:
    contract = load_contract()
    options = pl.DataFrame({"therapy_option": [o.name for o in contract.therapy_options],
                            "option_title": [o.title for o in contract.therapy_options]})
    return (
        treatments.join(contract.drug_frame.select("drug", "therapy_option", "role"), on="drug", how="left")
        .join(options, on="therapy_option", how="left")
        .select(
            "drug",
            "therapy_option",
            pl.coalesce("option_title", "role").alias("option_title"),
            "start_date",
            pl.coalesce("stop_date", pl.lit(last, dtype=pl.Date)).alias("end_date"),
            pl.col("stop_date").is_null().alias("ongoing"),
            "stop_reason",
        )
        .sort("start_date", "drug")
    )


def _weekly(wearables: pl.DataFrame) -> pl.DataFrame:
    return (
        wearables.with_columns(pl.col("date").dt.truncate("1w").alias("week"))
        .group_by("week")
        .agg(pl.len().alias("days"), pl.col(*WEARABLE_MEASURES).mean())
        .sort("week")
    )


def _band(stream: str) -> list[pl.Expr]:
    """low and high: one scale below and above the stream's baseline, within its range in the data contract
    (no band below 0 steps)."""
    field = load_contract().tables["wearables"].field(stream)
    usual, scale = pl.col(f"{stream}_baseline"), pl.col(f"{stream}_scale")
    return [(usual + side * scale).clip(field.minimum, field.maximum).alias(name)
            for side, name in ((-1, "low"), (1, "high"))]


def _baselines(wearables: pl.DataFrame) -> pl.DataFrame:
    """Each stream per day beside the patient's baseline and the band of one scale around it."""
    grid = personal_baselines(wearables)
    return pl.concat([
        grid.select(
            "date",
            pl.lit(s).alias("stream"),
            pl.col(s).cast(pl.Float64).alias("value"),
            pl.col(f"{s}_baseline").alias("baseline"),
            *_band(s),
        )
        for s in streams()
    ]).collect()


def patient_timeline(tables: Mapping[str, pl.DataFrame], alerts: pl.DataFrame | None = None) -> Timeline:
    """The timeline frames of one patient from that patient's registry tables (contract dtypes; absent = empty)
    and flare-risk alerts (at least the :data:`ALERT_COLUMNS`; None = none)."""
    t = _tables(tables)
    return Timeline(
        patient_id=_patient_id(t),
        scores=_scores(t["visits"]),
        courses=_courses(t["treatments"], _last_date(t)),
        svdh=svdh_totals(t["imaging"]),
        wearables=_weekly(t["wearables"]),
        baselines=_baselines(t["wearables"]),
        alerts=pl.DataFrame(schema=ALERT_COLUMNS) if alerts is None else alerts.select(
            pl.col(c).cast(d) for c, d in ALERT_COLUMNS.items()).sort("date"),
    )


def _long(frame: pl.DataFrame, date: str, columns: dict[str, str]) -> pl.DataFrame:
    """Columns (name -> display title) stacked into date, measure, value rows, nulls dropped, for one line each."""
    return (
        frame.select(date, *columns)
        .unpivot(index=date, variable_name="measure", value_name="value")
        .drop_nulls("value")
        .with_columns(pl.col("measure").replace_strict(columns))
    )


def _activity_panel(scores: pl.DataFrame, index: str, columns: dict[str, str]) -> alt.LayerChart:
    """Lines of one index family with dashed lines at its category thresholds (remission, low, moderate)."""
    title = " / ".join(columns.values())
    points = _long(scores, "visit_date", columns)
    lines = (
        alt.Chart(points)
        .mark_line(point=True)
        .encode(
            x=alt.X("visit_date:T", title="date"),
            y=alt.Y("value:Q", title=title),
            color=alt.Color("measure:N", title="index"),
            tooltip=[alt.Tooltip("visit_date:T", title="visit"), "measure:N", alt.Tooltip("value:Q", format=".2f")],
        )
        .properties(name=f"{index}_lines")
    )
    thresholds = pl.DataFrame({"threshold": list(ACTIVITY_THRESHOLDS[index]),
                               "upper bound of": ["remission", "low", "moderate"]})
    rules = (
        alt.Chart(thresholds)
        .mark_rule(strokeDash=[4, 4], opacity=0.5)
        .encode(y="threshold:Q", tooltip=["upper bound of:N", "threshold:Q"])
    )
    return (lines + rules).properties(width=CHART_WIDTH, height=180, title=title)


def _courses_panel(courses: pl.DataFrame) -> alt.LayerChart:
    """One bar per course from start to stop (ongoing ones paler, up to the last recorded date), a dot at each start
    so that a course started on the last recorded date still shows."""
    base = alt.Chart(courses).encode(
        x=alt.X("start_date:T", title="date"),
        y=alt.Y("drug:N", title=None, sort=alt.SortField("start_date")),
        color=alt.Color("option_title:N", title="therapy"),
        tooltip=["drug:N", alt.Tooltip("option_title:N", title="therapy"),
                 alt.Tooltip("start_date:T", title="start"), alt.Tooltip("end_date:T", title="until"),
                 "ongoing:N", "stop_reason:N"],
    )
    bars = base.mark_bar(cornerRadius=3).encode(
        x2="end_date:T", opacity=alt.condition("datum.ongoing", alt.value(0.6), alt.value(1.0))
    ).properties(name="course_bars")
    return (
        (bars + base.mark_point(filled=True, size=60))
        .properties(width=CHART_WIDTH, height=max(60, 24 * courses.get_column("drug").n_unique()),
                    title="Treatment courses")
    )


def _svdh_chart(svdh: pl.DataFrame) -> alt.Chart:
    columns = {"svdh_total": "total", "erosion_total": "erosion", "jsn_total": "joint space narrowing"}
    points = _long(svdh, "exam_date", columns).join(
        svdh.select("exam_date", "complete", "n_areas"), on="exam_date")
    return (
        alt.Chart(points)
        .mark_line(point=True)
        .encode(
            x=alt.X("exam_date:T", title="exam date"),
            y=alt.Y("value:Q", title="SvdH units"),
            color=alt.Color("measure:N", title="score"),
            tooltip=[alt.Tooltip("exam_date:T", title="exam"), "measure:N", "value:Q",
                     alt.Tooltip("n_areas:Q", title="areas scored"), alt.Tooltip("complete:N", title="all areas")],
        )
        .properties(width=CHART_WIDTH, height=220)
        .interactive(bind_y=False)
    )


def _wearable_titles() -> dict[str, str]:
    """Each wearable stream's title with its unit, in schema order."""
    wearables = load_contract().tables["wearables"]
    return {m: f"{wearables.field(m).title} [{wearables.field(m).unit}]" for m in WEARABLE_MEASURES}


def _wearables_chart(weekly: pl.DataFrame) -> alt.FacetChart:
    points = _long(weekly, "week", _wearable_titles()).join(weekly.select("week", "days"), on="week")
    return (
        alt.Chart(points)
        .mark_line(point=True)
        .encode(
            x=alt.X("week:T", title="week"),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
            tooltip=[alt.Tooltip("week:T", title="week of"), "measure:N", alt.Tooltip("value:Q", format=".1f"),
                     alt.Tooltip("days:Q", title="days with data")],
        )
        .properties(width=CHART_WIDTH, height=STREAM_PANEL_HEIGHT)
        .interactive(bind_y=False)
        .facet(row=alt.Row("measure:N", title=None, header=STREAM_HEADER))
        .resolve_scale(y="independent")
    )


def _baseline_chart(baselines: pl.DataFrame, alerts: pl.DataFrame) -> alt.FacetChart:
    """Per stream: the day's values (broken where the device was not worn or nothing was recorded), the
    personal baseline as a dashed line in a band of one scale either side, and each alert as a rule; each
    panel's axis spans its own values, not down to 0 (sleep and heart rate would be flattened)."""
    titles = _wearable_titles()
    days = baselines.with_columns(pl.col("stream").replace_strict(titles).alias("measure"), pl.lit("day").alias("kind"))
    marks = alerts.join(pl.DataFrame({"measure": list(titles.values())}), how="cross").with_columns(
        pl.lit("alert").alias("kind"))
    base = alt.Chart(pl.concat([days.drop("stream"), marks], how="diagonal")).encode(x=alt.X("date:T", title="date"))
    on_days = base.transform_filter(alt.datum.kind == "day")
    band = on_days.mark_area(opacity=0.25).encode(
        y=alt.Y("low:Q", title=None, scale=alt.Scale(zero=False)), y2="high:Q",
        tooltip=[alt.Tooltip("date:T"), alt.Tooltip("baseline:Q", title="usual", format=",.1f"),
                 alt.Tooltip("low:Q", title="usual range from", format=",.1f"),
                 alt.Tooltip("high:Q", title="to", format=",.1f")])
    usual = on_days.mark_line(strokeDash=[4, 3], opacity=0.8).encode(y="baseline:Q")
    values = on_days.mark_line(point=alt.OverlayMarkDef(size=12), invalid="break-paths-show-domains").encode(
        y="value:Q",
        tooltip=[alt.Tooltip("date:T"), "measure:N", alt.Tooltip("value:Q", format=",.1f"),
                 alt.Tooltip("baseline:Q", title="usual", format=",.1f")],
    )
    layers = [band, usual, values]
    if not alerts.is_empty():
        layers.append(base.transform_filter(alt.datum.kind == "alert").mark_rule(strokeWidth=2).encode(
            color=alt.Color("status:N", title="alert",
                            scale=alt.Scale(domain=list(ALERT_COLOURS), range=list(ALERT_COLOURS.values()))),
            tooltip=[alt.Tooltip("date:T", title="alert on"), alt.Tooltip("p_flare_28d:Q", title="risk", format=".1%"),
                     "status:N"],
        ))
    return (
        alt.layer(*layers)
        .properties(width=CHART_WIDTH, height=STREAM_PANEL_HEIGHT)
        .interactive(bind_y=False)
        .facet(row=alt.Row("measure:N", title=None, sort=list(titles.values()), header=STREAM_HEADER))
        .resolve_scale(y="independent")
    )


def timeline_charts(timeline: Timeline) -> dict[str, alt.TopLevelMixin]:
    """Interactive charts of a timeline by title, only those with data (empty when there is nothing to show).

    Disease activity (DAS28 and CDAI/SDAI, with category thresholds) above the
    treatment courses as bars on one time axis; SvdH totals per exam; the
    wearable streams day by day against the patient's baseline with the
    alerts marked, or, while no stream has a baseline yet (it needs 14
    observed days), their weekly means. Hover for values; drag or scroll to
    pan and zoom in time.
    """
    charts: dict[str, alt.TopLevelMixin] = {}
    if not (timeline.scores.is_empty() and timeline.courses.is_empty()):
        panels = []
        if not timeline.scores.is_empty():
            panels += [
                _activity_panel(timeline.scores, "das28", {"das28_esr": "DAS28-ESR", "das28_crp": "DAS28-CRP"}),
                _activity_panel(timeline.scores, "cdai", {"cdai": "CDAI", "sdai": "SDAI"}),
            ]
        if not timeline.courses.is_empty():
            panels.append(_courses_panel(timeline.courses))
        activity = alt.vconcat(*panels).resolve_scale(x="shared", color="independent")
        # One pan/zoom on the shared time axis, driven from the first layer (lines, bars) of every panel; the views
        # are named after concatenation, which numbers them.
        activity.params = [alt.TopLevelSelectionParameter(
            name="time_zoom", select=alt.IntervalSelectionConfig(type="interval", encodings=["x"]), bind="scales",
            views=[p.layer[0].name for p in activity.vconcat],
        )]
        charts["Disease activity and treatments"] = activity
    if not timeline.svdh.is_empty():
        charts["Radiographic damage (SvdH)"] = _svdh_chart(timeline.svdh)
    if timeline.baselines.get_column("baseline").is_not_null().any():
        charts["Wearables against the personal baseline"] = _baseline_chart(timeline.baselines, timeline.alerts)
    elif not timeline.wearables.is_empty():
        charts["Wearables (weekly means)"] = _wearables_chart(timeline.wearables)
    return charts
