"""UMBEnet: the whole model, wired from its config (paper section 3).

    F_v, F_a, F_t          = E_v(frames), E_a(audio), E_t(text)                 eq. 1
    F_fusion               = AdaptiveFusion([F_v, F_a, F_t], M)                  eq. 2-3
    P*, key loss           = PromptPool(query = F_fusion of each clip,          eq. 4, 8-9
                                        or their batch mean: pool.query_scope)
    P', gates              = SFF(P*)                                             eq. 10-12
    e_c (per clip, class)  = CLIP_text([SOS] P' ; P_inherent ; class c ; [EOS])  eq. 14
    logits                 = logit_scale · cos(F_fusion, e_c)                    eq. 5
    (ablation, classifier=vectors: e_c = learned vectors w_c / |w_c|, no pool, no text tower)
    loss                   = CE + lambda·sum|W1| (+ gate L1) + w·key loss       eq. 5, 13

How it is trained (section 3.4: stage 1 unimodal, stage 2 from the prompts stage 1 activated with
randomly missing modalities; the schedule and stopping rules of 4.1) lives in one place,
``umbenet_cli.training.two_stage``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from umbenet_cli.model.audio import AudioEncoder
from umbenet_cli.model.backbone import Backbone, load_backbone
from umbenet_cli.model.class_prompts import ClassPromptEncoder
from umbenet_cli.model.config import MODALITIES, UMBEnetConfig
from umbenet_cli.model.fusion import AdaptiveFusion
from umbenet_cli.model.prompt_pool import PromptPool
from umbenet_cli.model.sff import SparseFeatureFusion
from umbenet_cli.model.text import TextStream
from umbenet_cli.model.visual import TemporalTransformer


@dataclass
class Batch:
    """One batch of clips. Give each modality in one of its two forms: cached or raw.

    present [B, 3] bool, columns (video, audio, text): False = missing, whatever the tensors hold.
    Video: ``frame_emb`` [B, T, E] CLIP image embeddings (the cache), or ``frames`` [B, T, 3, S, S]
    normalised pixels (``Backbone.preprocess``); ``frame_mask`` [B, T] bool marks real frames.
    Audio: ``audio`` [B, S_a] waveform in [-1, 1] at the config's sample rate, ``audio_len`` [B].
    Text: ``text_emb`` [B, E] CLIP text embeddings (the cache), or ``text`` (B strings, "" if missing).
    """

    present: torch.Tensor
    frame_emb: torch.Tensor | None = None
    frames: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None
    scene_emb: torch.Tensor | None = None
    audio: torch.Tensor | None = None
    audio_len: torch.Tensor | None = None
    text_emb: torch.Tensor | None = None
    text: list[str] | None = None

    def to(self, device: torch.device | str) -> "Batch":
        moved = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in self.__dict__.items()}
        return Batch(**moved)

    def with_present(self, present: torch.Tensor) -> "Batch":
        """The same clips with another presence mask (to drop modalities)."""
        return Batch(**{**self.__dict__, "present": present})


@dataclass
class Output:
    logits: torch.Tensor  # [B, C]
    fused: torch.Tensor  # [B, E] F_fusion, unit norm
    selected: torch.Tensor | None  # [B, k] prompt indices (None when the pool is off)
    key_loss: torch.Tensor
    gates: torch.Tensor | None  # [B, k, L_p, D_tok] (sff.gate "mlp") or [B, k, L_p, 1] ("scalar")
    streams: dict[str, torch.Tensor] = field(default_factory=dict)  # F_v, F_a, F_t [B, E]
    class_emb: torch.Tensor | None = None  # [B or 1, C, E] e_c, unit norm (one per clip with P')


@dataclass
class LossParts:
    total: torch.Tensor
    ce: torch.Tensor
    l1: torch.Tensor  # lambda · sum |W1|
    gate_l1: torch.Tensor
    key: torch.Tensor  # weighted key-matching term

    def as_floats(self) -> dict[str, float]:
        return {k: float(v.detach()) for k, v in self.__dict__.items()}


def subset_code(present: torch.Tensor) -> torch.Tensor:
    """present [B, 3] bool -> bit code [B] (video=1, audio=2, text=4)."""
    # Bit weights made on the device (a tensor from a Python list would be a copy every forward).
    return (present.long() * 2 ** torch.arange(present.shape[-1], device=present.device)).sum(-1)


class UMBEnet(nn.Module):
    def __init__(self, config: UMBEnetConfig, backbone: Backbone | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else load_backbone(config.backbone)
        dims = self.backbone.dims
        E, Dt = dims.embed_dim, dims.token_dim
        self.visual = TemporalTransformer(E, config.num_frames, config.temporal)
        self.audio = AudioEncoder(E, config.audio)
        self.text = TextStream(E)
        self.fusion = AdaptiveFusion(E, config.fusion)
        self.pool = PromptPool(E, Dt, config.pool) if config.pool.enabled else None
        self.sff = SparseFeatureFusion(Dt, config.sff) if config.pool.enabled else None
        if config.classifier == "vectors":  # ablation: learned class vectors, no text tower
            self.class_prompts = None
            self.class_vectors = nn.Parameter(torch.randn(len(config.classes), E))
        else:
            self.class_prompts = ClassPromptEncoder(
                self.backbone, config.classes, config.class_descriptions,
                config.pool.length if config.pool.enabled else 0, config.inherent_length)

    # ------------------------------------------------------------------------------ build
    @classmethod
    def from_preset(cls, name: str, **overrides) -> "UMBEnet":
        return cls(UMBEnetConfig.preset(name, **overrides))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint holds: all weights and buffers except the frozen CLIP towers."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    # ------------------------------------------------------------------------------ forward
    def encode(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The three stream features F_v, F_a, F_t, each [B, E] (garbage where a modality is missing)."""
        present = batch.present
        B, T = present.shape[0], self.config.num_frames
        dev = present.device
        if batch.frame_emb is not None:
            frames = batch.frame_emb.float()
        elif batch.frames is not None:
            frames = self.backbone.encode_images(batch.frames.flatten(0, 1)).reshape(B, batch.frames.shape[1], -1)
        else:
            frames = torch.zeros(B, T, self.backbone.dims.embed_dim, device=dev)
        mask = batch.frame_mask if batch.frame_mask is not None else torch.ones(frames.shape[:2], dtype=torch.bool, device=dev)
        mask = mask & present[:, :1]
        scene = batch.scene_emb.float() if batch.scene_emb is not None else None
        if scene is None and self.config.temporal.scene_stream:
            scene = torch.zeros_like(frames)
        f_v = self.visual(frames, mask, scene)

        if batch.audio is not None:
            wave = batch.audio.float()
            lengths = batch.audio_len if batch.audio_len is not None else torch.full((B,), wave.shape[1], device=dev)
        else:
            wave = torch.zeros(B, self.audio.num_samples, device=dev)
            lengths = torch.full((B,), self.audio.num_samples, device=dev)
        wave = torch.where(present[:, 1:2], wave, torch.zeros_like(wave))
        f_a = self.audio(wave, lengths)

        if batch.text_emb is not None:
            t = batch.text_emb.float()
        elif batch.text is not None:
            t = self.backbone.encode_texts([s if s else " " for s in batch.text]).float()
        else:
            t = torch.zeros(B, self.backbone.dims.embed_dim, device=dev)
        t = torch.where(present[:, 2:3], t, torch.zeros_like(t))
        f_t = self.text(t)
        return {"video": f_v, "audio": f_a, "text": f_t}

    def forward(self, batch: Batch) -> Output:
        return self.head(self.encode(batch), batch.present)

    def head(self, streams: dict[str, torch.Tensor], present: torch.Tensor) -> Output:
        """Everything after the encoders, for one presence mask [B, 3]. Evaluating several
        modality subsets reuses one ``encode`` (which no subset changes) and calls this per subset."""
        present = present.bool()
        fused = self.fuse(streams, present)
        if self.pool is not None:
            picked = self.pool(fused, subset_code(present))
            p_prime, gates = self.sff(picked["values"])
            selected, key_loss = picked["indices"], picked["key_loss"]
        else:
            p_prime, gates, selected, key_loss = None, None, None, fused.new_zeros(())
        class_emb = self.class_embeddings(p_prime)  # [B or 1, C, E]
        with torch.autocast(fused.device.type, enabled=False):  # logits in float32 under autocast too
            logits = self.backbone.logit_scale().float() * torch.einsum(
                "be,bce->bc", fused.float(), class_emb.float().expand(fused.shape[0], -1, -1))
        return Output(logits=logits, fused=fused, selected=selected, key_loss=key_loss, gates=gates, streams=streams,
                      class_emb=class_emb)

    def fuse(self, streams: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """F_fusion [B, E] (eq. 2-3) of the stream features for one presence mask [B, 3]: the
        prompt pool's query."""
        return self.fusion(torch.stack([streams[m] for m in MODALITIES], dim=1), present.bool())

    def class_embeddings(self, p_prime: torch.Tensor | None) -> torch.Tensor:
        """e_c, unit norm: [B, C, E] per clip from P' [B, L_p, D_tok], or [1, C, E] without P'."""
        if self.class_prompts is None:
            return F.normalize(self.class_vectors, dim=-1).unsqueeze(0)
        return self.class_prompts(p_prime)

    def loss(self, out: Output, labels: torch.Tensor) -> LossParts:
        """Cross-entropy (eq. 5) plus the SFF L1 terms (eq. 13) and the key-matching term."""
        ce = F.cross_entropy(out.logits, labels)
        zero = ce.new_zeros(())
        l1 = self.sff.l1_penalty() if self.sff is not None else zero
        gate_l1 = self.sff.gate_penalty(out.gates) if self.sff is not None else zero
        key = self.config.pool.key_loss_weight * out.key_loss if self.pool is not None else zero
        return LossParts(total=ce + l1 + gate_l1 + key, ce=ce, l1=l1, gate_l1=gate_l1, key=key)

    # --------------------------------------------------------------------------- checkpoints
    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        from umbenet_cli.model.checkpoint import save_checkpoint

        return save_checkpoint(self, folder, extra)

    @classmethod
    def load(cls, folder: str | Path, backbone: Backbone | None = None,
             map_location: str | torch.device = "cpu") -> "UMBEnet":
        from umbenet_cli.model.checkpoint import load_checkpoint

        return load_checkpoint(folder, backbone=backbone, map_location=map_location)
