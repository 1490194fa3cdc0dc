"""Stage 5 of prep: frozen CLIP towers over the media table -> the features table.

Reads the media table one part at a time, decodes the JPEG crops, runs the image tower in batches
of frames (across clips) and the text tower over the clips' texts, and writes feature rows. Only
this stage depends on the backbone: a new backbone re-runs it alone, from the stored crops.
"""
from __future__ import annotations

import io
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from umbenet_cli.data.cache_read import MediaTable
from umbenet_cli.devices import autocast_precision, precision_name
from umbenet_cli.model.backbone import Backbone

# Media columns carried over to the features table unchanged.
CARRIED = ("clip_id", "label", "fold", "split", "status", "status_reason", "n_source_frames",
           "n_valid_frames", "face_ratio", "audio_num_samples", "text", "text_source", "text_language")


def _decode_jpeg(item: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(item)) as im:
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def _decode_jpegs(items: list[bytes]) -> np.ndarray:
    return np.stack([_decode_jpeg(b) for b in items])


class EmbedStage:
    """Image and text towers over media parts.

    Per tower batch of ``frame_batch`` frames: the JPEGs are decoded by a small thread pool (PIL
    releases the GIL; on a GPU the next batch's while the tower runs on this one), the uint8
    frames go to the device and are normalised there (``Backbone.preprocess``). So at most two
    batches of frames are held at once, whatever the number of clips, instead of a 64-clip chunk
    decoded, concatenated and normalised at once (benchmarks/perf, findings 4 and 5).
    ``close()`` ends the decoding threads.
    """

    def __init__(self, backbone: Backbone, device: str, frame_batch: int, scene: bool,
                 jpeg_threads: int | None = None) -> None:
        self.backbone = backbone.to(device)
        self.device = device
        # The image tower runs in the precision training would use on this device (bf16 autocast
        # only on GPUs with native bf16, fp32 on V100/T4 and the CPU); the text tower in fp32.
        self.precision = precision_name(torch.device(device))
        self.frame_batch = frame_batch
        self.scene = scene
        self.seconds: Counter[str] = Counter()
        self.jpeg_threads = jpeg_threads or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None

    def notes(self) -> dict[str, str]:
        """How this stage computes embeddings, for the features parts' metadata (``PartWriter``
        notes) and prep's output: the device and each tower's precision."""
        device = torch.device(self.device)
        where = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
        return {"embed_device": where, "image_tower_precision": self.precision, "text_tower_precision": "fp32"}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _submit(self, items: list[bytes]) -> list[Future]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.jpeg_threads, thread_name_prefix="jpeg")
        return [self._pool.submit(_decode_jpeg, b) for b in items]

    @torch.no_grad()
    def _images(self, jpeg_lists: list[list[bytes]]) -> list[np.ndarray]:
        """Per clip: [T, E] float32 image embeddings of its T JPEGs, batched across clips."""
        flat = [b for j in jpeg_lists for b in j]
        fb = self.frame_batch
        # On a GPU the next batch decodes while the tower runs. On a CPU the tower's OpenMP threads
        # would share the cores with the decoding threads (finding 2: slower, not faster), so each
        # batch is decoded by all threads first, then embedded.
        prefetch = self.device != "cpu"
        pending = self._submit(flat[:fb]) if prefetch and flat else []
        out = []
        for s in range(0, len(flat), fb):
            t0 = time.perf_counter()
            futures = pending if prefetch else self._submit(flat[s:s + fb])
            if prefetch:
                pending = self._submit(flat[s + fb:s + 2 * fb])
            frames = np.stack([f.result() for f in futures])
            t1 = time.perf_counter()
            self.seconds["jpeg"] += t1 - t0  # decoding, or waiting for it
            pixels = self.backbone.preprocess(frames, device=self.device)
            t2 = time.perf_counter()
            self.seconds["preprocess"] += t2 - t1
            with autocast_precision(torch.device(self.device)):
                out.append(self.backbone.encode_images(pixels).float().cpu())
            self.seconds["image tower"] += time.perf_counter() - t2
        emb = torch.cat(out).numpy() if out else np.zeros((0, self.backbone.dims.embed_dim), np.float32)
        bounds = np.cumsum([0] + [len(j) for j in jpeg_lists])
        return [emb[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    @torch.no_grad()
    def _texts(self, texts: list[str]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        out = []
        for s in range(0, len(texts), 256):
            out.append(self.backbone.encode_texts(texts[s:s + 256]).float().cpu())
        self.seconds["text tower"] += time.perf_counter() - t0
        return list(torch.cat(out).numpy()) if out else []

    def run(self, part: MediaTable, todo: set[str], write: Callable[[dict], None],
            advance: Callable[[int], None], chunk: int = 64) -> None:
        """Embed the clips of one media part whose ids are in ``todo``."""
        meta = part.meta.to_pydict()
        index = [i for i, cid in enumerate(meta["clip_id"]) if cid in todo]
        for s in range(0, len(index), chunk):
            rows = index[s:s + chunk]
            with_video = [i for i in rows if part.crops[i].is_valid]
            emb = dict(zip(with_video, self._images([part.crops[i].as_py() for i in with_video])))
            scene = {}
            if self.scene:
                with_scene = [i for i in rows if part.scene[i].is_valid]
                scene = dict(zip(with_scene, self._images([part.scene[i].as_py() for i in with_scene])))
            with_text = [i for i in rows if meta["text"][i] is not None]
            temb = dict(zip(with_text, self._texts([meta["text"][i] for i in with_text])))
            t0 = time.perf_counter()
            for i in rows:
                row = {k: meta[k][i] for k in CARRIED}
                row["frame_emb"] = emb.get(i)
                row["audio"] = part.audio[i] if part.audio_present[i] else None
                row["text_emb"] = temb.get(i)
                if self.scene:
                    row["scene_emb"] = scene.get(i)
                write(row)
            self.seconds["write"] += time.perf_counter() - t0
            advance(len(rows))
