"""Frozen CLIP towers: loading any Hugging Face CLIP checkpoint, loudly, and preparing frames.

Loading goes through ``transformers.CLIPModel.from_pretrained`` for hub ids and local folders
alike; the offline tiny backbone (``umbenet/tiny-random-clip``) is a local folder written on first
use by :mod:`umbenet_cli.model.tiny_backbone` and then loaded through this same code.

Two failure modes of transformers are turned into errors that name the model and the fix:
- the hub cannot be reached (``OSError`` deep inside ``from_pretrained``);
- the CLIP tokenizer's vocabulary files are missing: transformers then builds a two-token
  tokenizer without complaint, and every class name silently becomes the same token.
"""
from __future__ import annotations

from umbenet_cli.errors import UserError

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from umbenet_cli.model.config import TINY_BACKBONE
from umbenet_cli.model.hub import hub_unreachable

log = logging.getLogger(__name__)

# CLIP's image normalisation (identical in every OpenAI / LAION CLIP checkpoint's processor).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_VOCAB_SIZE = 49408  # BPE vocabulary of every OpenAI CLIP text tower


class BackboneError(UserError, RuntimeError):
    """The CLIP backbone could not be loaded; the message says why and what to do."""


class BackboneNotHere(BackboneError):
    """A hub backbone whose weights are not on this machine while the hub cannot be reached: the
    name is fine, only the weights are missing (``umbenet info`` still shows the configuration)."""

    def __init__(self, message: str, name: str, why: str) -> None:
        super().__init__(message)
        self.name, self.why = name, why


@dataclass(frozen=True)
class BackboneDims:
    """Widths the rest of the model is built around (read from the backbone's config)."""

    embed_dim: int  # projection_dim: CLIP's joint space, where F_fusion and class embeddings live
    token_dim: int  # text tower width: where prompt tokens live
    context_length: int  # text tower positions (77 for CLIP)
    image_size: int  # vision tower input size in pixels


class Backbone(nn.Module):
    """A frozen ``CLIPModel`` and its tokenizer. The towers never train and never leave eval mode."""

    def __init__(self, name: str, clip: nn.Module, tokenizer) -> None:
        super().__init__()
        self.name = name
        self.clip = clip
        self.tokenizer = tokenizer
        self.clip.requires_grad_(False)
        self.clip.eval()
        tc, vc = clip.config.text_config, clip.config.vision_config
        self.dims = BackboneDims(
            embed_dim=clip.config.projection_dim,
            token_dim=tc.hidden_size,
            context_length=tc.max_position_embeddings,
            image_size=vc.image_size,
        )

    def train(self, mode: bool = True) -> "Backbone":
        # Frozen towers stay in eval mode (no dropout) whatever the surrounding model does.
        super().train(False)
        return self

    @property
    def text_model(self) -> nn.Module:
        return self.clip.text_model

    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp()

    def fingerprint(self) -> str:
        """A short hash of the projection weights: tells two backbones with one name apart."""
        h = hashlib.sha256()
        for p in (self.clip.text_projection.weight, self.clip.visual_projection.weight):
            h.update(p.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] normalised pixels -> [N, embed_dim] CLIP image embeddings (not normalised)."""
        return self.clip.get_image_features(pixel_values=pixels).pooler_output

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Strings -> [N, embed_dim] CLIP text embeddings (truncated at the context length)."""
        device = self.clip.text_projection.weight.device
        tok = self.tokenizer(list(texts), padding=True, truncation=True,
                             max_length=self.dims.context_length, return_tensors="pt")
        return self.clip.get_text_features(input_ids=tok["input_ids"].to(device),
                                           attention_mask=tok["attention_mask"].to(device)).pooler_output

    def preprocess(self, frames: np.ndarray | torch.Tensor,
                   device: str | torch.device | None = None) -> torch.Tensor:
        """uint8 frames [..., H, W, 3] -> normalised pixels [..., 3, S, S] (resize short side, centre crop).

        ``device``: where the work happens and the result lives (default: where ``frames`` are).
        The uint8 frames move there first, a quarter of the float32 bytes. Frames already S x S
        (prep's 224-px crops for a 224-px tower) skip the resize, which at that size only
        reproduces its input (to float rounding) and was most of the cost (benchmarks/perf,
        finding 5).
        """
        x = torch.as_tensor(frames)
        if device is not None:
            x = x.to(device)
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)
        s = self.dims.image_size
        h, w = x.shape[-2:]
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        if (h, w) == (s, s):  # one float buffer, normalised in place (values as below, exactly)
            x = x.to(torch.float32, memory_format=torch.contiguous_format, copy=True).div_(255.0)
            return x.sub_(mean).div_(std).reshape(*lead, 3, s, s)
        x = x.to(torch.float32, copy=True).div_(255.0)  # in place: one float copy of the input
        scale = s / min(h, w)
        nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        top, left = (nh - s) // 2, (nw - s) // 2
        x = x[..., top:top + s, left:left + s].clamp(0, 1)  # a new tensor: normalised in place
        return x.sub_(mean).div_(std).reshape(*lead, 3, s, s)


