"""The Gradio app: layout first, then the events. `build_demo(svc)` -> `gr.Blocks`; `launch(...)` serves it.

Four tabs - Discover, Create, Label, Status - over one `Services` (loaded once at start) and one `Visitor`
state per browser session. The handlers are plain functions in `app.web.handlers`; here they are bound to
`svc` and wired to components. Generation runs in the "generation" concurrency group (limit from
settings), recommendation and feedback in the "fast" group, so a slow cover never blocks a click.
"""

from __future__ import annotations

import functools
from html import escape as html_escape
import os
from typing import Any

import gradio as gr

from app.web import handlers as h
from app.web.api import register_api
from app.web.cards import CSS, labeling_guidelines, markdown_escape
from app.checks import N_VARIANTS_MAX
from app.serving.services import Services
from app.web.state import PAGE_SIZE, Visitor

__all__ = ["build_demo", "enable_queue", "launch_kwargs", "HEAD"]

# Gradio's queue rebuilds a pandas summary of its last 10,000 events (for /monitoring) after every event by
# default: at a few hundred events it costs more CPU than the request itself. Every 500 events is plenty.
ANALYTICS_CACHE_FREQUENCY = "500"


# Keyboard shortcuts of the Label tab: 1 / 2 / 0 / s / u click the matching button while it is visible.
HEAD = """
<script>
(() => {
  const keys = {"1": "vt-key-1", "2": "vt-key-2", "0": "vt-key-0", "s": "vt-key-s", "u": "vt-key-u"};
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    const id = keys[(event.key || "").toLowerCase()];
    if (!id) return;
    const button = document.getElementById(id);
    if (!button || button.offsetParent === null || button.disabled) return;
    event.preventDefault();
    button.click();
  });
})();
</script>
"""


def _cards_out(cards: list[str]) -> list[Any]:
    """Card HTML -> [slot visibility updates..., slot HTML...]."""
    return [gr.Column(visible=bool(c)) for c in cards] + list(cards)


