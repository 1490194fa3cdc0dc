"""Shared helpers of the performance suite: the machine, clip sets, timing, results.json.

Every comparison in this suite is measured side by side in one run: the variants are run in
alternation (A B A B ...), repeated, and reported as medians and as the ratio of the medians.
The machine is shared with other engineers' jobs, so single timings are noisy; alternation makes
both sides see the same background load on average.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SAMPLE_MAFW = REPO / "sample_data" / "mafw"
SAMPLE_CLIPS = sorted((SAMPLE_MAFW / "clips").glob("*.mp4"))
RESULTS = HERE / "results.json"
PYTHON = sys.executable
UMBENET = str(Path(sys.executable).with_name("umbenet"))
MAFW_CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
                "contempt", "anxiety", "helplessness", "disappointment")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ----------------------------------------------------------------------------- machine
def machine() -> dict:
    """The machine the numbers were taken on (absolute times mean nothing without it)."""
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = None
    import torch

    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "cpu_model": model, "logical_cpus": os.cpu_count(), "mem_gib": round(mem_gib, 1) if mem_gib else None,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(), "python": platform.python_version(), "ffmpeg": ffmpeg,
        "load_avg_at_start": os.getloadavg(), "shared": "yes: other engineers' jobs ran at the same time",
    }


# ----------------------------------------------------------------------------- timing
def median(xs):
    return float(statistics.median(xs)) if xs else float("nan")


def interleave(variants: dict, repeats: int, warmup: int = 0, log=print) -> dict[str, list[float]]:
    """Run ``variants`` (name -> callable returning seconds, or None to time the call) in
    alternation, ``repeats`` rounds; the order of the variants rotates every round so that none
    always runs first (first-in-round is the one that meets a cold cache or a busy neighbour)."""
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            t0 = time.perf_counter()
            got = variants[n]()
            dt = got if isinstance(got, (int, float)) else time.perf_counter() - t0
            if r >= warmup:
                times[n].append(dt)
            log(f"  {'warmup' if r < warmup else f'round {r - warmup + 1}'} {n}: {dt:.3f} s")
    return times


def summarize(times: dict[str, list[float]]) -> dict:
    return {n: {"median_s": median(v), "min_s": min(v), "max_s": max(v), "runs_s": [round(x, 4) for x in v]}
            for n, v in times.items()}


def ratio(times: dict, num: str, den: str) -> float:
    return median(times[num]) / median(times[den])


def run_cmd(args: list[str], env: dict | None = None, cwd=None) -> dict:
    """Run a command; wall seconds, max RSS (MiB) of the largest process in its tree, output."""
    wrapper = ("import resource,subprocess,sys,time,json;t=time.perf_counter();"
               "p=subprocess.run(sys.argv[1:]);dt=time.perf_counter()-t;"
               "ru=resource.getrusage(resource.RUSAGE_CHILDREN);"
               "print('@@RUSAGE@@'+json.dumps({'rc':p.returncode,'wall_s':dt,'maxrss_kib':ru.ru_maxrss}),file=sys.stderr)")
    full_env = {**os.environ, **(env or {})}
    p = subprocess.run([PYTHON, "-c", wrapper, *args], capture_output=True, text=True, env=full_env, cwd=cwd)
    info = None
    for line in p.stderr.splitlines():
        if line.startswith("@@RUSAGE@@"):
            info = json.loads(line[len("@@RUSAGE@@"):])
    if info is None or info["rc"] != 0:
        raise RuntimeError(f"command failed: {' '.join(args)}\n--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}")
    return {"wall_s": info["wall_s"], "maxrss_mib": info["maxrss_kib"] / 1024, "stdout": p.stdout, "stderr": p.stderr}


# ----------------------------------------------------------------------------- clip sets
def clip_set(folder: Path, n: int, source: list[Path] | None = None) -> Path:
    """A folder of ``n`` clips (the sample clips copied round-robin) and a prep manifest
    ``manifest.csv`` (path,label,text,fold) over them; returns the manifest."""
    source = source or SAMPLE_CLIPS
    clips = folder / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        src = source[i % len(source)]
        dst = clips / f"c{i:05d}{src.suffix}"
        if not dst.exists():
            shutil.copyfile(src, dst)
        label = MAFW_CLASSES[i % len(MAFW_CLASSES)]
        text = "" if label == "neutral" else f"a person shows {label} in clip {i}"
        rows.append((f"clips/{dst.name}", label, text, 1 + i % 5))
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "text", "fold"])
        w.writerows(rows)
    return manifest


def hd_clips(folder: Path, n: int) -> list[Path]:
    """MAFW-like clips: the first ``n`` sample clips scaled to 720p (padded to 1280x720), 25 fps,
    looped to about 5 s (MAFW's typical clip; frames.py's docstring uses the same shape)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in SAMPLE_CLIPS[:n]:
        dst = folder / f"hd_{src.stem}.mp4"
        if not dst.exists():
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "1", "-i", str(src),
                            "-vf", "scale=-2:720,pad=1280:720:(ow-iw)/2:0,fps=25", "-c:v", "libx264",
                            "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-c:a", "aac",
                            "-ar", "44100", "-ac", "2", str(dst)], check=True)
        out.append(dst)
    return out


