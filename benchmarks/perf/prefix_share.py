"""Prototype of a proposed fix for ``ClassPromptEncoder.forward``: run the shared prefix once per clip.

Today every (clip b, class c) pair goes through the text tower as its own sequence

    [SOS] P'_b (L_p) ; P_inherent (L_i) ; class c tokens ; [EOS]        (B x C sequences)

but the first ``1 + L_p + L_i`` positions are the same for all C classes of a clip, and the tower
is causal: their hidden states, at every layer, do not depend on the class. So the prefix can
run once per clip (B sequences of ``1 + L_p + L_i`` tokens) and only the few class tokens run per
(clip, class), attending to the clip's prefix keys and values (a KV cache shared by the C
classes). The result is the same function (equal up to float rounding, checked below and in
``bench_train.py``); with the paper's pool (L_p 64, L_i 4) and MAFW's 11 classes a step pushes
16 x (69 + 11 x 5) = 1,984 tokens through the tower instead of 176 x 74 = 13,024.

This file is benchmark code, not library code: ``bench_train.py`` swaps it in on an instance to
measure what the fix would give, and checks it against the library's forward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, s, d = x.shape
    return x.view(b, s, n_heads, d // n_heads).transpose(1, 2)


def shared_prefix_forward(enc, pool_prompts: torch.Tensor | None) -> torch.Tensor:
    """Same contract as ``ClassPromptEncoder.forward``: P' [B, L_p, D] (or None) -> [B, C, E]."""
    text = enc.backbone[0].text_model
    proj = enc.backbone[0].clip.text_projection
    C, S_suf, D = enc.suffix.shape
    inh = enc.inherent.unsqueeze(0)
    ctx = inh if pool_prompts is None else torch.cat([pool_prompts, inh.expand(pool_prompts.shape[0], -1, -1)], 1)
    B, n_ctx, _ = ctx.shape
    P = 1 + n_ctx  # shared positions: [SOS] + prompts (prefix[c] is the same SOS embedding for every c)
    pos = text.embeddings.position_embedding.weight
    h_p = torch.cat([enc.prefix[:1].expand(B, -1, -1), ctx], 1) + pos[:P]  # [B, P, D]
    h_s = (enc.suffix + pos[P:P + S_suf]).reshape(1, C * S_suf, D).expand(B, -1, -1)  # [B, C*S', D]
    # Suffix query (c, j) sees every prefix position and the suffix positions (c, j' <= j).
    cls = torch.arange(C, device=h_p.device).repeat_interleave(S_suf)
    loc = torch.arange(S_suf, device=h_p.device).repeat(C)
    suf_mask = (cls[:, None] == cls[None, :]) & (loc[None, :] <= loc[:, None])
    mask = torch.cat([torch.ones(C * S_suf, P, dtype=torch.bool, device=h_p.device), suf_mask], 1)
    for layer in text.encoder.layers:
        att = layer.self_attn
        H = att.num_heads
        x_p, x_s = layer.layer_norm1(h_p), layer.layer_norm1(h_s)
        q_p, k_p, v_p = (_heads(f(x_p), H) for f in (att.q_proj, att.k_proj, att.v_proj))
        q_s, k_s, v_s = (_heads(f(x_s), H) for f in (att.q_proj, att.k_proj, att.v_proj))
        o_p = F.scaled_dot_product_attention(q_p, k_p, v_p, is_causal=True, scale=att.scale)
        o_s = F.scaled_dot_product_attention(q_s, torch.cat([k_p, k_s], 2), torch.cat([v_p, v_s], 2),
                                             attn_mask=mask, scale=att.scale)
        h_p = h_p + att.out_proj(o_p.transpose(1, 2).reshape(B, P, D))
        h_s = h_s + att.out_proj(o_s.transpose(1, 2).reshape(B, C * S_suf, D))
        h_p = h_p + layer.mlp(layer.layer_norm2(h_p))
        h_s = h_s + layer.mlp(layer.layer_norm2(h_s))
    h_s = text.final_layer_norm(h_s).view(B, C, S_suf, D)
    pooled = h_s[:, torch.arange(C, device=h_s.device), enc.eos_pos - P]  # [B, C, D]
    return F.normalize(proj(pooled), dim=-1)


def check_equal(enc, pool_prompts: torch.Tensor) -> dict:
    """Max |difference| of outputs and of gradients (wrt P' and the inherent prompts) between the
    library's forward and the shared-prefix one, for a random downstream loss."""
    out = {}
    w = None
    grads = {}
    for name, fn in (("library", enc.forward), ("shared prefix", lambda p: shared_prefix_forward(enc, p))):
        p = pool_prompts.detach().clone().requires_grad_(True)
        enc.inherent.grad = None
        e = fn(p)
        if w is None:
            w = torch.randn_like(e)
        (e * w).sum().backward()
        out[name] = e.detach()
        grads[name] = (p.grad.detach().clone(), enc.inherent.grad.detach().clone())
    enc.inherent.grad = None
    return {
        "max_abs_diff_embeddings": float((out["library"] - out["shared prefix"]).abs().max()),
        "max_abs_diff_grad_pool_prompts": float((grads["library"][0] - grads["shared prefix"][0]).abs().max()),
        "max_abs_grad_pool_prompts": float(grads["library"][0].abs().max()),
        "max_abs_diff_grad_inherent": float((grads["library"][1] - grads["shared prefix"][1]).abs().max()),
        "max_abs_grad_inherent": float(grads["library"][1].abs().max()),
    }
