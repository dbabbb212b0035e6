"""Visit entry: joint counts (tick the 28 joints or type the totals), labs, globals, HAQ-DI (total or the 20 items),
treatments started or stopped and SvdH scores; DAS28, CDAI and SDAI are shown as the user types.

Every label, range and choice comes from ``rxpredict.forms`` (read from
``data_schemas/``); the scores, the validation and the save come from
``rxpredict``. A save is one transaction: all of it or nothing.
"""
from __future__ import annotations

import hashlib
import math

import streamlit as st

from rxpredict.exceptions import BundleError, RecordError, RxpredictError
from rxpredict.forms import (JOINT_COUNT_COLUMNS, drug_groups, field_spec, field_specs, haq_sections, joint_grid, joint_key,
                             live_scores, ongoing_courses, parse_svdh_csv, stop_reasons, svdh_areas, svdh_rows,
                             validate_visit_form, visit_values)
from rxpredict.forms.fields import readable
from rxpredict.imaging import installed
from rxpredict.imaging.film import KINDS
from rxpredict.imaging.film import imaging_rows as film_rows
from rxpredict.imaging.layout import part_of, ra2_dream_mapping, read_image_bytes
from rxpredict.imaging.overlay import overlay_png
from rxpredict.store import records
from rxpredict.validation.records import check_records
from ui import engine, field_input, guard, show_messages

P = "visit."  # session-state prefix of every field of this form
user = guard("visit_entry")
st.title("Visit entry")

if notice := st.session_state.pop("visit_saved", None):
    st.success(notice)

query = st.text_input("Search patients by ID", key="visit_query")
ids = records.search_patients(engine(), query or "").get_column("patient_id").to_list()
patient_id = st.selectbox("Patient", ids, index=None, placeholder="choose a patient", key="visit_patient")
if not patient_id:
    st.info("Choose the patient this visit belongs to.")
    st.stop()
patient = records.get_patient(engine(), patient_id)
stored = records.patient_tables(engine(), patient_id)

joints_by_tick = st.radio("Joint counts", ["tick the joints", "type the totals"], horizontal=True,
                          key="visit_joint_mode") == "tick the joints"
haq_by_items = st.radio("HAQ-DI", ["type the total", "answer the 20 items"], horizontal=True,
                        key="visit_haq_mode") == "answer the 20 items"

# The form's state as rxpredict.forms reads it: only the parts of the form now shown.
tick_keys = {joint_key(kind, j.name) for kind in JOINT_COUNT_COLUMNS for row in joint_grid() for j in row if j}
item_keys = {f.name for s in haq_sections() for f in (*s.items, s.aid)}
hidden = (set(JOINT_COUNT_COLUMNS.values()) if joints_by_tick else tick_keys) | (
    {"haq_di"} if haq_by_items else item_keys)
form = {k[len(P):]: v for k, v in st.session_state.items() if k.startswith(P) and k[len(P):] not in hidden}
form["patient_id"] = patient_id
attempted = st.session_state.get("visit_attempted", False)
messages = {k: v for k, v in validate_visit_form(form, patient=patient).items()
            if attempted or form.get(k) is not None}
specs = {s.name: s for s in field_specs("visits")}


def field(name: str) -> None:
    field_input(specs[name], key=P + name)
    show_messages(messages.get(name, ()))


field("visit_date")

st.subheader("28 joints")
if joints_by_tick:
    for kind, column in JOINT_COUNT_COLUMNS.items():
        st.markdown(f"**{readable(kind).capitalize()}** (patient's right on the left)")
        for row in joint_grid():
            for cell, joint in zip(st.columns(len(row), gap="small"), row):
                if joint is not None:
                    with cell:
                        key = P + joint_key(kind, joint.name)
                        st.session_state.setdefault(key, False)
                        # the grid's place gives the side, so the label is the joint alone
                        st.checkbox(joint.title.split(" ", 1)[1].split(" (")[0], key=key)
        show_messages(messages.get(column, ()))
