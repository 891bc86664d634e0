"""Every input of every event checked before Gradio hands it to a handler (`guard_inputs`), named endpoint or not.

Gradio's own checks answer bad input badly: a dropdown value that is not a choice gets an error message listing
every choice (thousands of ids) and a traceback in the log; a value its data model refuses, or the wrong number of
values, gets an error with no message. Here each becomes one short `Rejected` (a `gr.Error` naming the component or
the event, what was expected and what came), logged as one line at a bounded rate (`app.web.guards.rejections`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.web.guards import rejections

__all__ = ["Rejected", "reject", "unencodable", "guard_inputs"]


class Rejected(gr.Error):
    """A `gr.Error` for bad input, already logged (one line), shown to the client, printed without traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message, print_exception=False)


def reject(where: str, problem: str) -> Rejected:
    """`Rejected("<where>: <problem>")`, noted in the (bounded) rejection log; `<`, `>` and `&` escaped in the
    message (Gradio's error pop-up renders HTML, and the problem quotes what the client sent)."""
    import html

    message = f"{where}: {problem}"
    rejections.note(message)
    return Rejected(html.escape(message, quote=False))


def unencodable(value: Any, depth: int = 0) -> str | None:
    """Why `value` (anything a client sent, nested) holds text that cannot be stored or encoded, or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return "text with a NUL byte"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text with lone surrogates (e.g. \\ud800)"
        return None
    if depth > 20:
        return "values nested too deep"
    if isinstance(value, dict):
        return next((p for k, v in value.items() for p in (unencodable(k, depth + 1), unencodable(v, depth + 1)) if p),
                    None)
    if isinstance(value, (list, tuple)):
        return next((p for v in value if (p := unencodable(v, depth + 1))), None)
    return None


class _CheckedPreprocess:
    """A component's `preprocess`, with Gradio's own checks answered as one short `Rejected` naming the component
    (a bad dropdown value listed every choice, thousands, in the message and a traceback in the log) and text that
    cannot be encoded refused before any handler sees it. When an event updates a component (new choices), Gradio
    keeps a new instance of it in the session's state; `guard_inputs` gives that one its own check before the
    event's inputs are read."""

    def __init__(self, component: Any) -> None:
        self.component = component

    def __call__(self, payload: Any) -> Any:
        component = self.component
        where = str(getattr(component, "label", None) or getattr(component, "elem_id", None) or
                    type(component).__name__)
        if problem := unencodable(payload):
            raise reject(where, f"expected valid text, got {problem}")
        try:
            return type(component).preprocess(component, payload)
        except Exception as exc:  # any failure to read a client's value is that value's fault
            shown = repr(payload)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            choices = getattr(component, "choices", None)
            if choices is not None and "not in the list of choices" in str(exc):
                raise reject(where, f"expected one of its {len(choices)} choices, got {shown}") from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise reject(where, f"{first[:120]} (got {shown})") from None


def guard_inputs(demo: Any) -> None:
    """Check every input of every event of `demo`, named or not, before Gradio hands it to a handler:

    - each input component's `preprocess` (Gradio's own checks) answers bad input with one short `Rejected`
      naming the component (`_CheckedPreprocess`), and refuses text with NUL bytes or lone surrogates;
    - whatever else fails while Gradio reads an event's inputs (their number, a file reference, a data model)
      is one short `Rejected` too, instead of an error with no message and a traceback in the log.
    """
    from gradio.components import Component

    for block in demo.blocks.values():
        if isinstance(block, Component) and not getattr(block, "stateful", False):
            block.preprocess = _CheckedPreprocess(block)

    preprocess_data = demo.preprocess_data

    async def checked(block_fn: Any, inputs: Any, state: Any, explicit_call: bool = False) -> Any:
        name = getattr(block_fn, "api_name", None) or getattr(block_fn, "name", None) or "event"
        if state is not None:  # an event that updated a component left a new instance of it in the session
            for component in block_fn.inputs:
                current = state.blocks_config.blocks.get(component._id, component)
                if not getattr(current, "stateful", False) and not isinstance(
                        current.__dict__.get("preprocess"), _CheckedPreprocess):
                    current.preprocess = _CheckedPreprocess(current)
        if not isinstance(inputs, list):
            raise reject(name, f"expected a list of {len(block_fn.inputs)} input values, got {type(inputs).__name__}")
        if len(inputs) != len(block_fn.inputs):
            raise reject(name, f"expected {len(block_fn.inputs)} input values, got {len(inputs)}")
        try:
            return await preprocess_data(block_fn, inputs, state, explicit_call)
        except Rejected:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise reject(name, f"bad input: {first[:120]}") from None

    demo.preprocess_data = checked
