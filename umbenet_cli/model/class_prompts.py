"""Inherent prompts and class tokens through the frozen CLIP text tower (eq. 14 and 5).

For every clip b and class c the text tower reads one sequence (CoOp-style splicing):

    [SOS] P'_b (L_p tokens) ; P_inherent (L_i tokens) ; tokens of class c's text ; [EOS] ...

P' depends on the clip (it comes from the prompt pool), so there is one class embedding per class
*per clip*: B x C sequences a step, the main cost of training. The tower is frozen but gradients
flow through it to P' and P_inherent, so this pass is never wrapped in ``torch.no_grad``.

Causality makes the tokens after [EOS] irrelevant to the pooled output, so sequences are cut just
after the longest class's [EOS] position: exact, and cheaper than the full 77 positions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from umbenet_cli.data.classes import CLASS_DESCRIPTIONS
from umbenet_cli.model.backbone import Backbone
from umbenet_cli.model.config import ConfigError


def class_texts(classes: tuple[str, ...], descriptions: bool) -> list[str]:
    """The words each class contributes to its prompt, in class order."""
    out = []
    for name in classes:
        words = name.replace("_", " ")
        if descriptions:
            if name.lower() not in CLASS_DESCRIPTIONS:
                raise ConfigError([f"class_descriptions=true but class {name!r} has no description; "
                                   f"known: {sorted(CLASS_DESCRIPTIONS)}"])
            words = f"{words}, {CLASS_DESCRIPTIONS[name.lower()]}"
        out.append(words + ".")
    return out


class ClassPromptEncoder(nn.Module):
    """Learnable inherent prompts + frozen class tokens -> per-clip class embeddings."""

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

    def forward(self, pool_prompts: torch.Tensor | None) -> torch.Tensor:
        """pool_prompts [B, L_p, D_tok] (P', or None when the pool is off, then B = 1)
        -> class embeddings [B, C, E], unit norm."""
        text = self.backbone[0].text_model
        proj = self.backbone[0].clip.text_projection
        C = self.prefix.shape[0]
        inh = self.inherent.unsqueeze(0)
        ctx = inh if pool_prompts is None else torch.cat([pool_prompts, inh.expand(pool_prompts.shape[0], -1, -1)], 1)
        B, n_ctx, D = ctx.shape
        seq = torch.cat([
            self.prefix.unsqueeze(0).expand(B, -1, -1, -1),
            ctx.unsqueeze(1).expand(-1, C, -1, -1),
            self.suffix.unsqueeze(0).expand(B, -1, -1, -1),
        ], dim=2).reshape(B * C, -1, D)
        hidden = text.embeddings(inputs_embeds=seq)
        from transformers.masking_utils import create_causal_mask

        mask = create_causal_mask(config=text.config, inputs_embeds=hidden, attention_mask=None,
                                  past_key_values=None)
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
        hidden = text.final_layer_norm(hidden)
        pooled = hidden[torch.arange(B * C, device=hidden.device), self.eos_pos.repeat(B)]
        return F.normalize(proj(pooled), dim=-1).reshape(B, C, -1)
