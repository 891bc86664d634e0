"""The Gradio app: layout first, then the events. `build_demo(svc)` -> `gr.Blocks`; `app.web.launch` queues and
serves it (`enable_queue`, `launch_kwargs`).

Five tabs - Discover, Create, Label, Studies, Status - over one `Services` (loaded once at start) and one `Visitor`
state per browser session. The handlers are plain functions, one module per tab (`app.web.discover_tab`,
`create_tab`, `label_tab`, `app.web.study`, `status_tab`); here they are bound to `svc` and wired to components.
Generation runs in the "generation" concurrency group (limit from
settings), recommendation and feedback in the "fast" group, so a slow cover never blocks a click.

Nothing on the page grows with the catalog: the pickers start with a few suggestions and search as a person types
(user ids by prefix; items by title, and by meaning from a description), so the page's config stays small at a
million items. The slate is one HTML grid whose cards carry their own buttons (`app.web.cards.render_slate`); a
click on one sends {action, slot} (`CARD_JS`), and keys l / d / o / u act on the focused card (`HEAD`).
"""

from __future__ import annotations

import functools
from html import escape as html_escape
from typing import Any

import gradio as gr

from app.web import create_tab, discover_tab, label_tab, status_tab, study
from app.web.api import register_api
from app.web.cards import labeling_guidelines, markdown_escape, render_slate
from app.web.page_scripts import CARD_JS, FOCUS_CREATE_ITEM, FOCUS_PICKS, KEYS_HINT
from app.checks import N_VARIANTS_MAX
from app.serving.services import Services
from app.web.state import Visitor

__all__ = ["build_demo"]


def _twin(picker_id: str) -> gr.Textbox:
    """A picker's hidden twin: the text typed in the picker's box, copied by the page's script (`HEAD`)."""
    return gr.Textbox(visible="hidden", elem_id=f"{picker_id}-typed", label="typed", max_lines=1)


def _cards_out(cards: list[str]) -> list[Any]:
    """Card HTML -> the slate grid's HTML (one output)."""
    return [render_slate(cards)]