def count_frames(path: Path) -> int:
    p = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0", "-show_entries",
                        "stream=nb_read_packets", "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    return int(p.stdout.strip().split(",")[0])


# ----------------------------------------------------------------------------- results
def save_section(name: str, data: dict) -> None:
    """Merge one benchmark's results into results.json (scripts run one after another)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = results.get("machine") or machine()
    results[name] = data
    RESULTS.write_text(json.dumps(results, indent=2, default=float) + "\n")


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- backbones
def work_dir() -> Path:
    """Scratch folder shared by the scripts of one run_perf.sh call ($PERF_WORK), else a temp one."""
    import tempfile

    d = os.environ.get("PERF_WORK")
    path = Path(d) if d else Path(tempfile.gettempdir()) / "umbenet-perf-work"
    path.mkdir(parents=True, exist_ok=True)
    return path


# Widths of OpenAI's CLIP checkpoints (config.json of clip-vit-base-patch16 / clip-vit-large-patch14).
CLIP_SIZES = {
    "b16": dict(text=(512, 2048, 12, 8), vision=(768, 3072, 12, 12, 224, 16), projection=512),
    "l14": dict(text=(768, 3072, 12, 12), vision=(1024, 4096, 24, 16, 224, 14), projection=768),
}


def random_clip(size: str) -> Path:
    """A CLIP with the widths of OpenAI's ViT-B/16 or ViT-L/14, random weights and CLIP's real
    tokenizer, written once as a local checkpoint folder (nothing is downloaded)."""
    folder = work_dir() / f"clip-vit-{size}-random"
    if (folder / "DONE").is_file():
        return folder
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from umbenet_cli.model.clip_bpe import clip_bpe_vocab

    s = CLIP_SIZES[size]
    th, ti, tl, tn = s["text"]
    vh, vi, vl, vn, img, patch = s["vision"]
    text = dict(vocab_size=49408, hidden_size=th, intermediate_size=ti, num_hidden_layers=tl,
                num_attention_heads=tn, max_position_embeddings=77, bos_token_id=49406,
                eos_token_id=49407, pad_token_id=49407, hidden_act="quick_gelu")
    vision = dict(hidden_size=vh, intermediate_size=vi, num_hidden_layers=vl, num_attention_heads=vn,
                  image_size=img, patch_size=patch, hidden_act="quick_gelu")
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=s["projection"]))
    model.save_pretrained(folder)
    vocab, merges = clip_bpe_vocab()
    CLIPTokenizer(vocab=vocab, merges=merges).save_pretrained(folder)
    (folder / "DONE").write_text(f"random-weight {size}-sized CLIP for benchmarks\n")
    return folder


def vitb16_backbone() -> Path:
    return random_clip("b16")


def vitl14_backbone() -> Path:
    return random_clip("l14")
