"""Inherent prompts and class tokens through the frozen CLIP text tower (eq. 14 and 5).

For every clip b and class c the text tower reads one sequence (CoOp-style splicing):

    [SOS] P'_b (L_p tokens) ; P_inherent (L_i tokens) ; tokens of class c's text ; [EOS] ...

P' depends on the clip (it comes from the prompt pool), so there is one class embedding per class
*per clip*: B x C (clip, class) pairs a step, the main cost of training. The tower is frozen but
gradients flow through it to P' and P_inherent, so this pass is never wrapped in ``torch.no_grad``
(callers do that at eval).

Causality makes the tokens after [EOS] irrelevant to the pooled output, so sequences are cut just
after the longest class's [EOS] position: exact, and cheaper than the full 77 positions.

Shared prefix (the default). The first ``P = 1 + L_p + L_i`` positions ([SOS], P'_b, P_inherent) are
the same for the C classes of a clip and the tower is causal, so their hidden states, at every
layer, do not depend on the class. ``forward`` therefore runs one sequence per clip:

    [SOS] P'_b ; P_inherent ; tokens of class 1 + [EOS] ; tokens of class 2 + [EOS] ; ...

the class suffixes packed one after the other (no padding), each at the positions it has in its own
plain sequence (P, P + 1, ...), under a mask that lets the prefix attend causally to itself and a
class's tokens attend to the whole prefix and causally to their own class only. The packed sequence
goes through the tower's own modules: token embeddings plus the position embedding of each explicit
position, ``text.encoder`` with that rule as a 4-D additive attention mask, ``final_layer_norm`` at
each class's [EOS]. So the result is the plain one up to float rounding (tested), for a fraction of
the work: with the paper's prompt (L_p 32, L_i 32) and MAFW's 11 classes, 65 + 36 positions per
clip instead of 11 x 70. (An earlier version re-enacted the encoder's layers one by one, to skip the
last layer's non-[EOS] rows; measured in benchmarks/perf/README.md, it was not worth a second copy
of CLIP's layer in this file.) It needs learned absolute positions added to the token embeddings
(``CLIPTextEmbeddings``) and an attention implementation that takes a 4-D mask (eager, sdpa);
any other tower (checked once, at construction) takes the plain path, which stays available as
``forward_plain`` (and ``shared_prefix = False``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from umbenet_cli.data.classes import class_text
from umbenet_cli.model.backbone import Backbone
from umbenet_cli.model.config import ConfigError


def class_texts(classes: tuple[str, ...], descriptions: bool) -> list[str]:
    """The words each class contributes to its prompt, in class order (a class without a
    description is refused by the config's validation, before any model is built)."""
    return [class_text(name, descriptions) for name in classes]


def shared_prefix_supported(text_model: nn.Module) -> bool:
    """Whether the packed shared-prefix sequence can go through ``text_model`` exactly: Hugging
    Face's ``CLIPTextEmbeddings`` (learned absolute positions added to the token embeddings, so a
    token's position can be given explicitly), an ``encoder`` whose attention takes a 4-D additive
    mask (eager or sdpa; flash attention takes only padding masks), a ``final_layer_norm``. The
    encoder's layers themselves are run as they are. Never raises."""
    try:
        from transformers.models.clip.modeling_clip import CLIPTextEmbeddings

        emb = text_model.embeddings
        if type(emb).forward is not CLIPTextEmbeddings.forward:
            return False
        if not (isinstance(emb.token_embedding, nn.Embedding) and isinstance(emb.position_embedding, nn.Embedding)
                and isinstance(text_model.final_layer_norm, nn.Module) and isinstance(text_model.encoder, nn.Module)):
            return False
        return text_model.config._attn_implementation in ("eager", "sdpa")
    except Exception:  # any missing attribute or import: the plain path
        return False


def attention_mask(text_model: nn.Module, allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """[L, L] bool (True = may attend) -> the 4-D mask [1, 1, L, L] the tower's attention takes:
    bool for sdpa (any compute dtype, bf16 autocast included), additive (0 or the dtype's lowest)
    for eager; None for implementations that take no 4-D mask (they run causal via ``is_causal``)."""
    impl = getattr(text_model.config, "_attn_implementation", None)
    if impl == "sdpa":
        return allowed[None, None]
    if impl == "eager":
        zero = torch.zeros((), dtype=dtype, device=allowed.device)
        return torch.where(allowed, zero, torch.finfo(dtype).min)[None, None]
    return None


class ClassPromptEncoder(nn.Module):
    """Learnable inherent prompts + frozen class tokens -> per-clip class embeddings.

    ``shared_prefix`` (set at construction from :func:`shared_prefix_supported`) picks the
    shared-prefix pass; setting it to False forces the plain one (B x C full sequences)."""

    def __init__(self, backbone: Backbone, classes: tuple[str, ...], descriptions: bool,
                 pool_length: int, inherent_length: int) -> None:
        super().__init__()
        self.backbone = [backbone]  # a plain list: the tower is owned (and saved) by UMBEnet, not here
        dims = backbone.dims
        self.pool_length = pool_length
        self.inherent = nn.Parameter(torch.empty(inherent_length, dims.token_dim))
        nn.init.normal_(self.inherent, std=0.02)

        n_ctx = pool_length + inherent_length
        tok = backbone.tokenizer
        texts = class_texts(classes, descriptions)
        rows, eos_pos, problems = [], [], []
        for name, text in zip(classes, texts):
            ids = tok(text)["input_ids"]  # [SOS, words..., EOS]
            seq = [ids[0]] + [ids[0]] * n_ctx + ids[1:]  # placeholders, replaced by prompt vectors
            if len(seq) > dims.context_length:
                problems.append(
                    f"class {name!r}: {len(seq)} tokens ({n_ctx} prompt tokens = pool.length "
                    f"{pool_length} + inherent_length {inherent_length}, plus {len(ids)} for "
                    f"{text!r}) exceed the text tower's {dims.context_length} positions; shorten "
                    f"pool.length or inherent_length, or set class_descriptions=false")
                continue
            eos_pos.append(len(seq) - 1)
            rows.append(seq)
        if problems:
            raise ConfigError(problems)
        length = max(eos_pos) + 1
        pad = ids[-1]
        ids_t = torch.tensor([r + [pad] * (length - len(r)) for r in rows])  # [C, S]
        with torch.no_grad():
            emb = backbone.text_model.embeddings.token_embedding(
                ids_t.to(backbone.clip.text_projection.weight.device))
        # Derived from the backbone and the class list (both in the config): not saved.
        self.register_buffer("prefix", emb[:, :1].clone(), persistent=False)  # [C, 1, D]
        self.register_buffer("suffix", emb[:, 1 + n_ctx:].clone(), persistent=False)  # [C, S', D]
        self.register_buffer("eos_pos", torch.tensor(eos_pos), persistent=False)  # [C]

        # The shared-prefix layout: the C suffixes (class tokens + [EOS], n_c = eos_pos[c] - n_ctx
        # tokens each) packed into T = sum(n_c) positions; ``local`` is a token's index inside its
        # class's suffix (its position is P + local), ``pool`` the packed index of each class's [EOS].
        lengths = [e - n_ctx for e in eos_pos]
        cls = torch.arange(len(lengths)).repeat_interleave(torch.tensor(lengths))
        local = torch.cat([torch.arange(n) for n in lengths])
        suffix_mask = (cls[:, None] == cls[None, :]) & (local[None, :] <= local[:, None])  # [T, T]
        dev = emb.device
        self.register_buffer("packed", torch.cat([self.suffix[c, :n] for c, n in enumerate(lengths)]),
                             persistent=False)  # [T, D]
        self.register_buffer("packed_local", local.to(dev), persistent=False)  # [T]
        self.register_buffer("packed_mask", suffix_mask.to(dev), persistent=False)  # [T, T]
        self.register_buffer("packed_pool", (torch.tensor(lengths).cumsum(0) - 1).to(dev), persistent=False)  # [C]
        self.shared_prefix = shared_prefix_supported(backbone.text_model)

    def forward(self, pool_prompts: torch.Tensor | None) -> torch.Tensor:
        """pool_prompts [B, L_p, D_tok] (P', or None when the pool is off, then B = 1)
        -> class embeddings [B, C, E], unit norm."""
        if self.shared_prefix:
            return self.forward_shared(pool_prompts)
        return self.forward_plain(pool_prompts)

    def _context(self, pool_prompts: torch.Tensor | None) -> torch.Tensor:
        """[B, L_p + L_i, D]: P' followed by the inherent prompts (B = 1 without P')."""
        inh = self.inherent.unsqueeze(0)
        if pool_prompts is None:
            return inh
        return torch.cat([pool_prompts, inh.expand(pool_prompts.shape[0], -1, -1)], 1)

    def forward_plain(self, pool_prompts: torch.Tensor | None) -> torch.Tensor:
        """The reference pass: every (clip, class) pair as its own sequence through the tower."""
        text = self.backbone[0].text_model
        proj = self.backbone[0].clip.text_projection
        C = self.prefix.shape[0]
        ctx = self._context(pool_prompts)
        B, n_ctx, D = ctx.shape
        seq = torch.cat([
            self.prefix.unsqueeze(0).expand(B, -1, -1, -1),
            ctx.unsqueeze(1).expand(-1, C, -1, -1),
            self.suffix.unsqueeze(0).expand(B, -1, -1, -1),
        ], dim=2).reshape(B * C, -1, D)
        hidden = text.embeddings(inputs_embeds=seq)
        L = hidden.shape[1]
        causal = torch.ones(L, L, dtype=torch.bool, device=hidden.device).tril()
        mask = attention_mask(text, causal, hidden.dtype)
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
        hidden = text.final_layer_norm(hidden)
        pooled = hidden[torch.arange(B * C, device=hidden.device), self.eos_pos.repeat(B)]
        return F.normalize(proj(pooled), dim=-1).reshape(B, C, -1)

    def _shared_mask(self, P: int) -> torch.Tensor:
        """[P + T, P + T] bool, True where a query (row) may attend to a key (column)."""
        cached = getattr(self, "_mask_cache", None)
        dev = self.packed_mask.device
        if cached is not None and cached[0] == P and cached[1].device == dev:
            return cached[1]
        T = self.packed_mask.shape[0]
        top = torch.cat([torch.ones(P, P, dtype=torch.bool, device=dev).tril(),
                         torch.zeros(P, T, dtype=torch.bool, device=dev)], 1)
        bottom = torch.cat([torch.ones(T, P, dtype=torch.bool, device=dev), self.packed_mask], 1)
        mask = torch.cat([top, bottom], 0)
        self._mask_cache = (P, mask)
        return mask

    def forward_shared(self, pool_prompts: torch.Tensor | None) -> torch.Tensor:
        """The shared-prefix pass (module docstring): one packed sequence per clip through the
        tower's own encoder under the prefix/suffix mask; the plain pass's result."""
        text = self.backbone[0].text_model
        proj = self.backbone[0].clip.text_projection
        ctx = self._context(pool_prompts)
        B, n_ctx, D = ctx.shape
        P = 1 + n_ctx
        seq = torch.cat([self.prefix[:1].expand(B, -1, -1), ctx, self.packed.expand(B, -1, -1)], 1)
        pos = torch.cat([torch.arange(P, device=ctx.device), P + self.packed_local])
        hidden = seq + text.embeddings.position_embedding(pos.unsqueeze(0))
        mask = attention_mask(text, self._shared_mask(P), hidden.dtype)
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
        pooled = text.final_layer_norm(hidden[:, P + self.packed_pool])  # [B, C, D]
        return F.normalize(proj(pooled), dim=-1)