else:
    cols = st.columns(2)
    for col, column in zip(cols, JOINT_COUNT_COLUMNS.values()):
        with col:
            field(column)

st.subheader("Labs and global assessments")
others = [n for n in specs if n not in {"patient_id", "visit_date", "haq_di", *JOINT_COUNT_COLUMNS.values()}]
for start in range(0, len(others), 3):
    for col, name in zip(st.columns(3), others[start:start + 3]):
        with col:
            field(name)

st.subheader("HAQ-DI")
if haq_by_items:
    for section in haq_sections():
        with st.expander(section.title):
            for item in (*section.items, section.aid):
                field_input(item, key=P + item.name)
                show_messages(messages.get(item.name, ()))
else:
    field("haq_di")
show_messages(messages.get("", ()))

scores = live_scores(form)
st.subheader("Scores as entered")
for col, (label, score) in zip(st.columns(4), [("DAS28-CRP", "das28_crp"), ("DAS28-ESR", "das28_esr"),
                                                ("CDAI", "cdai"), ("SDAI", "sdai")]):
    value = scores.get(score)
    col.metric(label, "-" if value is None else f"{value:.2f}",
               help=None if value is None else f"activity: {scores.get(score + '_category')}")
    if value is not None:
        col.caption(f"{scores.get(score + '_category')} activity")

st.subheader("Treatments")
drug = field_spec("treatments", "drug")
started = st.multiselect("Drugs started at this visit", [d for g in drug_groups().values() for d in g],
                         key="visit_started", format_func=drug.format)
stopped = []
for i, course in enumerate(ongoing_courses(stored["treatments"])):
    left, right = st.columns([2, 1])
    if left.checkbox(f"Stop {readable(course['drug'])} (since {course['start_date']})", key=f"visit_stop_{i}"):
        reason = right.selectbox("Reason", stop_reasons(), index=None, key=f"visit_stop_reason_{i}",
                                 format_func=readable)
        stopped.append({**course, "stop_reason": reason})

st.subheader("Radiograph (Sharp/van der Heijde)")
FILM_TYPES = ["jpg", "jpeg", "png", "dcm"]
FILM_PARTS = {p.suffix: f"{p.side} {p.region}" for p in ra2_dream_mapping().parts}


def scored_film(scorer, name: str, data: bytes, suffix: str) -> dict:
    """{"id", "film": FilmScore, "png": {kind: overlay}} or {"id", "error": message}, once per file content and part.

    Only scores and overlays are kept in the session, not the films' pixels."""
    key = (hashlib.sha256(data).hexdigest(), name, suffix)
    cache = st.session_state.setdefault("visit_film_scores", {})
    if key not in cache:
        try:
            image = read_image_bytes(data, name)
            with st.spinner(f"Scoring {name}"):
                film = scorer.score_film(image, suffix)
            cache[key] = {"id": key, "film": film, "png": {kind: overlay_png(image, film, kind) for kind in KINDS}}
        except RxpredictError as e:
            cache[key] = {"id": key, "error": str(e)}
    return cache[key]


