"""Personalized covers: a diffusers text-to-image pipeline, framed as a poster, cached by content.

    covers = CoverGenerator("stabilityai/sd-turbo", asset_dir=data_dir / "assets")   # or a local dir
    covers.load()                        # once, at start: resolves the model offline-first, never hangs
    assets = covers.generate(item, profile, n=4, seed=0, alpha=0.5, callback=progress)   # 4 candidates
    generic = covers.generate(item, None, n=1)                                          # the A/B arm

`generate` reads top to bottom: check inputs -> build the prompt -> for each candidate seed: look the key
up in the store (a hit costs no model call) -> denoise with a seeded CPU generator -> compose the poster
-> file it (JPEG by default, `image_format="png"` for lossless) with its provenance.
When the model cannot be had (or `model=None`), every cover is the
typographic fallback, marked `generator="fallback"`, `fallback=True`, with the reason in `params`.

The item's own picture (`ItemInfo.image`, from a bring-your-own catalogue) keeps a cover faithful to the
item, in the spirit of PMG's conditioning: with `init_strength` set, the model starts from that picture
(image-to-image through diffusers' `AutoPipelineForImage2Image`, sharing the loaded components) and
`init_strength` in (0, 1] says how far it may move away from it (1: ignore it). Without a model, the
fallback frames the item's own picture (renderer "item-image") rather than drawing an abstract one.
The prompt's words follow the catalogue's domain (`domain=`; the film domain by default).
The instance holds the loaded pipeline and a lock (schedulers keep per-call state); no global state,
so the app may wrap `generate` with `spaces.GPU`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from generation.assets import IMAGE_FORMATS, Asset, AssetStore, StagedAssetStore, asset_key
from generation.compose import COMPOSE_VERSION, FALLBACK_VERSION, compose_poster, render_fallback_cover
from generation.domain import FILM, Domain
from generation.errors import invalid
from generation.loading import LoadsOnce, ResolvedModel, configure_cpu_threads
from generation.profile import UserProfile
from generation.prompts import ItemInfo, Prompt, build_prompt

log = logging.getLogger(__name__)

DEFAULT_MODEL = "stabilityai/sd-turbo"
DEFAULT_STEPS = 2  # sd-turbo: 1-4 steps, no classifier-free guidance
DEFAULT_SIZE = 512  # sd-turbo's training resolution; the poster is 512 x 768
MAX_CANDIDATES = 16
ITEM_IMAGE_RENDERER = "item-image-v1"  # the fallback that frames the item's own picture

ProgressCallback = Callable[[int, int], Any]


def _size(size: object) -> tuple[int, int]:
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (
        not isinstance(size, tuple)
        or len(size) != 2
        or not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 32 and s % 8 == 0 for s in size)
    ):
        raise invalid("size", "an int or (width, height), multiples of 8 and >= 32", size)
    return int(size[0]), int(size[1])


class CoverGenerator(LoadsOnce):
    """Covers for (item, user) pairs; see the module docstring."""

    purpose = "cover model"
    required_file = "model_index.json"  # a diffusers pipeline directory
    fallback_label = "typographic fallback"

    def __init__(
        self,
        model: str | None,
        asset_dir: Path | str,
        device: str = "auto",
        allow_network: bool = False,
        steps: int = DEFAULT_STEPS,
        size: int | tuple[int, int] = DEFAULT_SIZE,
        guidance_scale: float = 0.0,
        dtype: str | None = None,
        num_threads: int | None = None,
        cache_dir: Path | str | None = None,
        fallback_on_error: bool = True,
        image_format: str = "jpeg",
        domain: Domain = FILM,
        init_strength: float | None = None,
    ) -> None:
        if isinstance(steps, bool) or not isinstance(steps, Integral) or not 1 <= steps <= 200:
            raise invalid("steps", "an int between 1 and 200", steps)
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, Real) or guidance_scale < 0:
            raise invalid("guidance_scale", "a number >= 0", guidance_scale)
        if image_format not in IMAGE_FORMATS:
            raise invalid("image_format", f"one of {tuple(IMAGE_FORMATS)}", image_format)
        if init_strength is not None:
            if isinstance(init_strength, bool) or not isinstance(init_strength, Real) or not 0 < init_strength <= 1:
                raise invalid("init_strength", "None (text-to-image) or a number in (0, 1]", init_strength)
            if int(int(steps) * float(init_strength)) < 1:
                raise invalid("init_strength", f"a value with steps * init_strength >= 1 (steps={steps}: at least "
                              f"{1 / int(steps):.3g}), so that image-to-image runs a denoising step", init_strength)
        self._init_loading(model, asset_dir, device, dtype, allow_network, num_threads, cache_dir, fallback_on_error,
                           domain)
        self.init_strength = None if init_strength is None else float(init_strength)
        self._img2img: Any = None
        self.image_format = image_format
        self.steps = int(steps)
        self.width, self.height = _size(size)
        self.guidance_scale = float(guidance_scale)
        self._pipe: Any = None

    # -- loading -------------------------------------------------------------------------------------
    @property
    def uses_fallback(self) -> bool:
        """True when covers come from the typographic renderer (after `load`)."""
        return self._pipe is None

    @property
    def generator_id(self) -> str:
        return "fallback" if self.uses_fallback else str(self.model)

    def _load_resolved(self, resolved: ResolvedModel) -> None:
        self._pipe = self._load_pipeline(resolved)

    def _load_pipeline(self, resolved: ResolvedModel) -> Any:
        from diffusers import AutoPipelineForText2Image

        configure_cpu_threads(self.device, self.num_threads)
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(
                str(resolved.path), dtype=self.dtype, local_files_only=True
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise self._failed_to_load(
                resolved, exc, "check that the directory holds a complete diffusers text-to-image pipeline (save_pretrained)"
            ) from exc
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    # -- generation ----------------------------------------------------------------------------------
    def check_inputs(
        self, item: object, profile: object, n: object, seed: object, alpha: object, callback: object
    ) -> None:
        if not isinstance(item, ItemInfo):
            raise invalid("item", "a generation.prompts.ItemInfo", item)
        if profile is not None and not isinstance(profile, UserProfile):
            raise invalid("profile", "a generation.profile.UserProfile or None", profile)
        if isinstance(n, bool) or not isinstance(n, Integral) or not 1 <= n <= MAX_CANDIDATES:
            raise invalid("n", f"an int between 1 and {MAX_CANDIDATES}", n)
        if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2**63 - MAX_CANDIDATES:
            raise invalid("seed", "an int >= 0 (below 2**63 - 16)", seed)
        if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0.0 <= float(alpha) <= 1.0:
            raise invalid("alpha", "a number between 0 and 1", alpha)
        if callback is not None and not callable(callback):
            raise invalid("callback", "None or a callable(step, total)", callback)

    def _init_image(self, item: ItemInfo) -> str | None:
        """The item's picture when it feeds this cover: always for the fallback, with `init_strength` for a model."""
        if item.image is None or (not self.uses_fallback and self.init_strength is None):
            return None
        return item.image

    @staticmethod
    def _file_digest(path: str) -> str:
        import hashlib

        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        except OSError as exc:
            raise invalid("item.image", "a readable image file", path) from exc

    def key_payload(self, item: ItemInfo, prompt: Prompt, seed: int) -> dict[str, Any]:
        """Everything that determines a cover's pixels; its sha256 is the cover's key. The typographic fallback
        does not read the prompt, so its key leaves it out: one file per (item, seed), shared by every user."""
        common = {
            "seed": seed,
            "title": item.title,
            "year": item.year,
            "compose": COMPOSE_VERSION,
            "width": self.width,
            "height": self.height,
            "image_format": self.image_format,
        }
        init = self._init_image(item)
        if init is not None:
            common["init_image"] = self._file_digest(init)
        if self.uses_fallback:
            if init is not None:
                return {**common, "generator": "fallback", "renderer": ITEM_IMAGE_RENDERER}
            return {**common, "generator": "fallback", "renderer": FALLBACK_VERSION, "genres": item.genres}
        assert self.resolved is not None
        if init is not None:
            common["init_strength"] = self.init_strength
        return {
            **common,
            "prompt": prompt.text,
            "generator": self.resolved.model,
            "fingerprint": self.resolved.fingerprint,
            "negative_prompt": self._negative(prompt),
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "device": self.device.split(":")[0],
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def _negative(self, prompt: Prompt) -> str:
        # diffusers ignores the negative prompt without classifier-free guidance: record only what is used
        return prompt.negative if self.guidance_scale > 1.0 else ""

    def generate(
        self,
        item: ItemInfo,
        profile: UserProfile | None = None,
        n: int = 1,
        seed: int = 0,
        alpha: float = 0.5,
        callback: ProgressCallback | None = None,
        store: "AssetStore | StagedAssetStore | None" = None,
    ) -> list[Asset]:
        """`n` cover candidates (seeds `seed` .. `seed + n - 1`) for `item`, personalized for `profile`.

        `callback(step, total)` is called after every denoising step, counted over all candidates
        (total = n * steps); a cached or fallback candidate advances it by `steps` at once. `store`: where to look
        the covers up and file new ones (default: this generator's store; a `StagedAssetStore` makes them on trial).
        """
        # 1. check inputs, load once
        self.check_inputs(item, profile, n, seed, alpha, callback)
        if store is not None and not isinstance(store, (AssetStore, StagedAssetStore)):
            raise invalid("store", "None, a generation.assets.AssetStore or a StagedAssetStore", store)
        self.load()
        # 2. the prompt: the item's content mixed with the user's preferences
        prompt = build_prompt(item, profile, float(alpha), self.domain)
        init = self._init_image(item)
        user_id = profile.user_id if profile is not None else None
        store = self.store if store is None else store
        total = int(n) * self.steps
        assets = []
        for i in range(int(n)):
            candidate_seed = int(seed) + i
            done = i * self.steps
            # 3. the store first: a hit costs no model call
            key = asset_key("cover", self.key_payload(item, prompt, candidate_seed))
            cached = store.get("cover", key, user_id)
            if cached is not None:
                # the file's provenance, this request's prompt (for a model cover the prompt is in the key anyway)
                cached.personalized = prompt.personalized
                cached.prompt, cached.params = prompt.text, self._params(prompt, init)
                assets.append(cached)
                if callback is not None:
                    callback(done + self.steps, total)
                continue
            # 4. denoise (or render the fallback), 5. compose, 6. file with provenance
            start = time.perf_counter()
            if self.uses_fallback:
                if init is not None:
                    poster = compose_poster(_open_rgb(init), item.title, item.year, width=self.width)
                else:
                    poster = render_fallback_cover(item.title, item.year, item.genres, candidate_seed, self.width)
                if callback is not None:
                    callback(done + self.steps, total)
            else:
                art = self._denoise(prompt, candidate_seed, callback, done, total, init)
                poster = compose_poster(art, item.title, item.year)
            asset = Asset(
                kind="cover",
                item_id=item.item_id,
                user_id=user_id,
                generator=self.generator_id,
                fallback=self.uses_fallback,
                prompt=prompt.text,
                negative_prompt="" if self.uses_fallback else self._negative(prompt),
                seed=candidate_seed,
                params=self._params(prompt, init),
                content_hash=key,
                personalized=prompt.personalized,
            )
            asset.latency_ms = (time.perf_counter() - start) * 1000.0
            assets.append(store.put(asset, poster))
        return assets

    def _params(self, prompt: Prompt, init: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "alpha": prompt.alpha,
            "keywords": list(prompt.keywords),
            "width": self.width,
            "height": self.height,
            "poster": COMPOSE_VERSION,
            "image_format": self.image_format,
        }
        if init is not None:
            params["init_image"] = init
        if self.uses_fallback:
            params.update(renderer=ITEM_IMAGE_RENDERER if init is not None else FALLBACK_VERSION, prompt_used=False,
                          fallback_reason=self.unavailable_reason)
        else:
            if init is not None:
                params.update(pipeline="image-to-image", init_strength=self.init_strength)
            assert self.resolved is not None
            params.update(
                steps=self.steps,
                guidance_scale=self.guidance_scale,
                device=self.device,
                dtype=str(self.dtype).removeprefix("torch."),
                model_source=self.resolved.source,
                model_fingerprint=self.resolved.fingerprint,
            )
        return params

    def _image_to_image(self) -> Any:
        """The image-to-image pipeline over the loaded components (built once; no weights are copied)."""
        from diffusers import AutoPipelineForImage2Image

        if self._img2img is None:
            self._img2img = AutoPipelineForImage2Image.from_pipe(self._pipe)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def _denoise(
        self, prompt: Prompt, seed: int, callback: ProgressCallback | None, done: int, total: int,
        init: str | None = None,
    ) -> Any:
        """One image from the pipeline: a seeded CPU generator makes it reproducible on any device. With `init`
        (the item's picture) image-to-image: `init_strength` of the steps are run, starting from that picture."""
        import torch

        kwargs: dict[str, Any] = {}
        if callback is not None:

            def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
                callback(done + step + 1, total)
                return tensors

            kwargs["callback_on_step_end"] = on_step_end
        negative = self._negative(prompt)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        with self._lock, torch.inference_mode():
            if init is None:
                out = self._pipe(
                    prompt=prompt.text,
                    negative_prompt=negative or None,
                    num_inference_steps=self.steps,
                    guidance_scale=self.guidance_scale,
                    width=self.width,
                    height=self.height,
                    generator=generator,
                    output_type="pil",
                    **kwargs,
                )
            else:
                out = self._image_to_image()(
                    prompt=prompt.text,
                    image=_fit(_open_rgb(init), self.width, self.height),
                    strength=self.init_strength,
                    negative_prompt=negative or None,
                    num_inference_steps=self.steps,
                    guidance_scale=self.guidance_scale,
                    generator=generator,
                    output_type="pil",
                    **kwargs,
                )
                ran = int(self.steps * float(self.init_strength or 1.0))
                if callback is not None and ran < self.steps:
                    callback(done + self.steps, total)  # the skipped steps count as done
        return out.images[0]


def _open_rgb(path: str) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as exc:
        raise invalid("item.image", "a readable image file", path) from exc


def _fit(image: Any, width: int, height: int) -> Any:
    """`image` scaled to cover width x height and centre-cropped to it (the init image's size is the output's)."""
    from PIL import ImageOps

    return ImageOps.fit(image, (width, height))
