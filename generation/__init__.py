"""Personalized covers (diffusers) and captions (transformers) for recommended items.

Importing this package is cheap: torch, diffusers and transformers are imported inside the functions
that need them. The public pieces:

- `generation.domain`: `Domain` (the words of a catalogue's domain: film, book, product, music, article, generic).
- `generation.profile`: `UserProfile`, `build_profile`, `KeyphraseIndex` (user history -> preference keywords).
- `generation.prompts`: `ItemInfo`, `Prompt`, `build_prompt` (item content mixed with preferences, PMG's alpha).
- `generation.covers`: `CoverGenerator` (AutoPipelineForText2Image, image-to-image from the item's own picture,
  or a labelled typographic fallback).
- `generation.captions`: `CaptionGenerator` (a small instruct LLM, or a labelled template fallback).
- `generation.compose`: `compose_poster`, `render_fallback_cover`, `contrast_ratio` (2:3 posters, legible titles).
- `generation.assets`: `Asset`, `AssetStore` (content-addressed files with provenance).
- `generation.loading`: `resolve_model`, `select_device`, `ModelUnavailableError` (local dir -> HF cache -> hub).
- `generation.testing`: `build_tiny_sd`, `build_tiny_lm`, `fake_hf_cache` (tiny random models for tests and benchmarks).
"""
