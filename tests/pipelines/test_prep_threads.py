"""torch threads during prep: detection gets the cores the decode workers leave; explicit settings
win; the previous value comes back afterwards."""
from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console

from pipelines import media_stage
from pipelines.media_stage import media_threads, torch_threads
from pipelines.prep import run_prep
from pipelines.prep_options import PrepError, PrepOptions
from tests.pipelines.prep_fixtures import CLASSES, small_manifest
from umbenet_cli.model.config import UMBEnetConfig


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def _opts(**kw):
    return SimpleNamespace(**{"torch_threads": None, "device": "cpu", "workers": 2, **kw})


def test_media_threads_rule(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    torch.set_num_threads(8)
    assert media_threads(_opts(workers=2)) == 6
    assert media_threads(_opts(workers=8)) == 1  # at least one
    assert media_threads(_opts(workers=12)) == 1
    torch.set_num_threads(3)  # a lower setting made before prep is kept
    assert media_threads(_opts(workers=2)) == 3
    assert media_threads(_opts(torch_threads=5)) is None  # run_prep sets it for the whole run
    assert media_threads(_opts(device="cuda:0")) is None  # detection is not on the CPU
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert media_threads(_opts(workers=2)) is None


def test_torch_threads_restores(restore_threads):
    torch.set_num_threads(2)
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(KeyboardInterrupt), torch_threads(1):
        raise KeyboardInterrupt
    assert torch.get_num_threads() == 2
    with torch_threads(None):
        assert torch.get_num_threads() == 2


def test_bad_torch_threads_option(tmp_path):
    with pytest.raises(PrepError, match="--torch-threads 0"):
        PrepOptions(source="manifest", root=tmp_path, out=tmp_path, model=UMBEnetConfig.preset("tiny"),
                    torch_threads=0)


def _run(tmp_path, monkeypatch, **kw):
    """run_prep on 2 clips, recording torch's threads while faces are detected and clips embedded."""
    from pipelines import embed_stage

    seen = {}
    real_faces, real_images = media_stage.MediaStage._faces, embed_stage.EmbedStage._images

    def faces(self, batch):
        seen["faces"] = torch.get_num_threads()
        return real_faces(self, batch)

    def images(self, *a, **k):
        seen["embed"] = torch.get_num_threads()
        return real_images(self, *a, **k)

    monkeypatch.setattr(media_stage.MediaStage, "_faces", faces)
    monkeypatch.setattr(embed_stage.EmbedStage, "_images", images)
    manifest = small_manifest(tmp_path / "data", n=2)
    opts = PrepOptions(source="manifest", root=manifest, out=tmp_path / "out", model=UMBEnetConfig.preset("tiny"),
                       source_options={"classes": CLASSES}, **kw)
    run_prep(opts, Console(file=io.StringIO(), width=200))
    return seen


def test_run_prep_threads_automatic(tmp_path, monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(4)))
    torch.set_num_threads(4)
    seen = _run(tmp_path, monkeypatch, workers=1)
    assert seen == {"faces": 3, "embed": 4}  # 4 CPUs - 1 worker while detecting; all for CLIP
    assert torch.get_num_threads() == 4


def test_run_prep_threads_explicit(tmp_path, monkeypatch, restore_threads):
    torch.set_num_threads(2)
    seen = _run(tmp_path, monkeypatch, torch_threads=1)
    assert seen == {"faces": 1, "embed": 1}
    assert torch.get_num_threads() == 2


def test_cli_torch_threads_option(tmp_path, monkeypatch, restore_threads, capsys):
    """`umbenet prep --torch-threads N` reaches run_prep; a bad value exits 2 naming the option."""
    from umbenet_cli.cli import main

    seen = {}
    real_faces = media_stage.MediaStage._faces

    def faces(self, batch):
        seen["faces"] = torch.get_num_threads()
        return real_faces(self, batch)

    monkeypatch.setattr(media_stage.MediaStage, "_faces", faces)
    torch.set_num_threads(2)
    manifest = small_manifest(tmp_path / "data", n=1)
    base = ["prep", "manifest", str(manifest), "--classes", ",".join(CLASSES), "--preset", "tiny", "--media-only"]
    assert main([*base, "--out", str(tmp_path / "a"), "--torch-threads", "1"]) == 0
    assert seen == {"faces": 1}
    assert torch.get_num_threads() == 2
    assert main([*base, "--out", str(tmp_path / "b"), "--torch-threads", "0"]) == 2
    assert "--torch-threads 0: must be at least 1" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "b" / "media").exists()