def whole(value):
    """A grid cell as a score: empty (None or NaN) is None, a whole float an int, anything else as typed."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if isinstance(value, float) and value.is_integer() else value


def film_grid(film, film_id: tuple) -> dict[str, dict]:
    """The model's erosion and JSN per joint area of ``film``, for the reader to confirm or correct.

    A keyed grid keeps its edits when its values change, so a new film of the same part starts a fresh grid."""
    key = f"visit_film_grid_{film.suffix}"
    shown = st.session_state.setdefault("visit_film_shown", {})
    if shown.get(film.suffix, film_id) != film_id:
        st.session_state.pop(key, None)
    shown[film.suffix] = film_id
    areas = {a.joint: a for a in svdh_areas()}
    on_film = [areas[j.joint] for j in film.joints]
    maxima = {kind: max((getattr(a, kind).max for a in on_film if getattr(a, kind)), default=None) for kind in KINDS}
    edited = st.data_editor(
        [{"joint": j.joint, "area": areas[j.joint].title, "erosion": j.erosion, "jsn": j.jsn} for j in film.joints],
        key=key, hide_index=True, disabled=["joint", "area"],
        column_config={
            "joint": None,
            **{kind: st.column_config.NumberColumn(
                "JSN" if kind == "jsn" else kind, min_value=0, max_value=maxima[kind], step=1,
                help=f"0..{maxima[kind]}; empty where the area is not scored for {kind}") for kind in KINDS},
        },
    )
    return {r["joint"]: {kind: whole(r[kind]) for kind in KINDS} for r in edited}


def film_tab(visit_date) -> tuple[list[dict] | None, list[str]]:
    """The films uploaded, scored and checked: their imaging rows (None without films) and what blocks a save."""
    how_to = (f"To install one, run `rxpredict imaging train --data DIR --out MODEL_DIR` and set "
              f"`{installed.IMAGING_MODEL_ENV}` to MODEL_DIR (or train into `{installed.imaging_model_dir()}`); "
              "`make run` installs the demo scorer. Scores can still be typed or uploaded in the other tabs.")
    try:
        scorer = installed.installed_scorer()
    except BundleError as e:
        st.error(f"The radiograph scorer cannot be used: {e}. {how_to}")
        return None, []
    if scorer is None:
        st.info(f"There is no radiograph scorer installed, so films cannot be scored here. {how_to}")
        return None, []
    uploads = st.file_uploader("Hand and foot films (a name ending -LH, -RH, -LF or -RF says which)",
                               type=FILM_TYPES, accept_multiple_files=True, key="visit_films") or []
    if not uploads:
        return None, []
    parts = {}
    for i, upload in enumerate(uploads):
        parts[i] = part_of(upload.name) or st.selectbox(
            f"Which hand or foot is {upload.name}?", list(FILM_PARTS), index=None, key=f"visit_film_part_{i}",
            format_func=lambda s: f"{s} ({FILM_PARTS[s]})", placeholder="choose the part")
    if any(part is None for part in parts.values()):
        st.info("Choose the hand or foot of each film; nothing is scored until every film has one.")
        return None, ["a film without its part"]
    by_part = {}
    for i, part in parts.items():
        by_part.setdefault(part, []).append(uploads[i].name)
    if twice := {part: names for part, names in by_part.items() if len(names) > 1}:
        for part, names in twice.items():
            st.error(f"Two films of the {FILM_PARTS[part]} ({part}): {', '.join(names)}. Remove all but one.")
        return None, ["two films of one part"]
    blocking, films, corrections, shown = [], [], {}, set()
    titles = {a.joint: a.title for a in svdh_areas()}
    for i, upload in enumerate(uploads):
        suffix = parts[i]
        scored = scored_film(scorer, upload.name, upload.getvalue(), suffix)
        shown.add(scored["id"])
        st.markdown(f"**{upload.name}**: {FILM_PARTS[suffix]}")
        if "error" in scored:
            st.error(f"Nothing from this film is used: {scored['error']}")
            blocking.append(scored["error"])
            continue
        film = scored["film"]
        picture, grid = st.columns([2, 3])
        with picture:
            kind = st.radio("Colour by", KINDS, horizontal=True, key=f"visit_film_kind_{suffix}",
                            format_func=lambda k: "JSN" if k == "jsn" else k)
            st.image(scored["png"][kind], caption=f"The model's {'JSN' if kind == 'jsn' else kind} scores: "
                                                  "green 0, amber, red the area's maximum; grey not scored")
            if unsure := film.unsure():
                st.warning("The scorer was unsure where these areas are (ringed, marked ?): "
                           f"{', '.join(titles[j] for j in unsure)}. Check them on the film before confirming.")
        with grid:
            corrections.update(film_grid(film, scored["id"]))
        films.append(film)
        rows = film_rows([film], patient_id=patient_id, exam_date=visit_date, corrections=corrections)
        for col, kind in zip(st.columns(2), KINDS):
            total = sum(r[kind] for r in rows if isinstance(r[kind], (int, float)))
            col.metric(f"{suffix} {'JSN' if kind == 'jsn' else kind} total", total,
                       help=f"The model scored {film.total(kind)}; corrected cells count as corrected.")
    st.session_state["visit_film_scores"] = {  # forget films no longer uploaded
        k: v for k, v in st.session_state["visit_film_scores"].items() if k in shown}
    rows = film_rows(films, patient_id=patient_id, exam_date=visit_date, corrections=corrections)
    for p in check_records({"imaging": rows}):
        if p.rule != "foreign_key" and p.column not in ("patient_id", "exam_date"):  # the visit form checks those
            row = rows[p.row - 1] if p.row else {}
            st.error(f"{titles.get(row.get('joint'), 'films')} {p.column}: {p.message}")
            blocking.append(str(p))
    return rows, blocking


imaging, imaging_problems = [], []
if st.checkbox("Scored radiographs at this visit", key="visit_has_imaging"):
    by_area, by_file, by_films = st.tabs(["Scores per joint area", "Upload a CSV (joint, erosion, jsn)",
                                          "Score radiographs"])
    with by_area:
        areas = svdh_areas()
        edited = st.data_editor(
            [{"joint": a.joint, "area": a.title, "erosion": None, "jsn": None} for a in areas],
            key="visit_svdh_grid", hide_index=True, disabled=["joint", "area"],
            column_config={
                "joint": None,
                "erosion": st.column_config.NumberColumn("erosion", min_value=0, step=1),
                "jsn": st.column_config.NumberColumn("JSN", min_value=0, step=1),
            },
        )
        typed = {r["joint"]: {"erosion": r["erosion"], "jsn": r["jsn"]} for r in edited}
    with by_file:
        upload = st.file_uploader("SvdH scores", type=["csv"], key="visit_svdh_file")
    with by_films:
        from_films, film_problems = film_tab(form.get("visit_date"))
    if from_films is not None and upload is not None:
        st.error("Scores come either from the CSV file or from the films: remove one of the two uploads.")
        film_problems.append("a CSV file and films")
    if from_films is not None:
        imaging = from_films
    elif upload is not None:
        imaging, imaging_problems = parse_svdh_csv(upload.getvalue(), patient_id=patient_id,
                                                   exam_date=form.get("visit_date"))
    else:
        imaging = svdh_rows(typed, patient_id=patient_id, exam_date=form.get("visit_date"))
    for p in imaging_problems:
        (st.error if p.severity == "error" else st.warning)(str(p))
    imaging_problems = [p for p in imaging_problems if p.severity == "error"] + film_problems

if st.button("Save visit", type="primary", key="visit_save"):
    st.session_state["visit_attempted"] = True
    if not validate_visit_form(form, patient=patient) and not imaging_problems:
        date = form.get("visit_date")
        entry = records.VisitEntry(
            visit={**visit_values(form), "patient_id": patient_id},
            started=[{"drug": d, "start_date": date} for d in started],
            stopped=[{**c, "stop_date": date} for c in stopped],
            imaging=imaging,
        )
        try:
            records.save_visit(engine(), entry, user=user.name)
        except RecordError as e:
            st.session_state["visit_problems"] = [str(p) for p in e.problems]
        else:
            for key in [k for k in st.session_state if k.startswith(("visit.", "visit_stop", "visit_started",
                                                                      "visit_svdh", "visit_has", "visit_att",
                                                                      "visit_film"))]:
                del st.session_state[key]
            st.session_state["visit_saved"] = f"Saved the visit of {patient_id} on {date}."
    st.rerun()
if problems := st.session_state.pop("visit_problems", None):
    st.error("Nothing was saved:\n\n" + "\n".join(f"- {p}" for p in problems))
elif attempted and messages:
    st.error("Nothing was saved: correct the fields marked above.")