def build_demo(svc: Services) -> gr.Blocks:
    settings = svc.settings
    fallback = [what for what, falls_back in svc.assets.uses_fallback.items() if falls_back]
    meaning_ok = svc.catalog.meaning_search[0]
    with gr.Blocks(title="Vitrine", fill_width=False) as demo:
        visitor = gr.State(Visitor())
        # remembered in the browser (localStorage), so that an annotator's name and token survive a reload
        remembered = gr.BrowserState({"annotator": "", "token": ""}, storage_key="vitrine-annotator")

        # ---------------------------------------------------------------- layout
        gr.HTML(
            '<div class="vt-header"><h1>Vitrine</h1><span class="vt-tag">recommendations with covers and '
            "captions made for you</span></div>"
        )
        if fallback:
            gr.HTML(
                f'<div class="vt-banner" id="vt-fallback-banner"><b>Fallback generators in use</b> for '
                f"{' and '.join(fallback)}: no diffusion / language model is loaded, so covers are typographic and "
                "captions come from templates. The Status tab says how to enable the real models.</div>"
            )
        if settings.durability_warning:
            gr.HTML(f'<div class="vt-banner" id="vt-durability-banner"><b>Labels may be lost.</b> '
                    f"{html_escape(settings.durability_warning)}</div>")
        with gr.Tabs() as tabs:
            with gr.Tab("Discover", id="discover"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        with gr.Tabs():
                            with gr.Tab("Existing user", id="existing"):
                                # a few suggestions at start; typing asks for more (never the list of every user)
                                user_dd = gr.Dropdown(
                                    choices=svc.catalog.suggest_users(""), value=None, allow_custom_value=True,
                                    filterable=True, label="User id", elem_id="vt-user",
                                    info="type an id and press Enter, or pick a suggestion",
                                )
                                user_typed = _twin("vt-user")
                            with gr.Tab("New user", id="new"):
                                picks = gr.Dropdown(
                                    choices=svc.catalog.popular_items(), value=[], multiselect=True, filterable=True,
                                    label="Pick at least 3 items you like", elem_id="vt-picks",
                                    info="type a title: matches appear as you type",
                                )
                                picks_typed = _twin("vt-picks")
                                picks_meaning = gr.Textbox(
                                    label="...or describe what you like", max_lines=1, elem_id="vt-picks-meaning",
                                    placeholder="e.g. a warm wool coat for winter", visible=meaning_ok,
                                    info="Enter: the closest items by meaning appear in the list above",
                                )
                                start_btn = gr.Button("Start as a new user", variant="primary", elem_id="vt-start")
                        profile = gr.HTML(elem_id="vt-profile")
                        model_dd = gr.Dropdown(choices=svc.ranking.model_names, value=svc.ranking.default_model, label="Model",
                                               elem_id="vt-model")
                        compare_dd = gr.Dropdown(
                            choices=[discover_tab.NO_COMPARE] + svc.ranking.model_names, value=discover_tab.NO_COMPARE,
                            label="Compare with (one interleaved slate)", elem_id="vt-compare",
                        )
                        rec_btn = gr.Button("Recommend", variant="primary", elem_id="vt-recommend")
                    with gr.Column(scale=3):
                        slate_info = gr.Markdown("Pick a user or start as a new user.", elem_id="vt-slate-info")
                        gr.HTML(KEYS_HINT)
                        detail = gr.HTML(elem_id="vt-detail")
                        slate = gr.HTML(elem_id="vt-slate", js_on_load=CARD_JS)  # PAGE_SIZE cards with their buttons
                        more_btn = gr.Button("More", elem_id="vt-more")

            with gr.Tab("Create", id="create"):
                gr.Markdown(
                    "Make covers for the **current user** (chosen on Discover): personalized and generic variants "
                    "are mixed in random order. Click the one you like best and save your pick; it is logged as a "
                    "preference over the others."
                )
                with gr.Row():
                    create_item = gr.Dropdown(choices=svc.catalog.popular_items(), value=None, filterable=True,
                                              label="Item", elem_id="vt-create-item", scale=3,
                                              info="type a title: matches appear as you type")
                    create_typed = _twin("vt-create-item")
                    create_meaning = gr.Textbox(label="...or describe it", max_lines=1, elem_id="vt-create-meaning",
                                                placeholder="e.g. a warm wool coat for winter", visible=meaning_ok,
                                                scale=2, info="Enter: the closest items by meaning")
                    create_n = gr.Dropdown(choices=list(range(2, N_VARIANTS_MAX + 1)), value=4, label="Variants",
                                           scale=1)  # not a slider: its own check crashes on a non-number
                    create_btn = gr.Button("Generate", variant="primary", scale=1, elem_id="vt-generate")
                create_info = gr.Markdown(elem_id="vt-create-info")
                gallery = gr.Gallery(label="Variants", columns=4, rows=1, height="auto", object_fit="contain",
                                     allow_preview=False, elem_id="vt-gallery")
                caption_md = gr.Markdown(elem_id="vt-caption")
                picked = gr.State(None)
                pick_btn = gr.Button("Save my pick", elem_id="vt-save-pick")

            with gr.Tab("Label", id="label"):
                study_html = gr.HTML(elem_id="vt-study")  # a study link's name, guidelines and progress bar
                with gr.Row():
                    ann_name = gr.Textbox(label="Your name", max_lines=1, elem_id="vt-ann-name", scale=2)
                    ann_pw = gr.Textbox(label="Password", type="password", max_lines=1, elem_id="vt-ann-pw",
                                        visible=settings.label_password is not None, scale=2)
                    ann_token = gr.Textbox(label="Your token", type="password", max_lines=1, elem_id="vt-ann-token",
                                           scale=2, info="given at your first sign-in; empty for a new name")
                    sign_btn = gr.Button("Sign in", elem_id="vt-sign-in", scale=1)
                    if settings.oauth_enabled:
                        gr.LoginButton("Sign in with Hugging Face", scale=1)
                sign_info = gr.Markdown(elem_id="vt-sign-info")
                with gr.Accordion("Guidelines", open=True):
                    gr.Markdown(labeling_guidelines(svc.catalog.domain.ui_words()))
                label_progress = gr.Markdown(elem_id="vt-label-progress")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=240):
                        target = gr.HTML(elem_id="vt-target")
                    with gr.Column(scale=2):
                        side_a = gr.HTML(elem_id="vt-side-a")
                    with gr.Column(scale=2):
                        side_b = gr.HTML(elem_id="vt-side-b")
                with gr.Row():
                    key_btns = {
                        "1": gr.Button("1 · left is better", elem_id="vt-key-1"),
                        "0": gr.Button("0 · tie", elem_id="vt-key-0"),
                        "2": gr.Button("2 · right is better", elem_id="vt-key-2"),
                        "s": gr.Button("s · skip", elem_id="vt-key-s"),
                        "u": gr.Button("u · undo", elem_id="vt-key-u"),
                    }

            with gr.Tab("Studies", id="studies"):
                study.build_studies_tab(svc)

            with gr.Tab("Status", id="status") as status_page:
                status = gr.HTML(status_tab.status_html(svc), elem_id="vt-status")
                with gr.Row():
                    refresh_btn = gr.Button("Refresh", elem_id="vt-refresh")
                    retrain_dd = gr.Dropdown(choices=[*svc.ranking.model_names, status_tab.PREFERENCE_MODEL],
                                             value=svc.ranking.default_model, label="Retrain from the logs")
                    retrain_btn = gr.Button("Retrain", elem_id="vt-retrain")
                    # a dropdown, not gr.Number: Number's own check crashes on a non-number sent over raw HTTP
                    pairs_n = gr.Dropdown(choices=[1, 5, 10, 20, 50, 100, 200], value=5, label="Label pairs to create")
                    pairs_btn = gr.Button("Create label pairs", elem_id="vt-make-pairs")
                    admin_pw = gr.Textbox(label="Admin password", type="password", elem_id="vt-admin-password",
                                          visible=settings.admin_password is not None,
                                          info="VITRINE_ADMIN_PASSWORD: needed to retrain, create pairs or add items")
                with gr.Row(visible=svc.growth is not None and svc.growth.folder is not None):
                    grow_folder = gr.Textbox(label="Add items from a folder on the server", scale=3,
                                             placeholder="/path/to/new-items (items.csv|parquet, optional images/)",
                                             elem_id="vt-grow-folder")
                    grow_btn = gr.Button("Add items", scale=1, elem_id="vt-grow")
                status_info = gr.Markdown()

        # ---------------------------------------------------------------- events
        bind = functools.partial
        cards_outputs = [slate]
        private = {"api_visibility": "private"}
        gen = {"concurrency_id": "generation", "concurrency_limit": settings.generation_concurrency}
        fast = {"concurrency_id": "fast", "concurrency_limit": 16}

        def show(result):
            v, cards, info = result
            return [v, *_cards_out(cards), info]

        def do_recommend(v, model, compare, request: gr.Request):
            return show(discover_tab.recommend(svc, v, model, compare, request=request))

        def do_more(v, request: gr.Request):
            return show(discover_tab.more(svc, v, request=request))

        def do_fill(v):
            for v2, cards in discover_tab.fill_assets(svc, v):
                yield [v2, *_cards_out(cards)]

        page_outputs = [visitor, *cards_outputs, slate_info]
        fill_outputs = [visitor, *cards_outputs]

        def chain_fill(event):
            return event.then(do_fill, [visitor], fill_outputs, show_progress="hidden", **gen, **private)

        # searches as a person types: the picker's hidden twin gets the typed text (see HEAD) and its change event
        # (at most one running per page, then the latest text) refreshes the picker's choices
        quiet = {"show_progress": "hidden", "trigger_mode": "always_last"}

        def do_suggest_users(typed):
            return discover_tab.suggest_users(svc, typed)

        def do_search_titles(typed, chosen):
            return discover_tab.search_items(svc, typed, chosen, "title")

        def do_search_meaning(query, chosen):
            return discover_tab.search_items(svc, query, chosen, "meaning")

        user_typed.change(do_suggest_users, [user_typed], user_dd, **quiet, **fast, **private)
        for picker, typed, describe, focus in ((picks, picks_typed, picks_meaning, FOCUS_PICKS),
                                               (create_item, create_typed, create_meaning, FOCUS_CREATE_ITEM)):
            typed.change(do_search_titles, [typed, picker], picker, **quiet, **fast, **private)
            describe.submit(do_search_meaning, [describe, picker], picker, **fast, **private).success(
                None, None, None, js=focus)

        fills = []
        def do_choose_user(v, user_id, model, compare, request: gr.Request):
            v2, shown, cards, info = discover_tab.choose_user(svc, v, user_id, model, compare, request=request)
            return [v2, shown, *(_cards_out(cards) if cards is not None else [gr.skip()]), info]

        # the picker sends its value on a choice and again as it loses the focus: "once" drops the second while
        # the first runs, and a value already shown changes nothing (choose_user skips every output)
        ev = user_dd.input(do_choose_user, [visitor, user_dd, model_dd, compare_dd],
                           [visitor, profile, *cards_outputs, slate_info], trigger_mode="once", **fast, **private)
        fills.append(chain_fill(ev))
        def do_start(v, chosen, request: gr.Request):
            return discover_tab.start_new_user(svc, v, chosen, request=request)

        started = start_btn.click(do_start, [visitor, picks], [visitor, profile], **fast, **private)
        ev = started.success(do_recommend, [visitor, model_dd, compare_dd], page_outputs, **fast, **private)
        fills.append(chain_fill(ev))
        ev = rec_btn.click(do_recommend, [visitor, model_dd, compare_dd], page_outputs, **fast, **private)
        fills.append(chain_fill(ev))
        ev = more_btn.click(do_more, [visitor], page_outputs, **fast, **private)
        fills.append(chain_fill(ev))

        def do_card(v, evt: gr.EventData, request: gr.Request):
            # gr.EventData, not a typed subclass: a raw call may carry no event data, or anything
            v2, cards, det, info = discover_tab.card_action(svc, v, getattr(evt, "_data", None), request=request)
            return [v2, *_cards_out(cards), det, info]

        ev = slate.click(do_card, [visitor], [visitor, *cards_outputs, detail, slate_info], **fast, **private)
        fills.append(chain_fill(ev))

        # Anything that changes the visitor's slate first stops the cover filling of the previous one (it would
        # otherwise hand back a stale state); each of those events starts a new filling when it is done.
        for trigger in (user_dd.input, start_btn.click, rec_btn.click, more_btn.click, slate.click):
            trigger(None, None, None, cancels=fills, **private)

        def do_create(v, item_id, n, request: gr.Request, progress=gr.Progress()):
            return create_tab.create_variants(svc, v, item_id, n, progress=progress, request=request)

        create_btn.click(do_create, [visitor, create_item, create_n], [visitor, gallery, caption_md, create_info],
                         **gen, **private)

        def on_select(evt: gr.EventData):
            # gr.EventData, not gr.SelectData: SelectData cannot be built from the missing or odd event data a raw
            # call may carry, and that fails inside Gradio with no message
            data = evt._data if isinstance(evt._data, dict) else {}
            index = data.get("index")
            return index if isinstance(index, int) and not isinstance(index, bool) else None

        gallery.select(on_select, None, picked, **private)
        pick_btn.click(lambda v, i: create_tab.pick_variant(svc, v, i), [visitor, picked], [visitor, create_info],
                       **fast, **private)

        pair_outputs = [visitor, target, side_a, side_b, label_progress]
        def do_sign_in(v, name, password, token, request: gr.Request):
            return label_tab.sign_in(svc, v, name, password, token, request=request)

        def remember(v, r):
            return {**(r if isinstance(r, dict) else {}), "annotator": v.annotator_name or "",
                    "token": v.annotator_token or ""}

        def recall(r):
            r = r if isinstance(r, dict) else {}
            return str(r.get("annotator") or ""), str(r.get("token") or "")

        signed = sign_btn.click(do_sign_in, [visitor, ann_name, ann_pw, ann_token], [visitor, sign_info], **fast,
                                **private)
        signed.success(bind(label_tab.load_pair, svc), [visitor], pair_outputs, **fast, **private)
        signed.success(remember, [visitor, remembered], [remembered], **private)
        signed.success(lambda v: v.annotator_token or "", [visitor], [ann_token], **private)
        demo.load(recall, [remembered], [ann_name, ann_token], **private)
        def banner(v):
            return label_tab.study_banner(svc, v) if v.study is not None else gr.skip()

        for key, button in key_btns.items():
            if key == "u":
                ev = button.click(bind(label_tab.undo_label, svc), [visitor], pair_outputs, **fast, **private)
            else:
                ev = button.click(lambda v, _k=key: label_tab.label_key(svc, v, _k), [visitor], pair_outputs,
                                  **fast, **private)
            ev.success(banner, [visitor], [study_html], **fast, **private)

        def do_open_study(v, r, request: gr.Request):
            out = study.open_study(svc, v, r, request=request)  # a page load: a new visitor, no study before
            return [*out, gr.Tabs(selected="label") if out[0].study is not None else gr.skip()]

        # a study link (?study=KEY&pid=ID) opens the Label tab signed in as that participant
        demo.load(do_open_study, [visitor, remembered],
                  [visitor, sign_info, target, side_a, side_b, label_progress, study_html, remembered, tabs], **fast,
                  **private)
        if settings.oauth_enabled:

            def oauth_sign_in(v, oauth: gr.OAuthProfile | None):
                if oauth is None:
                    return v, gr.skip()
                v.annotator_id = svc.labeling.sign_in(f"hf:{oauth.username}", reserved_ok=True)
                v.annotator_name = f"hf:{oauth.username}"
                return v, f"Signed in with Hugging Face as **{markdown_escape(oauth.username)}**."

            demo.load(oauth_sign_in, [visitor], [visitor, sign_info], **private)

        refresh_btn.click(bind(status_tab.status_html, svc), None, status, **fast, **private)
        status_page.select(bind(status_tab.status_html, svc), None, status, **fast, **private)  # counts current when it opens
        def do_retrain(model, password, request: gr.Request):
            return status_tab.retrain(svc, model, password, request=request)

        def do_make_pairs(n, password, request: gr.Request):
            return status_tab.make_pairs(svc, n, password, request=request)

        def do_add_items(folder, password, request: gr.Request):
            return status_tab.add_items(svc, folder, password, request=request)

        retrain_btn.click(do_retrain, [retrain_dd, admin_pw], [status_info, status],
                          concurrency_id="retrain", concurrency_limit=1, **private)
        pairs_btn.click(do_make_pairs, [pairs_n, admin_pw], [status_info, status], **gen, **private)
        grow_btn.click(do_add_items, [grow_folder, admin_pw], [status_info, status],
                       concurrency_id="retrain", concurrency_limit=1, **private)

        register_api(svc, generation_limit=settings.generation_concurrency)
    return demo
