"""Tiny random models for tests and benchmarks: the real loading and generation code runs on them in seconds.

    build_tiny_sd(tmp / "sd")   # a StableDiffusionPipeline directory (model_index.json), 64x64 in ~0.1 s
    build_tiny_lm(tmp / "lm")   # a Llama causal LM + byte-level tokenizer with a chat template
    build_tiny_clip(tmp / "clip")   # a CLIPModel + image processor (item and cover image embeddings)

All are built from configs with seeded random weights, saved with `save_pretrained` and meant to be
loaded by path (`CoverGenerator(str(dir), ...)`), exactly like a downloaded checkpoint. Random weights
draw noise and write gibberish: that is the point of the caption sanitiser and the fallbacks.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _byte_vocab(specials: list[str], word_end: str | None = None) -> dict[str, int]:
    """The 256 byte-level symbols (plus each with CLIP's `</w>` word-end suffix when given), then `specials`."""
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    if word_end:
        for ch in alphabet:
            vocab[ch + word_end] = len(vocab)
    for token in specials:
        vocab[token] = len(vocab)
    return vocab


def build_tiny_sd(path: Path | str, seed: int = 0) -> Path:
    """Save a tiny Stable Diffusion pipeline (CLIP text encoder, UNet, VAE, Euler scheduler) to `path`."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=8,
        attention_head_dim=4,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    torch.manual_seed(seed + 2)
    text_config = CLIPTextConfig(
        bos_token_id=512,
        eos_token_id=513,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        pad_token_id=513,
        vocab_size=514,
        max_position_embeddings=256,  # byte-level tokens: room for a whole prompt (real CLIP: 77 BPE tokens)
    )
    text_encoder = CLIPTextModel(text_config)
    vocab = _byte_vocab(["<|startoftext|>", "<|endoftext|>"], word_end="</w>")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=256)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="trailing",
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_lm(path: Path | str, seed: int = 0, hidden_size: int = 32) -> Path:
    """Save a tiny Llama causal LM and a byte-level tokenizer with a ChatML chat template to `path`.
    `hidden_size` 64 gives 16-wide attention heads, the narrowest ONNX Runtime GenAI's CPU attention runs."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = _byte_vocab(SPECIAL_TOKENS)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=int(hidden_size),
        intermediate_size=2 * int(hidden_size),
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=vocab["<|endoftext|>"],
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_clip(path: Path | str, seed: int = 0, *, vision_width: int = 16, vision_layers: int = 1,
                    text_width: int = 16, image_size: int = 32, projection_dim: int = 12) -> Path:
    """Save a tiny CLIP (a ViT of `vision_layers` x `vision_width` over `image_size` px, `projection_dim`-d
    embeddings) and its image processor to `path`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    path = Path(path)
    config = CLIPConfig(
        text_config={"hidden_size": text_width, "intermediate_size": 2 * text_width, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "vocab_size": 64, "max_position_embeddings": 16},
        vision_config={"hidden_size": vision_width, "intermediate_size": 2 * vision_width,
                       "num_hidden_layers": vision_layers, "num_attention_heads": max(2, vision_width // 16),
                       "image_size": image_size, "patch_size": 8},
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(path)
    return path


def fake_hf_cache(cache: Path | str, repo_id: str, files: dict[str, str] | Path) -> Path:
    """Lay out `files` (or a copy of a model directory) the way huggingface_hub caches a snapshot of `repo_id`.

    Lets tests exercise the "found in the local HF cache" path without the network; returns the snapshot dir.
    """
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    if isinstance(files, Path):
        shutil.copytree(files, snapshot)
    else:
        snapshot.mkdir(parents=True)
        for name, text in files.items():
            (snapshot / name).write_text(text)
    return snapshot
