"""prep as users meet it: a re-run with nothing to do, a manifest without text."""
from __future__ import annotations

import re
import shutil

from tests.pipelines.prep_fixtures import CLASSES, SAMPLE
from umbenet_cli.cli import main


def test_a_fully_reused_prep_loads_no_backbone(sample_cache, tmp_path, capsys, monkeypatch):
    import umbenet_cli.model.backbone as backbone

    shutil.copytree(sample_cache, tmp_path / "c")

    def no_load(*a, **k):
        raise AssertionError("nothing to embed: the backbone need not load")

    monkeypatch.setattr(backbone, "load_backbone", no_load)
    assert main(["prep", "mafw", str(SAMPLE), "--out", str(tmp_path / "c"), "--preset", "tiny"]) == 0
    err = capsys.readouterr().err
    assert "33 / 33" in err
    assert float(re.search(r"time embed\W+([\d.]+) s", err).group(1)) < 1.0  # was 7.1 s of backbone loading


def test_a_manifest_without_text_says_no_clip_has_text(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    rows = ["path,label,fold"]
    for i, src in enumerate(("00001", "00018")):
        shutil.copy(SAMPLE / "clips" / f"{src}.mp4", data / f"{src}.mp4")
        rows.append(f"{src}.mp4,{CLASSES[i]},{i + 1}")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    (data / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    assert main(["prep", "manifest", str(data / "manifest.csv"), "--out", str(tmp_path / "c"), "--preset", "tiny",
                 "--media-only"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "text missing for every clip: the source gives none (the manifest has no `text` column" in err


def test_prep_again_with_a_local_copy_of_the_backbone_reuses_the_cache(sample_cache, tmp_path, capsys):
    """The id is a label: a local folder holding the same weights continues the cache."""
    from umbenet_cli.model.tiny_backbone import write_tiny_backbone

    shutil.copytree(sample_cache, tmp_path / "c")
    copy = write_tiny_backbone(tmp_path / "clip-copy")
    assert main(["prep", "mafw", str(SAMPLE), "--out", str(tmp_path / "c"), "--preset", "tiny",
                 "--set", f"backbone={copy}"]) == 0
    assert "33 / 33" in capsys.readouterr().err