def build_demo(svc: Services) -> gr.Blocks:
    settings = svc.settings
    fallback = [what for what, falls_back in svc.assets.uses_fallback.items() if falls_back]
    with gr.Blocks(title="Vitrine", fill_width=False) as demo:
        visitor = gr.State(Visitor())
        # remembered in the browser (localStorage), so that an annotator's name survives a reload
        remembered = gr.BrowserState({"annotator": ""}, storage_key="vitrine-annotator")

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
        with gr.Tabs():
            with gr.Tab("Discover", id="discover"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        with gr.Tabs():
                            with gr.Tab("Existing user", id="existing"):
                                user_dd = gr.Dropdown(
                                    choices=svc.catalog.user_choices(), value=None, label="User (type an id to search)",
                                    filterable=True, elem_id="vt-user",
                                )
                            with gr.Tab("New user", id="new"):
                                picks = gr.Dropdown(
                                    choices=svc.catalog.item_choices(), value=[], multiselect=True, filterable=True,
                                    label="Pick at least 3 items you like", elem_id="vt-picks",
                                )
                                start_btn = gr.Button("Start as a new user", variant="primary", elem_id="vt-start")
                        profile = gr.HTML(elem_id="vt-profile")
                        model_dd = gr.Dropdown(choices=svc.ranking.model_names, value=svc.ranking.default_model, label="Model",
                                               elem_id="vt-model")
                        compare_dd = gr.Dropdown(
                            choices=[h.NO_COMPARE] + svc.ranking.model_names, value=h.NO_COMPARE,
                            label="Compare with (one interleaved slate)", elem_id="vt-compare",
                        )
                        rec_btn = gr.Button("Recommend", variant="primary", elem_id="vt-recommend")
                    with gr.Column(scale=3):
                        slate_info = gr.Markdown("Pick a user or start as a new user.", elem_id="vt-slate-info")
                        detail = gr.HTML(elem_id="vt-detail")
                        slot_cols, slot_html, slot_buttons = [], [], []
                        for row_start in range(0, PAGE_SIZE, 4):
                            with gr.Row(equal_height=True):
                                for i in range(row_start, row_start + 4):
                                    with gr.Column(visible=False, min_width=170, elem_classes=["vt-slot"],
                                                   elem_id=f"vt-slot-{i}") as col:
                                        html = gr.HTML(elem_id=f"vt-card-{i}")
                                        with gr.Row():
                                            like = gr.Button("Like", size="sm", elem_id=f"vt-like-{i}")
                                            dislike = gr.Button("Dislike", size="sm", elem_id=f"vt-dislike-{i}")
                                            open_ = gr.Button("Open", size="sm", elem_id=f"vt-open-{i}")
                                    slot_cols.append(col)
                                    slot_html.append(html)
                                    slot_buttons.append((like, dislike, open_))
                        more_btn = gr.Button("More", elem_id="vt-more")

            with gr.Tab("Create", id="create"):
                gr.Markdown(
                    "Make covers for the **current user** (chosen on Discover): personalized and generic variants "
                    "are mixed in random order. Click the one you like best and save your pick; it is logged as a "
                    "preference over the others."
                )
                with gr.Row():
                    create_item = gr.Dropdown(choices=svc.catalog.item_choices(), value=None, filterable=True,
                                              label="Item", elem_id="vt-create-item", scale=3)
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
                with gr.Row():
                    ann_name = gr.Textbox(label="Your name", max_lines=1, elem_id="vt-ann-name", scale=2)
                    ann_pw = gr.Textbox(label="Password", type="password", max_lines=1, elem_id="vt-ann-pw",
                                        visible=settings.label_password is not None, scale=2)
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

            with gr.Tab("Status", id="status"):
                status = gr.HTML(h.status_html(svc), elem_id="vt-status")
                with gr.Row():
                    refresh_btn = gr.Button("Refresh", elem_id="vt-refresh")
                    retrain_dd = gr.Dropdown(choices=[*svc.ranking.model_names, h.PREFERENCE_MODEL],
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
        cards_outputs = [*slot_cols, *slot_html]
        private = {"api_visibility": "private"}
        gen = {"concurrency_id": "generation", "concurrency_limit": settings.generation_concurrency}
        fast = {"concurrency_id": "fast", "concurrency_limit": 16}

        def show(result):
            v, cards, info = result
            return [v, *_cards_out(cards), info]

        def do_recommend(v, model, compare, request: gr.Request):
            return show(h.recommend(svc, v, model, compare, request=request))

        def do_more(v, request: gr.Request):
            return show(h.more(svc, v, request=request))

        def do_fill(v):
            for v2, cards in h.fill_assets(svc, v):
                yield [v2, *_cards_out(cards)]

        page_outputs = [visitor, *cards_outputs, slate_info]
        fill_outputs = [visitor, *cards_outputs]

        def chain_fill(event):
            return event.then(do_fill, [visitor], fill_outputs, show_progress="hidden", **gen, **private)

        fills = []
        selected = user_dd.input(bind(h.select_user, svc), [visitor, user_dd], [visitor, profile], **fast, **private)
        ev = selected.success(do_recommend, [visitor, model_dd, compare_dd], page_outputs, **fast, **private)
        fills.append(chain_fill(ev))
        started = start_btn.click(bind(h.start_new_user, svc), [visitor, picks], [visitor, profile], **fast, **private)
        ev = started.success(do_recommend, [visitor, model_dd, compare_dd], page_outputs, **fast, **private)
        fills.append(chain_fill(ev))
        ev = rec_btn.click(do_recommend, [visitor, model_dd, compare_dd], page_outputs, **fast, **private)
        fills.append(chain_fill(ev))
        ev = more_btn.click(do_more, [visitor], page_outputs, **fast, **private)
        fills.append(chain_fill(ev))

        feedback_triggers = []
        for i, (like, dislike, open_) in enumerate(slot_buttons):
            for button, kind in ((like, "like"), (dislike, "dislike"), (open_, "open")):

                def do_feedback(v, _slot=i, _kind=kind):
                    v2, cards, det, info = h.card_feedback(svc, v, _slot, _kind)
                    return [v2, *_cards_out(cards), det, info]

                ev = button.click(do_feedback, [visitor], [visitor, *cards_outputs, detail, slate_info],
                                  **fast, **private)
                fills.append(chain_fill(ev))
                feedback_triggers.append(button.click)

        # Anything that changes the visitor's slate first stops the cover filling of the previous one (it would
        # otherwise hand back a stale state); each of those events starts a new filling when it is done.
        for trigger in (user_dd.input, start_btn.click, rec_btn.click, more_btn.click, *feedback_triggers):
            trigger(None, None, None, cancels=fills, **private)

        def do_create(v, item_id, n, request: gr.Request, progress=gr.Progress()):
            return h.create_variants(svc, v, item_id, n, progress=progress, request=request)

        create_btn.click(do_create, [visitor, create_item, create_n], [visitor, gallery, caption_md, create_info],
                         **gen, **private)

        def on_select(evt: gr.EventData):
            # gr.EventData, not gr.SelectData: SelectData cannot be built from the missing or odd event data a raw
            # call may carry, and that fails inside Gradio with no message
            data = evt._data if isinstance(evt._data, dict) else {}
            index = data.get("index")
            return index if isinstance(index, int) and not isinstance(index, bool) else None

        gallery.select(on_select, None, picked, **private)
        pick_btn.click(lambda v, i: h.pick_variant(svc, v, i), [visitor, picked], [visitor, create_info],
                       **fast, **private)

        pair_outputs = [visitor, target, side_a, side_b, label_progress]
        signed = sign_btn.click(bind(h.sign_in, svc), [visitor, ann_name, ann_pw], [visitor, sign_info],
                                **fast, **private)
        signed.success(bind(h.load_pair, svc), [visitor], pair_outputs, **fast, **private)
        signed.success(lambda v, r: {**(r if isinstance(r, dict) else {}), "annotator": v.annotator_name or ""},
                       [visitor, remembered],
                       [remembered], **private)
        demo.load(lambda r: str(r.get("annotator") or "") if isinstance(r, dict) else "", [remembered], [ann_name],
                  **private)
        for key, button in key_btns.items():
            if key == "u":
                button.click(bind(h.undo_label, svc), [visitor], pair_outputs, **fast, **private)
            else:
                button.click(lambda v, _k=key: h.label_key(svc, v, _k), [visitor], pair_outputs, **fast, **private)
        if settings.oauth_enabled:

            def oauth_sign_in(v, oauth: gr.OAuthProfile | None):
                if oauth is None:
                    return v, gr.skip()
                v.annotator_id = svc.labeling.sign_in(f"hf:{oauth.username}", reserved_ok=True)
                v.annotator_name = f"hf:{oauth.username}"
                return v, f"Signed in with Hugging Face as **{markdown_escape(oauth.username)}**."

            demo.load(oauth_sign_in, [visitor], [visitor, sign_info], **private)

        refresh_btn.click(bind(h.status_html, svc), None, status, **fast, **private)
        retrain_btn.click(bind(h.retrain, svc), [retrain_dd, admin_pw], [status_info, status],
                          concurrency_id="retrain", concurrency_limit=1, **private)
        pairs_btn.click(bind(h.make_pairs, svc), [pairs_n, admin_pw], [status_info, status], **gen, **private)
        grow_btn.click(bind(h.add_items, svc), [grow_folder, admin_pw], [status_info, status],
                       concurrency_id="retrain", concurrency_limit=1, **private)
        # a catalog that grew after this page was built: its item pickers get the new items at the next load
        demo.load(bind(h.item_pickers, svc, svc.catalog.version), None, [picks, create_item], **private)

        register_api(svc, generation_limit=settings.generation_concurrency)
    return demo


def enable_queue(demo: gr.Blocks, default_concurrency_limit: int = 8) -> gr.Blocks:
    """`demo.queue(...)` with this app's settings (an environment value set by the operator wins)."""
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", ANALYTICS_CACHE_FREQUENCY)
    return demo.queue(default_concurrency_limit=default_concurrency_limit)


def launch_kwargs(svc: Services) -> dict[str, Any]:
    """What `demo.launch` needs beyond host and port: assets served from the data dir, theme, CSS, shortcuts."""
    from starlette.middleware import Middleware

    from app.web.guards import BodyLimit, EncodableJson
    from app.web.routes import routes

    limit = svc.settings.max_body_bytes
    return {
        # Create's trial covers (shown by Gradio's gallery); cards, pairs and the API use app.web.routes instead
        "allowed_paths": [*map(str, svc.assets.public_dirs)],  # cover images only, never provenance
        # 413 for a larger body; 400 for JSON text that cannot be encoded (lone surrogates)
        "app_kwargs": {"middleware": [Middleware(BodyLimit, max_bytes=limit), Middleware(EncodableJson)],
                       "routes": routes(svc)},  # covers by blob key, items' own pictures by item id
        "max_file_size": limit,  # the app has no upload component: /gradio_api/upload gets the same cap
        "css": CSS,
        "head": HEAD,
        # system fonts: the default theme fonts come from Google Fonts, which an offline machine cannot reach
        "theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                                font=[gr.themes.Font(f) for f in ("ui-sans-serif", "system-ui", "sans-serif")],
                                font_mono=[gr.themes.Font(f) for f in ("ui-monospace", "monospace")]),
        "footer_links": ["api", "gradio"],
        "show_error": False,  # only gr.Error messages reach a person; anything else is logged, not shown
    }
