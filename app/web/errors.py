"""How an exception reaches a person: the input errors of the app and the libraries become `gr.Error` (shown in
the page's pop-up, HTML-escaped), each logged as one short line at a bounded rate; `user_errors` wraps every handler
and endpoint. Also the two guards every tab shares."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from annotation.errors import AnnotationError
from app.errors import AppInputError
from app.web.guards import rejections
from app.web.state import Visitor
from generation.errors import GenerationError
from recommenders.errors import RecommendersError

log = logging.getLogger("vitrine")


INPUT_ERRORS = (AppInputError, AnnotationError, GenerationError, RecommendersError)


def shown_text(message: str) -> str:
    """`message` as text in Gradio's error pop-up, which renders HTML: `<`, `>` and `&` escaped, so that a message
    quoting what a client sent (`got '<img src=...>'`) shows it instead of loading it."""
    import html

    return html.escape(message, quote=False)


def rejected(fn_name: str, exc: Exception) -> gr.Error:
    """The `gr.Error` a person sees for bad input, logged as one line at a bounded rate (`app.web.guards.rejections`;
    no traceback: Gradio prints one for every `gr.Error` unless told not to, and a probe of bad requests would flood
    the log), the message truncated there."""
    if isinstance(exc, gr.Error) and not exc.visible:
        return exc  # nothing to show or log: an event that had nothing to do (see `nothing_to_do`)
    message = str(exc.message if isinstance(exc, gr.Error) else exc)
    rejections.note(f"{fn_name}: {message}")
    error = exc if isinstance(exc, gr.Error) else gr.Error(message)
    error.message = shown_text(message)  # Gradio's pop-up renders a message as HTML, and messages quote input
    error.print_exception = False
    return error


def nothing_to_do(why: str) -> gr.Error:
    """A `gr.Error` nobody sees: it only stops the events chained after this one (`.success`), for an event that
    had nothing to do (the user picker losing the focus with the same id in it, or an empty one)."""
    return gr.Error(why, visible=False, print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Turn the input errors of the app and the libraries into `gr.Error` (shown to the person), one log line each."""

    if _is_generator(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except (gr.Error, *INPUT_ERRORS) as exc:
                raise rejected(fn.__name__, exc) from (None if isinstance(exc, gr.Error) else exc)

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (gr.Error, *INPUT_ERRORS) as exc:
            raise rejected(fn.__name__, exc) from (None if isinstance(exc, gr.Error) else exc)

    return wrapper


def _is_generator(fn: Callable) -> bool:
    import inspect

    return inspect.isgeneratorfunction(fn)


def need_user(visitor: Visitor) -> str:
    if not visitor.user_id:
        raise gr.Error("Pick a user (or start as a new user) first.")
    return visitor.user_id
