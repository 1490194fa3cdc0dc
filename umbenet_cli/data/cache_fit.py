"""Whether a feature cache fits a model: the one check ``train``, ``eval --cache`` and resume share.

A cache fits a model when its frames per clip, audio length and rate, scene stream and classes are
the model's, and its features were embedded by the same backbone weights. The backbone is matched
on its weight fingerprint: the id (a hub id, or a local folder holding the same checkpoint) is only
a label, so a cache made with ``openai/clip-vit-base-patch16`` trains offline with
``--set backbone=/path/to/that/checkpoint``.
"""
from __future__ import annotations

from umbenet_cli.data.cache_schema import CacheSpec
from umbenet_cli.errors import UserError
from umbenet_cli.model.config import UMBEnetConfig


def fit_problems(spec: CacheSpec, cfg: UMBEnetConfig, n_clips: int | None = None) -> list[str]:
    """Every way the cache described by ``spec`` does not fit ``cfg`` (before any backbone is loaded)."""
    problems = []
    if spec.num_frames != cfg.num_frames:
        problems.append(f"the cache has {spec.num_frames} frames per clip, the config num_frames={cfg.num_frames}: "
                        f"use --set num_frames={spec.num_frames} (or the preset the cache was made with)")
    S = int(round(cfg.audio.seconds * cfg.audio.sample_rate))
    if spec.audio_samples != S or spec.sample_rate != cfg.audio.sample_rate:
        problems.append(f"the cache holds {spec.audio_seconds:g} s of audio at {spec.sample_rate} Hz, the config "
                        f"{cfg.audio.seconds:g} s at {cfg.audio.sample_rate} Hz: use --set audio.seconds={spec.audio_seconds:g}")
    if spec.scene != cfg.temporal.scene_stream:
        problems.append(f"the cache {'has' if spec.scene else 'has no'} scene frames but temporal.scene_stream="
                        f"{cfg.temporal.scene_stream}: set them alike")
    if tuple(spec.classes) != tuple(cfg.classes):
        problems.append(f"the cache's classes {list(spec.classes)} are not the model's {list(cfg.classes)}: "
                        f"use a cache of the same dataset and class order")
    if n_clips == 0:
        problems.append("the cache holds no clips")
    return problems


def check_fits(spec: CacheSpec, cfg: UMBEnetConfig, where: str, error: type[UserError],
               n_clips: int | None = None) -> None:
    """Raise ``error`` listing every problem of :func:`fit_problems`."""
    problems = fit_problems(spec, cfg, n_clips)
    if problems:
        raise error(f"the cache at {where} does not fit this model:\n  - " + "\n  - ".join(problems))


def check_backbone(spec: CacheSpec, backbone_name: str, fingerprint: str, error: type[UserError]) -> None:
    """Raise ``error`` unless the cache was embedded by these backbone weights (the id may differ)."""
    if spec.backbone_fingerprint != fingerprint:
        raise error(f"the cache was embedded with backbone {spec.backbone!r} (weights fingerprint "
                    f"{spec.backbone_fingerprint}), the model uses {backbone_name!r} ({fingerprint}): other "
                    f"weights. Use --set backbone={spec.backbone} (or a local copy of it), or re-embed the cache "
                    f"with `umbenet prep ... --force`")
