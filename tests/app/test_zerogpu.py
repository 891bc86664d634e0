"""`app.serving.zerogpu.gpu` wraps with spaces.GPU only where the `spaces` package exists."""

from __future__ import annotations

import sys
import types

import pytest

from app.serving import zerogpu


def test_noop_without_spaces(monkeypatch):
    monkeypatch.setattr(zerogpu, "spaces_available", lambda: False)

    def f(x):
        return x + 1

    assert zerogpu.gpu(f) is f
    assert zerogpu.gpu(duration=30)(f) is f


def test_uses_spaces_gpu_when_present(monkeypatch):
    calls = []
    fake = types.ModuleType("spaces")

    def GPU(duration):  # noqa: N802 - mirrors spaces.GPU
        calls.append(duration)
        return lambda fn: (lambda *a, **k: ("on-gpu", fn(*a, **k)))

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setattr(zerogpu, "spaces_available", lambda: True)
    wrapped = zerogpu.gpu(duration=90)(lambda x: x * 2)
    assert wrapped(4) == ("on-gpu", 8)
    assert calls == [90]
    with pytest.raises(ValueError, match="duration"):
        zerogpu.gpu(duration=0)
