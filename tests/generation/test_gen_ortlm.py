"""The caption LLM on ONNX Runtime GenAI (generation.ortlm) and CaptionGenerator's choice of runtime, on tiny
models built from configs (generation.testing)."""

from __future__ import annotations

import threading

import pytest

from generation.captions import CAPTION_REGEX, ONNX_CANDIDATES, CaptionGenerator
from generation.ortlm import OrtLM, build_onnx, onnx_path
from generation.testing import build_tiny_lm


@pytest.fixture(scope="module")
def wide_lm(tmp_path_factory):
    """A tiny LM with 16-wide attention heads: the narrowest ONNX Runtime GenAI's CPU attention runs."""
    return build_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny-lm-wide", hidden_size=64)


@pytest.fixture(scope="module")
def onnx_dir(wide_lm, tmp_path_factory):
    return build_onnx(wide_lm, tmp_path_factory.mktemp("onnx"), "fp0")


def test_the_copy_is_built_once_under_its_key(wide_lm, onnx_dir):
    assert onnx_dir == onnx_path(wide_lm, onnx_dir.parent, "fp0")
    assert (onnx_dir / "genai_config.json").is_file() and "built from" in (onnx_dir / "SOURCE").read_text()
    stamp = (onnx_dir / "model.onnx").stat().st_mtime_ns
    assert build_onnx(wide_lm, onnx_dir.parent, "fp0") == onnx_dir  # there already: not built again
    assert (onnx_dir / "model.onnx").stat().st_mtime_ns == stamp
    assert [p.name for p in onnx_dir.parent.iterdir()] == [onnx_dir.name]  # no temporary folder left behind


def test_bad_build_requests_are_refused(wide_lm, tmp_path):
    with pytest.raises(ValueError, match="^source must be"):
        build_onnx(tmp_path, tmp_path / "out", "k")
    with pytest.raises(ValueError, match="^precision must be"):
        build_onnx(wide_lm, tmp_path / "out", "k", precision="int3")
    with pytest.raises(ValueError, match="^key must be"):
        build_onnx(wide_lm, tmp_path / "out", "../escape")


def test_sampling_is_seeded_and_stops_at_the_first_accepted(onnx_dir):
    lm = OrtLM(onnx_dir, num_threads=1)
    prompt = list(range(5, 25))
    first, tokens = lm.sample(prompt, n=3, seed=7, max_new_tokens=8)
    assert len(first) == 3 and all(1 <= len(ids) <= 8 for ids in first) and tokens == sum(map(len, first))
    assert lm.sample(prompt, n=3, seed=7, max_new_tokens=8)[0] == first  # the same seed, the same replies
    assert lm.sample(prompt, n=3, seed=8, max_new_tokens=8)[0] != first
    calls = []
    taken, _ = lm.sample(prompt, n=5, seed=7, max_new_tokens=8, decode=lambda ids: str(ids),
                         accept=lambda text: calls.append(text) or len(calls) == 2)
    assert len(taken) == 2 and taken == first[:2]  # drawn in the same order; stopped at the one accepted
    greedy, _ = lm.sample(prompt, n=4, seed=1, greedy=True, max_new_tokens=6)
    assert len(greedy) == 1 and lm.sample(prompt, n=1, seed=2, greedy=True, max_new_tokens=6)[0] == greedy
    steps = []
    counted, tokens = lm.sample(prompt, n=2, seed=7, max_new_tokens=8, between=lambda: steps.append(1))
    assert counted == first[:2] and tokens - 2 <= len(steps) <= tokens  # after every decoding step
    # what `between` waits for may itself use the model (a request's own caption while the worker gives way)
    other: list = []

    def another_generation():
        if not other:
            worker = threading.Thread(target=lambda: other.append(lm.sample(prompt, n=1, seed=1, max_new_tokens=4)))
            worker.start()
            worker.join(30)
            assert other, "the other generation could not run while this one gave way"

    assert lm.sample(prompt, n=2, seed=7, max_new_tokens=8, between=another_generation)[0] == first[:2]
    assert other[0] == lm.sample(prompt, n=1, seed=1, max_new_tokens=4)  # neither disturbed the other
    with pytest.raises(ValueError, match="^prompt_ids must be"):
        lm.sample([], n=1, seed=0)


def test_the_caption_generator_runs_on_onnx_and_records_it(wide_lm, tmp_path, toy_story, scifi_fan):
    captions = CaptionGenerator(str(wide_lm), tmp_path / "assets", device="cpu", runtime="onnx",
                                convert_dir=tmp_path / "copies", num_threads=1).load()
    assert not captions.uses_fallback and captions.runtime_used == "onnx"
    assert captions.candidates == ONNX_CANDIDATES
    asset = captions.generate(toy_story, scifi_fan, seed=3)
    # random weights write noise: every candidate is refused and the labelled template is shown, with reasons
    assert asset.fallback and asset.params["runtime"] == "onnx"
    assert asset.params["candidates"] == ONNX_CANDIDATES and asset.params["fallback_reason"].startswith(
        "model output unusable")
    assert captions.key_payload("request", 3)["runtime"] == "onnx"
    again = CaptionGenerator(str(wide_lm), tmp_path / "assets", device="cpu", runtime="onnx",
                             convert_dir=tmp_path / "copies", num_threads=1).load()
    assert again.generate(toy_story, scifi_fan, seed=3).text == asset.text  # cached by key


def test_a_model_onnx_runtime_cannot_run_falls_back_to_transformers(tiny_lm_dir, tmp_path, toy_story, scifi_fan):
    # the standard tiny LM has 8-wide heads: the copy builds, its first reading fails (GroupQueryAttention)
    auto = CaptionGenerator(str(tiny_lm_dir), tmp_path / "a", device="cpu", runtime="auto",
                            convert_dir=tmp_path / "copies").load()
    assert not auto.uses_fallback and auto.runtime_used == "transformers"
    assert auto.generate(toy_story, scifi_fan, seed=0).params["runtime"] == "transformers"
    strict = CaptionGenerator(str(tiny_lm_dir), tmp_path / "b", device="cpu", runtime="onnx",
                              convert_dir=tmp_path / "copies").load()
    assert strict.uses_fallback and "ONNX Runtime caption model is unavailable" in strict.unavailable_reason
    with pytest.raises(ValueError, match="^runtime must be"):
        CaptionGenerator(None, tmp_path, runtime="llama")


def test_the_caption_pattern_allows_a_plain_clause_only():
    import re

    good = " a comedy that should win you over."
    assert re.fullmatch(CAPTION_REGEX, good)
    for bad in (" a film starring Tom Hanks.", " a 1995 classic.", " fun\nmore.", " fun.", " a *bold* pick."):
        assert not re.fullmatch(CAPTION_REGEX, bad), bad
