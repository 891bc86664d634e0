"""Caption runtimes compared on the same (item, profile) pairs: what the default caption model costs in each.

    .venv/bin/python -m bench.bench_caption_runtimes --pairs 12
    .venv/bin/python -m bench.bench_caption_runtimes --runtimes fp32,int8 --pairs 40

Runtimes (each runs the project's own `CaptionGenerator`: the same messages, candidates and checks; only the
model call differs):
- `fp32`: transformers, float32, the converted copy of the packaged GGUF (what works everywhere);
- `int8`: the same with torch's dynamic int8 quantisation of the linear layers (`quantize="int8"`);
- `onnx`: the app's default on CPU, `CaptionGenerator(runtime="onnx")`: ONNX Runtime GenAI on the int8 copy
  its builder makes once from the converted copy (`generation.ortlm`), guided decoding, candidates drawn one
  after another until one passes;
- `llama-cpp`: llama-cpp-python on the GGUF file itself (a source build; needs llama_cpp importable).
A runtime whose package is not importable is reported as skipped.

`--micro ROUNDS` measures decode speed alone, fair under a changing load: one real caption prompt, 40 new
tokens forced, one sequence, the runtimes called in turn in one process (median per runtime).

Per runtime, one JSON line: load seconds, p50/p95 seconds per caption, generated tokens per second, the share
of captions shown from the model (the rest fell back to the template), peak RSS growth is not separable in
one process, so each runtime can be run alone (`--runtimes int8`) under `/usr/bin/time -v`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def _emit(**fields) -> None:
    print(json.dumps({"bench": "caption_runtimes", **fields}), flush=True)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _llama_generator(base_cls, gguf: Path, threads: int):
    from llama_cpp import Llama

    class LlamaCaptions(base_cls):
        def _load_lm(self, resolved):
            lm, tokenizer = super()._load_lm(resolved)
            self._llama = Llama(model_path=str(gguf), n_ctx=1024, n_threads=threads, verbose=False, seed=0)
            return lm, tokenizer

        def _sample(self, messages, seed, n, greedy=None, max_new_tokens=None, opening="", **_):
            prompt = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prompt += opening
            replies, total = [], 0
            for k in range(1 if greedy else n):
                out = self._llama.create_completion(prompt, max_tokens=max_new_tokens or self.max_new_tokens,
                                                    temperature=0.0 if greedy else self.temperature, top_p=0.9,
                                                    seed=int(seed) * 16 + k, stop=["\n", "<|im_end|>"])
                total += out["usage"]["completion_tokens"]
                replies.append((opening + out["choices"][0]["text"]).lstrip().split("\n", 1)[0])
            return replies, total

    return LlamaCaptions


def micro(runtimes: list[str], rounds: int, threads: int, tokens: int = 40) -> None:
    """Decode speed alone, fair under a changing load: the same prompt (a real caption request, ~190 tokens),
    `tokens` new tokens forced, one sequence, the runtimes called in turn for `rounds` rounds in one process;
    the median seconds per call and new tokens per second of each."""
    import torch

    from generation.captions import DEFAULT_MODEL, CaptionGenerator, reply_opening
    from generation.gguf import PACKAGED_MODELS
    from generation.profile import UserProfile
    from generation.prompts import ItemInfo

    item = ItemInfo("1", "Toy Story", 1995, ["Animation", "Children's", "Comedy"])
    profile = UserProfile("u", ["Heathers"], ["Comedy"], ["playful mood"])
    base = CaptionGenerator(DEFAULT_MODEL, tempfile.mkdtemp(), device="cpu", num_threads=threads,
                            fallback_on_error=False, runtime="transformers").load()
    prompt = base._tokenizer.apply_chat_template(base.messages(item, profile), tokenize=False,
                                                 add_generation_prompt=True) + reply_opening(item, profile, 0)
    ids = base._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    calls = {}
    if "fp32" in runtimes or "int8" in runtimes:
        def hf(lm):
            def run():
                with torch.inference_mode():
                    lm.generate(**ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                pad_token_id=base._tokenizer.eos_token_id)
            return run
        if "fp32" in runtimes:
            calls["fp32"] = hf(base._lm)
        if "int8" in runtimes:
            calls["int8"] = hf(torch.ao.quantization.quantize_dynamic(
                CaptionGenerator(DEFAULT_MODEL, tempfile.mkdtemp(), device="cpu", runtime="transformers").load()._lm,
                {torch.nn.Linear},
                dtype=torch.qint8))
    if "onnx" in runtimes:
        import onnxruntime_genai as og

        from generation.gguf import default_convert_dir
        from generation.ortlm import build_onnx

        model = og.Model(str(build_onnx(base.resolved.path, default_convert_dir(), base.resolved.fingerprint)))
        token_ids = ids["input_ids"][0].tolist()

        def ort():
            params = og.GeneratorParams(model)
            params.set_search_options(max_length=len(token_ids) + tokens, min_length=len(token_ids) + tokens,
                                      do_sample=False)
            gen = og.Generator(model, params)
            gen.append_tokens(token_ids)
            while not gen.is_done():
                gen.generate_next_token()
        calls["onnx"] = ort
    if "llama-cpp" in runtimes:
        from llama_cpp import Llama

        llama = Llama(model_path=str(PACKAGED_MODELS[DEFAULT_MODEL].locate()), n_ctx=1024, n_threads=threads,
                      verbose=False)

        def cpp():
            llama.reset()  # no prompt cache between calls: each call reads the prompt, as the others do
            llama.create_completion(prompt, max_tokens=tokens, temperature=0.0, stop=[], logit_bias=None)
        calls["llama-cpp"] = cpp
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    for name, samples in times.items():
        med = statistics.median(samples)
        _emit(micro=name, prompt_tokens=int(ids["input_ids"].shape[1]), new_tokens=tokens, rounds=rounds,
              median_s=round(med, 2), new_tokens_per_s=round(tokens / med, 1),
              load_avg=[round(x, 2) for x in os.getloadavg()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_caption_runtimes", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=12, help="ml-100k (item, profile) pairs (default 12)")
    parser.add_argument("--runtimes", default="fp32,int8,onnx,llama-cpp")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--show", action="store_true", help="print every caption (stderr)")
    parser.add_argument("--data-dir", default=os.environ.get("VITRINE_DATA_DIR", ".vitrine"))
    parser.add_argument("--micro", type=int, default=0, metavar="ROUNDS",
                        help="only the decode-speed comparison: ROUNDS rounds, the runtimes in turn")
    args = parser.parse_args(argv)
    if args.micro:
        micro(args.runtimes.split(","), args.micro, args.threads)
        return 0

    import torch

    torch.set_num_threads(args.threads)
    from bench.bench_captions import movielens_pairs
    from generation.captions import DEFAULT_MODEL, CaptionGenerator
    from generation.gguf import PACKAGED_MODELS

    domain, _, pairs, profiles = movielens_pairs(Path(args.data_dir), (args.pairs + 1) // 2)
    pairs = pairs[: args.pairs]
    _emit(setup=True, pairs=len(pairs), threads=args.threads, load_avg=[round(x, 2) for x in os.getloadavg()])
    for runtime in args.runtimes.split(","):
        cls, kwargs = CaptionGenerator, {"runtime": "transformers"}
        try:
            if runtime == "int8":
                kwargs["quantize"] = "int8"
            elif runtime == "onnx":
                kwargs["runtime"] = "onnx"
            elif runtime == "llama-cpp":
                cls = _llama_generator(CaptionGenerator, PACKAGED_MODELS[DEFAULT_MODEL].locate(), args.threads)
            elif runtime != "fp32":
                raise ValueError(f"unknown runtime {runtime!r}")
        except ImportError as exc:
            _emit(runtime=runtime, skipped=str(exc))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            gen = cls(DEFAULT_MODEL, tmp, device="cpu", domain=domain, num_threads=args.threads,
                      fallback_on_error=False, **kwargs).load()
            load_s = time.perf_counter() - start
            lat, tokens, shown, reasons = [], 0, 0, Counter()
            for item, uid in pairs:
                asset = gen.generate(item, profiles[uid], seed=0)
                lat.append(asset.latency_ms / 1000)
                tokens += asset.params.get("generated_tokens") or 0
                shown += not asset.fallback
                for rejected in asset.params.get("rejected", []):
                    reasons[rejected["problem"].removeprefix("not grounded: ").split("'")[0][:40].strip()] += 1
                if args.show:
                    print(f"  [{runtime}] {item.name} / {uid}: {'MODEL' if not asset.fallback else 'template'}: "
                          f"{asset.text}", file=sys.stderr)
            _emit(runtime=runtime, load_s=round(load_s, 2), p50_s=round(statistics.median(lat), 2),
                  p95_s=round(_pct(lat, 0.95), 2), tokens_per_s=round(tokens / sum(lat), 2),
                  model_share=round(shown / len(pairs), 3), rejected=dict(reasons.most_common(8)),
                  load_avg=[round(x, 2) for x in os.getloadavg()])
            del gen
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
