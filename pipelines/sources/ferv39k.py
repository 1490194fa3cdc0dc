"""FERV39k source adapter: 7 classes, one train/test split, face frames (video only).

Release layout::

    4_setups/All_scenes/train_All.csv, test_All.csv     "Crime/Angry/0063 Angry" (space, no header)
    2_ClipsforFaceCrop/<Scene>/<Class>/<id>/*.jpg        face-cropped frames
    3_ClipsforScenImages/<Scene>/<Class>/<id>/*.jpg      whole-frame (scene) images, optional

The clip id is the list's path (``Crime/Angry/0063``). No audio, no text.
"""
from __future__ import annotations

import logging
from pathlib import Path

from pipelines.sources.layout import find_child, find_dirs, listing, read_text_lines, require_dir
from pipelines.sources.records import ClipRecord, Problem, ScanError, SourceScan
from pipelines.sources.validate import check_media, dedupe
from umbenet_cli.data.classes import FERV39K_CLASSES, label_index

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


def scan_ferv39k(root: str | Path) -> SourceScan:
    """Scan a FERV39k release: one record per line of ``train_All.csv`` and ``test_All.csv``.

    Records have ``media_kind="frames"`` (the face-crop folder), ``split`` "train"/"test", and
    ``scene_path`` set when the scene-image folder of the release is present. Returns a
    ``SourceScan`` with protocol ``"train/test"``; raises ScanError when the split lists or the
    face-crop folder cannot be found.
    """
    root = require_dir(Path(root), "FERV39k root")
    list_dir = _find_list_dir(root)
    faces = find_child(root, "2_ClipsforFaceCrop", want="dir")
    if faces is None:
        raise ScanError(
            f"FERV39k face frames not found: looked for '2_ClipsforFaceCrop' (any case) in {root} "
            f"(holds: {listing(root)}). Extract the release's 2_ClipsforFaceCrop there."
        )
    scenes = find_child(root, "3_ClipsforScenImages", "3_ClipsforSceneImages", want="dir")

    problems: list[Problem] = []
    rows = []
    for split in SPLITS:
        path = find_child(list_dir, f"{split}_All.csv", f"{split}_All.txt", f"{split}.csv", want="file")
        if path is None:
            raise ScanError(
                f"FERV39k split list not found: no {split}_All.csv in {list_dir} (holds: "
                f"{listing(list_dir)}). Both train_All.csv and test_All.csv are needed."
            )
        lines, bad = read_text_lines(path)
        problems += [Problem(None, "bad-encoding", f"{path}:{n} is not UTF-8") for n in bad]
        for number, line in lines:
            fields = line.rsplit(None, 1)
            if len(fields) != 2:
                problems.append(Problem(None, "bad-line", f"{path}:{number}: expected "
                                        f"'<Scene>/<Class>/<id> <Class>', got {line!r}"))
                continue
            clip_id = fields[0].strip().strip("/")
            rows.append((clip_id, (split, fields[1].strip()), f"{path.name}:{number}"))

    # The same clip in both lists is a leak between train and test; say so explicitly.
    splits_of: dict[str, set[str]] = {}
    for clip_id, (split, _), _ in rows:
        splits_of.setdefault(clip_id, set()).add(split)
    for clip_id, found in splits_of.items():
        if len(found) > 1:
            problems.append(Problem(clip_id, "inconsistent-splits", "listed in both train_All and "
                                    "test_All"))
    _, dup_problems = dedupe([r for r in rows if len(splits_of[r[0]]) == 1])
    problems += dup_problems

    records = []
    seen: set[str] = set()  # the first row of an id makes its record, as in dedupe()
    for clip_id, (split, raw), _ in rows:
        if clip_id in seen:
            continue
        seen.add(clip_id)
        try:
            label = label_index(FERV39K_CLASSES, raw)
        except ValueError:
            problems.append(Problem(clip_id, "unknown-label", f"label {raw!r} is not one of "
                                    f"{list(FERV39K_CLASSES)}"))
            continue
        parts = clip_id.split("/")
        if len(parts) >= 2 and parts[-2].lower() != raw.lower():
            problems.append(Problem(clip_id, "label-mismatch", f"path says {parts[-2]!r}, list "
                                    f"says {raw!r} (list kept)"))
        scene = None
        if scenes is not None:
            scene = scenes / clip_id
            if not scene.is_dir():
                problems.append(Problem(clip_id, "missing-file", f"no scene frames at {scene}"))
                scene = None
        records.append(ClipRecord(
            clip_id=clip_id, media_path=faces / clip_id, media_kind="frames", label=label,
            text=None, text_source="none", fold=None, split=split, scene_path=scene,
        ))
    problems += check_media(records)
    log.info("FERV39k: %d clips, %d problems", len(records), len(problems))
    return SourceScan("ferv39k", FERV39K_CLASSES, records, problems, "train/test")


def _find_list_dir(root: Path) -> Path:
    """``4_setups/All_scenes``, found loosely."""
    setups = find_child(root, "4_setups", want="dir")
    if setups is not None:
        found = find_child(setups, "All_scenes", want="dir")
        if found is not None:
            return found
    candidates = find_dirs(root, r"^allscenes?$", max_depth=3,
                           skip=("2_ClipsforFaceCrop", "3_ClipsforScenImages"))
    if candidates:
        return candidates[0]
    raise ScanError(
        f"FERV39k split lists not found: looked for 4_setups/All_scenes/{{train,test}}_All.csv "
        f"(any case) under {root} (holds: {listing(root)}). Extract the release's 4_setups there."
    )
