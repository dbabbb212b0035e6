"""The therapy comparison as people read it: a table of formatted figures, and a one-page HTML report for the chart.

The app's comparison page and the exported report show the same table, made
here, so what a clinician sees on screen and files in the chart agree. The
report is one self-contained HTML file (styles and the SHAP figure inline, no
script, nothing fetched), laid out to print on one A4 page.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Sequence

import altair as alt
import polars as pl

from rxpredict.compare import Comparison, OptionExplanation
from rxpredict.explain.reasons import option_title

#: Support flag -> how the table says it.
SUPPORT = {"ok": "ok", "low": "low: few comparable patients received it", "none": "none: no comparable patient"}


def percent(p: float | None) -> str:
    """A probability in whole percent ("62%"); a dash where there is none."""
    return "–" if p is None else f"{100 * p:.0f}%"


def _with_interval(row: dict, name: str) -> str:
    return f"{percent(row[name])} ({percent(row[f'{name}_low'])}–{percent(row[f'{name}_high'])})"


def _retention(days: float | None, horizon: int | None) -> str:
    if days is None:
        return "–" if horizon is None else f"over {horizon / 365.25:.0f} years"
    return f"{days / 365.25:.1f} years"


def options_table(comparison: Comparison, retention_horizon_days: int | None = None) -> pl.DataFrame:
    """One row per option, best first, every figure formatted: what the page and the report show.

    ``retention_horizon_days`` says how far retention curves reach (a median beyond it reads "over N years").
    """
    counts = comparison.flags.group_by("therapy", "kind").len()
    rows = []
    for row in comparison.options.iter_rows(named=True):
        mine = {k: n for t, k, n in counts.iter_rows() if t == row["therapy"]}
        survival = "p_rrp" in row
        rows.append({
            "option": option_title(row["therapy"]),
            "P(response)": _with_interval(row, "p_response"),
            "P(good response)": _with_interval(row, "p_good"),
            "P(remission)": _with_interval(row, "p_remission"),
            "DAS28 change": f"{row['expected_das28_change']:+.1f}",
            "rapid progression": percent(row["p_rrp"]) if survival else "–",
            "stop within 1 year": percent(row["p_stop_1y"]) if survival else "–",
            "median retention": _retention(row["median_retention_days"], retention_horizon_days) if survival else "–",
            "support": SUPPORT.get(row["support"], row["support"]),
            "unlike training data": "yes" if row["ood"] else "no",
            "safety flags": ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in sorted(mine.items())) or "none",
        })
    return pl.DataFrame(rows)


def retention_chart(comparison: Comparison) -> alt.Chart:
    """Each option's retention curve (probability of still being on the drug by years since the start), the
    legend in the table's order; a ValueError for a comparison without survival models."""
    if comparison.retention_curves is None:
        raise ValueError("this comparison has no retention curves (the bundle holds no survival models)")
    curves = comparison.retention_curves.with_columns(
        pl.col("therapy").map_elements(option_title, return_dtype=pl.String).alias("option"),
        (pl.col("time_days") / 365.25).alias("years"))
    order = [option_title(t) for t in comparison.options["therapy"]]
    return alt.Chart(curves).mark_line().encode(
        x=alt.X("years:Q", title="years since the start"),
        y=alt.Y("retention:Q", title="still on the drug", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("option:N", sort=order, title="option"))


def _table_html(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
@page { size: A4 landscape; margin: 10mm; }
body { font: 8.5pt/1.3 system-ui, sans-serif; color: #111; margin: 0 auto; max-width: 277mm; }
h1 { font-size: 13pt; margin: 0 0 3pt; } h2 { font-size: 10pt; margin: 8pt 0 2pt; }
p { margin: 2pt 0; } ul { margin: 2pt 0 4pt; padding-left: 14pt; }
table { border-collapse: collapse; width: 100%; font-size: 8pt; }
th, td { border: 1px solid #bbb; padding: 1pt 3pt; text-align: left; vertical-align: top; }
th { background: #eee; } .notice { color: #8a4b00; } .meta { color: #555; font-size: 8pt; }
img { max-width: 100%; max-height: 62mm; } .cols { display: flex; gap: 10pt; } .cols > div { flex: 1; }
"""


def comparison_html(comparison: Comparison, *, model_name: str, focus: OptionExplanation | None = None,
                    waterfall_png: bytes | None = None, retention_horizon_days: int | None = None,
                    generated_by: str | None = None, now: dt.datetime | None = None) -> str:
    """The comparison as one self-contained HTML page (print it to PDF from the browser for a PDF).

    Holds the patient's ID and date, the model's name, the notices, the table,
    the safety flags, and, for the option in ``focus``, its main reasons,
    the share of each data source and the SHAP waterfall.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    parts = [f"<h1>Therapy comparison: patient {html.escape(comparison.patient_id)} on {comparison.index_date}</h1>",
             f"<p class='meta'>Model {html.escape(model_name)} · generated {now:%Y-%m-%d %H:%M} UTC"
             + (f" by {html.escape(generated_by)}" if generated_by else "")
             + " · decision support: probabilities with 90 % intervals, not a verdict</p>"]
    parts += [f"<p class='notice'>{html.escape(n)}</p>" for n in comparison.notices()]
    parts.append(_table_html(options_table(comparison, retention_horizon_days)))
    columns = [] if not comparison.flags.height else [
        "<div><h2>Safety flags (shown, never used to hide an option)</h2>" + _items(flag_lines(comparison)) + "</div>"]
    if focus is not None:
        columns += _focus_html(focus, waterfall_png)
    parts.append(f"<div class='cols'>{''.join(columns)}</div>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>Therapy comparison {html.escape(comparison.patient_id)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(parts)}</body></html>")


def modality_lines(focus: OptionExplanation) -> list[str]:
    """Per data source, how far it moved the explained probability, in points ("imaging: not recorded")."""
    lines = []
    for row in focus.by_modality.iter_rows(named=True):
        recorded = "not recorded" if row["missing"] else f"{100 * (row['shap'] or 0):+.1f} points"
        absent = f"; what was missing {100 * row['absent_effect']:+.1f} points" if row["absent_effect"] else ""
        lines.append(f"{row['block']}: {recorded}{absent}")
    return lines


def flag_lines(comparison: Comparison) -> list[str]:
    """The safety flags, one line per point with every option it concerns ("check: Screen for latent
    tuberculosis before starting (TNF inhibitor, IL-6 inhibitor, ...)"), cautions first."""
    grouped = comparison.flags.group_by("kind", "message", maintain_order=True).agg("therapy")
    return [f"{kind}: {message} ({', '.join(option_title(t) for t in options)})"
            for kind, message, options in grouped.iter_rows()]


def _focus_html(focus: OptionExplanation, waterfall_png: bytes | None) -> list[str]:
    """Two columns: the reasons and data-source shares, and the waterfall."""
    subject = option_title(focus.therapy) + ("" if focus.versus is None else f" versus {option_title(focus.versus)}")
    text = (f"<div><h2>Why: {html.escape(subject)}</h2><b>Main reasons</b>{_items(focus.reasons)}"
            f"<b>By source of data</b>{_items(modality_lines(focus))}</div>")
    if waterfall_png is None:
        return [text]
    image = f"<img alt='SHAP waterfall' src='data:image/png;base64,{base64.b64encode(waterfall_png).decode()}'>"
    return [text, f"<div>{image}</div>"]


def _items(lines: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"