def check_tokenizer(tokenizer, name: str, expected_vocab: int) -> None:
    """Raise BackboneError unless ``tokenizer`` has CLIP's real vocabulary.

    Offline, transformers may return a tokenizer holding only its special tokens; class names
    would all map to the unknown token and the model would train on identical prompts.
    """
    size = len(tokenizer)
    probe = tokenizer("a happy face")["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    inner = probe[1:-1]  # CLIP's unk token is its end-of-text token, which closes every sequence
    broken = size < expected_vocab or len(inner) != 3 or (unk is not None and unk in inner)
    if broken:
        raise BackboneError(
            f"the CLIP tokenizer of {name!r} has {size} tokens (expected {expected_vocab}) and splits "
            f"'a happy face' into {probe}: its vocabulary files (vocab.json, merges.txt) were not "
            f"loaded, probably because the model hub could not be reached. {offline_fix(name)}"
        )


def offline_fix(name: str) -> str:
    """How to get a hub checkpoint onto a machine that cannot reach the hub."""
    return (f"Fix: on a machine with internet, `hf download {name} --local-dir clip` (huggingface_hub's CLI), "
            f"copy the folder here and pass it with `--set backbone=/path/to/clip` (its weights fingerprint "
            f"is the hub checkpoint's, so caches made with {name!r} still fit); or copy a Hugging Face cache "
            f"that holds it and point HF_HOME at it. For an offline test run use `--preset tiny` (backbone "
            f"{TINY_BACKBONE!r}, built locally).")


def looks_like_path(name: str) -> bool:
    """A local folder, not a hub id (``org/name``): absolute, ``./``, ``../``, ``~``, or deeper."""
    return (Path(name).is_absolute() or name.startswith((".", "~")) or name.count("/") > 1
            or "\\" in name)


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id the hub would refuse: not cached
        return False


def load_backbone(name: str, device: str | torch.device = "cpu") -> Backbone:
    """Load a frozen CLIP by hub id or local folder; the tiny offline backbone by its id.

    A local folder must exist; a hub id is loaded from the Hugging Face cache without a network
    call when it is there, else downloaded, failing at once (one connection attempt) offline."""
    from transformers import AutoTokenizer, CLIPModel  # heavy import, kept out of module import
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-shard bars would drown our own progress display

    source, local = name, True
    if name == TINY_BACKBONE:
        from umbenet_cli.model.tiny_backbone import ensure_tiny_backbone

        source = str(ensure_tiny_backbone())
    elif Path(name).expanduser().exists():
        source = str(Path(name).expanduser())
        if not Path(source).is_dir():
            raise BackboneError(f"backbone {name!r} is a file: give the folder of a CLIP checkpoint "
                                f"(config.json, model.safetensors, tokenizer files), e.g. --set backbone=/path/to/clip")
    elif looks_like_path(name):
        raise BackboneError(f"backbone {name!r}: no such folder. Give the folder of a downloaded CLIP checkpoint "
                            f"(`hf download openai/clip-vit-base-patch16 --local-dir /path/to/clip`, then "
                            f"--set backbone=/path/to/clip), or a Hugging Face hub id")
    else:
        local = _in_hub_cache(name)
        why = None if local else hub_unreachable()
        if why is not None:
            raise BackboneNotHere(f"could not load the CLIP backbone {name!r}: it is not in the Hugging Face cache "
                                  f"and {why}.\n{offline_fix(name)}", name, why)
    try:
        try:
            clip = CLIPModel.from_pretrained(source, local_files_only=local)
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        except OSError:
            if not local or source != name:
                raise
            why = hub_unreachable()  # cached only in part (e.g. config without weights)
            if why is not None:
                why = f"the Hugging Face cache holds it only in part and {why}"
                raise BackboneNotHere(f"could not load the CLIP backbone {name!r}: {why}.\n{offline_fix(name)}",
                                      name, why) from None
            clip = CLIPModel.from_pretrained(source)
            tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"could not load the CLIP backbone {name!r}: {str(exc).splitlines()[0]}\n"
                            f"{offline_fix(name)}") from exc
    check_tokenizer(tokenizer, name, clip.config.text_config.vocab_size)
    log.info("loaded CLIP backbone %s", name)
    return Backbone(name, clip, tokenizer).to(device)
