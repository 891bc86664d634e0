"""Labeling studies in the app: the Studies tab (an admin creates a study and gets its link) and the Label tab
opened by a study link.

    https://vitrine.example.org/?study=<key>&pid=<external participant id>

A link carries the study's key and the participant's external id (`pid`, or `PROLIFIC_PID` as Prolific names
it: a Prolific study URL can be `...?study=<key>&PROLIFIC_PID={{%PROLIFIC_PID%}}`). On page load the Label
tab reads them (`open_study`): the participant is signed in as "study:<study>:<pid>" (their token is kept in
the browser, as every annotator's), sees the study's guidelines and a progress bar, and labels the study's
pairs with the same keys until their quota is done; then they see the study's completion code. Every label
records its time on screen and the study it was given in.

Creating a study, listing studies (with their completion codes) and making pairs for a study are admin actions:
they need VITRINE_ADMIN_PASSWORD, or VITRINE_ADMIN_OPEN=1, like the Status tab's (`status_tab.check_admin`).
Handlers are plain functions over (services, visitor state, inputs), as in `app.web.label_tab`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import gradio as gr

from app.serving.labeling import StudyInfo
from app.serving.services import Services
from app.web.cards import markdown_escape
from app.web.errors import user_errors
from app.web.label_tab import load_pair, study_banner
from app.web.routes import public_root
from app.web.status_tab import check_admin
from app.web.state import Visitor

__all__ = ["CSS", "open_study", "create_study", "list_studies", "make_study_pairs",
           "study_link", "build_studies_tab", "PAIR_SOURCE_CHOICES", "QUOTA_CHOICES", "GOLD_RATE_CHOICES"]

PAIR_SOURCE_CHOICES = [
    ("any waiting pair", "any"), ("cover pairs", "cover"), ("caption pairs", "caption"), ("slate pairs", "slate"),
    ("only pairs made for this study", "own"),
]
QUOTA_CHOICES = [5, 10, 20, 30, 50, 100, 200]  # dropdowns, not gr.Number: its check crashes on a non-number
GOLD_RATE_CHOICES = [0.0, 0.05, 0.1, 0.2]
PID_PARAMS = ("pid", "PROLIFIC_PID")  # the query parameter that carries the external participant id
CSS = """
.vt-study {padding:.5rem .8rem; border-radius:8px; border:1px solid var(--border-color-primary)}
.vt-study progress {width:min(28rem, 70%); height:.9rem; vertical-align:middle}
.vt-done {padding:1rem; border-radius:8px; background:#f0fff4; border:1px solid #9ae6b4; font-size:1.1rem}
"""


def study_link(root: str | None, key: str) -> str:
    """The link participants follow (Prolific fills in their id)."""
    base = (root or "").rstrip("/")
    return f"{base}/?study={quote(key)}&PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"


@user_errors
def open_study(svc: Services, visitor: Visitor, remembered: Any, request: Any = None
               ) -> tuple[Visitor, str, str, str, str, str, str, Any]:
    """At page load: a study link (?study=KEY&pid=ID) signs the participant in and shows their first pair.
    Returns (visitor, sign-in note, target, side A, side B, progress, study banner, remembered); without a
    study in the link nothing changes."""
    params = getattr(request, "query_params", None) or {}
    key = params.get("study")
    if not key:
        return (visitor, *[gr.skip()] * 7)
    pid = next((params.get(p) for p in PID_PARAMS if params.get(p)), None)
    if not pid:
        raise gr.Error("This study link has no participant id (pid): open the link your study platform gave you.")
    study = svc.labeling.study(key)
    remembered = dict(remembered) if isinstance(remembered, dict) else {}
    tokens = dict(remembered.get("studies") or {}) if isinstance(remembered.get("studies"), dict) else {}
    slot = f"{study.key}:{pid}"
    annotator_id, new_token = svc.labeling.join_study(study, pid, tokens.get(slot))
    if new_token:
        tokens[slot] = new_token
    remembered["studies"] = tokens
    visitor.annotator_id, visitor.annotator_name, visitor.annotator_token = annotator_id, f"participant {pid}", None
    visitor.study = study
    visitor.label_ids = []
    note = f"Study **{markdown_escape(study.name)}**, participant **{markdown_escape(pid)}**."
    visitor, target, a, b, progress = load_pair.__wrapped__(svc, visitor)
    return visitor, note, target, a, b, progress, study_banner(svc, visitor), remembered


@user_errors
def create_study(svc: Services, name: str | None, guidelines: str | None, pair_source: str | None, quota: Any,
                 gold_rate: Any, password: str | None = None, request: Any = None) -> str:
    """Create a study (an admin action); returns its link and completion code as markdown."""
    check_admin(svc, password, request)
    if not (name or "").strip():
        raise gr.Error("Give the study a name.")
    study = svc.labeling.create_study(name, guidelines, pair_source or "any", quota, gold_rate)
    return _study_md(study, public_root(svc, request), created=True)


def _study_md(study: StudyInfo, root: str | None, created: bool = False) -> str:
    link = study_link(root, study.key)
    head = "Created study" if created else "Study"
    return (f"{head} **{markdown_escape(study.name)}** (key `{study.key}`): {study.quota} labels per participant, "
            f"pairs: {study.pair_source}, gold rate {study.gold_rate:g}. Link for participants: `{link}` · "
            f"completion code `{study.completion_code}`")


@user_errors
def list_studies(svc: Services, password: str | None = None, request: Any = None) -> tuple[str, Any]:
    """Every study with its link and completion code (an admin action); and the study picker's choices."""
    check_admin(svc, password, request)
    found = svc.labeling.studies()
    root = public_root(svc, request)
    text = "\n\n".join(_study_md(st, root) for st in found) or "No study yet."
    return text, gr.update(choices=[(f"{st.name} ({st.key})", st.key) for st in found])


@user_errors
def make_study_pairs(svc: Services, key: str | None, n: Any, password: str | None = None, request: Any = None) -> str:
    """Make `n` personalized-vs-generic pair sets for a study (its "own" pairs; an admin action)."""
    check_admin(svc, password, request)
    if not key:
        raise gr.Error("Pick a study (List studies first).")
    study = svc.labeling.study(key)
    from app import checks

    created = svc.labeling.make_pairs(n, seed=checks.new_seed(), study=study)
    return f"Made {created} pairs for study **{markdown_escape(study.name)}**."


def build_studies_tab(svc: Services) -> None:
    """The Studies tab's layout and events (inside `gr.Blocks`, in a `gr.Tab`)."""
    settings = svc.settings
    private = {"api_visibility": "private"}
    gr.Markdown("Run a labeling study: name it, write its guidelines, choose its pairs, how many labels each "
                "participant gives and how many of them are gold pairs (known answers, never shown as such). "
                "Participants arrive by the study's link (with their id, as Prolific passes it), see a progress "
                "bar and, at the end, the completion code. The dashboard's Studies page follows it.")
    with gr.Row():
        name = gr.Textbox(label="Study name", max_lines=1, elem_id="vt-study-name", scale=2)
        source = gr.Dropdown(choices=PAIR_SOURCE_CHOICES, value="any", label="Pairs", elem_id="vt-study-source")
        quota = gr.Dropdown(choices=QUOTA_CHOICES, value=20, label="Labels per participant", elem_id="vt-study-quota")
        gold = gr.Dropdown(choices=GOLD_RATE_CHOICES, value=0.1, label="Gold rate", elem_id="vt-study-gold")
    guidelines = gr.Textbox(label="Guidelines (shown to participants)", lines=4, elem_id="vt-study-guidelines")
    with gr.Row():
        password = gr.Textbox(label="Admin password", type="password", elem_id="vt-study-admin-password",
                              visible=settings.admin_password is not None)
        create_btn = gr.Button("Create study", variant="primary", elem_id="vt-study-create")
        list_btn = gr.Button("List studies", elem_id="vt-study-list")
    with gr.Row():
        picked = gr.Dropdown(choices=[], value=None, label="Study", elem_id="vt-study-pick", scale=2)
        n_pairs = gr.Dropdown(choices=[1, 5, 10, 20, 50, 100, 200], value=10, label="Pair sets to make",
                              elem_id="vt-study-n")
        pairs_btn = gr.Button("Make pairs for this study", elem_id="vt-study-make-pairs")
    info = gr.Markdown(elem_id="vt-study-info")

    def do_create_study(n, g, src, q, rate, pw, request: gr.Request):
        return create_study(svc, n, g, src, q, rate, pw, request=request)

    def do_list_studies(pw, request: gr.Request):
        return list_studies(svc, pw, request=request)

    def do_study_pairs(key, n, pw, request: gr.Request):
        return make_study_pairs(svc, key, n, pw, request=request)

    create_btn.click(do_create_study, [name, guidelines, source, quota, gold, password], [info], **private)
    list_btn.click(do_list_studies, [password], [info, picked], **private)
    pairs_btn.click(do_study_pairs, [picked, n_pairs, password], [info], concurrency_id="generation",
                    concurrency_limit=settings.generation_concurrency, **private)
