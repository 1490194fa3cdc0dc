"""The way public DFER code prepares clips, reproduced faithfully as the baseline for prep.

Per clip, one after another (as the public preprocessing scripts do):

    1. ffmpeg -i clip.mp4 frames/%05d.jpg              every frame dumped to JPEG
    2. for every frame: MTCNN on that single image,    facenet-pytorch's MTCNN, one call per
       crop and save (face/%05d.jpg)                   image, which detects, crops and saves
    3. ffmpeg -i clip.mp4 -ac 1 -ar 16000 audio.wav    audio extraction

Frames without a face get no face file (the public scripts skip them). The MTCNN settings are
those of ``umbenet prep``'s detector where they exist (min face 20 px, no post-processing, the
same device), with a 224 px output like prep's crops. Sampling T frames for training happens later
in those pipelines (in the data loader), so it is not part of this preparation.

    python benchmarks/perf/dfer_baseline.py OUT_DIR CLIP [CLIP ...]

prints one JSON line: clips, frames, faces saved, seconds per step.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def prepare(clips: list[Path], out: Path, device: str = "cpu") -> dict:
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image

    t_start = time.perf_counter()
    mtcnn = MTCNN(image_size=224, margin=20, min_face_size=20, post_process=False, device=device)
    seconds = {"load MTCNN": time.perf_counter() - t_start, "ffmpeg frames -> JPEG": 0.0,
               "MTCNN per frame + crop + save": 0.0, "ffmpeg audio -> wav": 0.0}
    n_frames = n_faces = 0
    for clip in clips:
        d = out / clip.stem
        (d / "frames").mkdir(parents=True, exist_ok=True)
        (d / "face").mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clip), str(d / "frames" / "%05d.jpg")],
                       check=True)
        seconds["ffmpeg frames -> JPEG"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            for frame in sorted((d / "frames").glob("*.jpg")):
                img = Image.open(frame).convert("RGB")
                face = mtcnn(img, save_path=str(d / "face" / frame.name))
                n_frames += 1
                n_faces += face is not None
        seconds["MTCNN per frame + crop + save"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        # A clip without an audio stream makes ffmpeg fail: the public scripts carry on.
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clip), "-ac", "1", "-ar", "16000",
                        str(d / "audio.wav")], check=False, stderr=subprocess.DEVNULL)
        seconds["ffmpeg audio -> wav"] += time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start
    return {"clips": len(clips), "frames": n_frames, "faces_saved": n_faces, "seconds": seconds}


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    result = prepare([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]))
    print(json.dumps(result))
