"""The embed stage per tower batch, Backbone.preprocess without the same-size resize, and prep's
tables against the code paths they replaced (kept here as references)."""
from __future__ import annotations

import functools
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from rich.console import Console

from pipelines import embed_stage, media_stage
from pipelines.clip_decode import decode_clip
from pipelines.embed_stage import EmbedStage
from pipelines.prep import run_prep
from pipelines.prep_options import PrepOptions
from tests.pipelines.prep_fixtures import CLASSES, small_manifest
from umbenet_cli.data.cache_io import iter_media, read_features, read_media
from umbenet_cli.model.backbone import CLIP_MEAN, CLIP_STD, Backbone, load_backbone
from umbenet_cli.model.config import TINY_BACKBONE, UMBEnetConfig


# ----------------------------------------------------------------------------- the old code paths
def old_preprocess(frames, s: int) -> torch.Tensor:
    """Backbone.preprocess before the change: always resized, float on the CPU."""
    x = torch.as_tensor(frames)
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    scale = s / min(h, w)
    nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - s) // 2, (nw - s) // 2
    x = x[..., top:top + s, left:left + s].clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).reshape(*lead, 3, s, s)


@torch.no_grad()
def old_images(self, jpeg_lists):
    """EmbedStage._images before the change: the whole chunk decoded, concatenated, preprocessed
    per batch on the CPU."""
    frames = [np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in j]) for j in jpeg_lists]
    flat = np.concatenate(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)
    out = [self.backbone.encode_images(old_preprocess(flat[s:s + self.frame_batch], self.backbone.dims.image_size))
           for s in range(0, len(flat), self.frame_batch)]
    emb = torch.cat(out).numpy() if out else np.zeros((0, self.backbone.dims.embed_dim), np.float32)
    T = len(jpeg_lists[0]) if jpeg_lists else 0
    return [emb[i * T:(i + 1) * T] for i in range(len(jpeg_lists))]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny():
    return load_backbone(TINY_BACKBONE)


@pytest.fixture(scope="module")
def tiny224(tiny):
    """The tiny CLIP with a 224-px image tower (prep's crop size): the no-resize path."""
    from transformers import CLIPModel

    from umbenet_cli.model.tiny_backbone import tiny_clip_config

    cfg = tiny_clip_config()
    cfg.vision_config.image_size, cfg.vision_config.patch_size = 224, 32
    torch.manual_seed(0)
    return Backbone("tiny-224", CLIPModel(cfg), tiny.tokenizer)


@pytest.fixture(scope="module")
def crops(sample_cache):
    part = next(iter(iter_media(sample_cache)))
    return [part.crops[i].as_py() for i in range(len(part.clip_ids)) if part.crops[i].is_valid][:12]


# ----------------------------------------------------------------------------- preprocess
def test_preprocess_at_target_size_skips_the_resize_same_values(tiny224):
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 224, 224, 3), dtype=np.uint8)
    before = frames.copy()
    new = tiny224.preprocess(frames)
    assert new.shape == (2, 3, 3, 224, 224) and new.dtype == torch.float32 and new.is_contiguous()
    torch.testing.assert_close(new, old_preprocess(frames, 224), rtol=0, atol=1e-6)
    torch.testing.assert_close(tiny224.preprocess(torch.from_numpy(frames), device="cpu"), new, rtol=0, atol=0)
    assert np.array_equal(frames, before)  # the input is not normalised in place


@pytest.mark.parametrize("shape", [(4, 90, 160, 3), (2, 224, 224, 3), (1, 31, 33, 3)])
def test_preprocess_with_resize_unchanged(tiny, shape):
    frames = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    torch.testing.assert_close(tiny.preprocess(frames), old_preprocess(frames, tiny.dims.image_size), rtol=0, atol=0)


# ----------------------------------------------------------------------------- embed stage
@pytest.mark.parametrize("which", ["tiny", "tiny224"])
@pytest.mark.parametrize("frame_batch", [7, 256])  # 7: batches cross clip boundaries
def test_images_per_batch_equal_the_chunk_path(request, crops, which, frame_batch):
    backbone = request.getfixturevalue(which)
    stage = EmbedStage(backbone, "cpu", frame_batch, scene=False, jpeg_threads=3)
    try:
        new = stage._images(crops)
        old = old_images(stage, crops)
        assert len(new) == len(old) == len(crops)
        for a, b in zip(new, old):
            assert a.shape == b.shape == (len(crops[0]), backbone.dims.embed_dim)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
        assert stage._images([]) == []
        assert {"jpeg", "preprocess", "image tower"} <= set(stage.seconds)
    finally:
        stage.close()


def test_grayscale_jpeg_decodes_as_rgb():
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(buf, format="JPEG")
    img = embed_stage._decode_jpeg(buf.getvalue())
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8


# ----------------------------------------------------------------------------- prep end to end
def _tables(out):
    ft = read_features(out)
    media = read_media(out, columns=["audio", "crops"])
    return ft, media


def test_prep_tables_unchanged_against_the_old_paths(tmp_path, monkeypatch):
    """Joint frames+audio decoding, per-batch embedding and the new writer settings leave the
    media table byte-identical and the features equal (to float16 rounding of the embeddings)."""
    manifest = small_manifest(tmp_path / "data", n=5)
    model = UMBEnetConfig.preset("tiny")

    def prep(out):
        opts = PrepOptions(source="manifest", root=manifest, out=out, model=model,
                           source_options={"classes": CLASSES}, embed_batch=6)
        run_prep(opts, Console(file=io.StringIO(), width=200))
        return _tables(out)

    ft_new, media_new = prep(tmp_path / "new")
    monkeypatch.setattr(media_stage, "decode_clip", functools.partial(decode_clip, joint_audio=False))
    monkeypatch.setattr(embed_stage.EmbedStage, "_images", old_images)
    ft_old, media_old = prep(tmp_path / "old")

    assert media_new.meta.to_pylist() == media_old.meta.to_pylist()
    assert media_new.crops.to_pylist() == media_old.crops.to_pylist()
    assert media_new.audio.tobytes() == media_old.audio.tobytes()
    assert list(ft_new.clip_ids) == list(ft_old.clip_ids)
    assert ft_new.meta.to_pylist() == ft_old.meta.to_pylist()
    assert np.array_equal(ft_new.presence, ft_old.presence)
    assert ft_new.audio.tobytes() == ft_old.audio.tobytes()
    np.testing.assert_allclose(ft_new.frame_emb.astype(np.float32), ft_old.frame_emb.astype(np.float32),
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(ft_new.text_emb, ft_old.text_emb)
    assert ft_new.presence[:, 1].sum() < len(ft_new.clip_ids)  # clips without audio are among them
