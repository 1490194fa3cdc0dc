"""Small parts of the report: PCA, the safetensors reader, constants shared with eval/model, and
that making a report loads neither torch nor typer."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import umbenet_cli.reporting.collect as collect
from umbenet_cli.reporting.figures import pca2
from umbenet_cli.reporting.render import Heading, Note, Para, Table, to_html, to_markdown
from umbenet_cli.reporting.tensors import read_tensor


def test_pca2_matches_the_principal_axes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([5.0, 2.0, 0.1, 0.1, 0.1])
    rot = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    xy = pca2(x @ rot.T + 3.0)
    # Same variances as the two largest axes, uncorrelated components.
    assert np.var(xy[:, 0], ddof=1) == pytest.approx(np.var(x[:, 0] - x[:, 0].mean(), ddof=1), rel=0.05)
    assert abs(np.corrcoef(xy.T)[0, 1]) < 1e-8
    assert np.allclose(pca2(np.ones((4, 3))), 0)  # no variance: all at the origin
    line = pca2(np.outer(np.arange(5.0), [1.0, 2.0]))
    assert np.allclose(line[:, 1], 0) and np.ptp(line[:, 0]) > 0
    assert pca2(np.ones((1, 3))).shape == (1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int64])
def test_read_tensor_without_torch(tmp_path, dtype):
    t = (torch.randn(6, 4) * 10).to(dtype)
    save_file({"pool.keys": t, "other": torch.zeros(3)}, tmp_path / "m.safetensors", metadata={"a": "b"})
    got = read_tensor(tmp_path / "m.safetensors", "pool.keys")
    assert got.shape == (6, 4)
    assert np.array_equal(got, t.float().numpy() if dtype == torch.bfloat16 else t.numpy())
    assert read_tensor(tmp_path / "m.safetensors", "missing") is None


def test_constants_agree_with_eval_and_model():
    from umbenet_cli.evaluation.evaluate import FINAL_STAGES, PAPER_ORDER, subset_name
    from umbenet_cli.model.config import MODALITIES, TINY_BACKBONE
    from umbenet_cli.model.umbenet import subset_code

    assert collect.FINAL_STAGES == FINAL_STAGES and collect.PAPER_ORDER == PAPER_ORDER
    assert collect.MODALITIES == MODALITIES and collect.TINY_BACKBONE == TINY_BACKBONE
    for code in range(1, 8):
        mods = tuple(m for m in MODALITIES if code & collect.MODALITY_BIT[m])
        assert collect.subset_of_code(code) == subset_name(mods) == collect.subset_name(mods)
        assert int(subset_code(torch.tensor([[m in mods for m in MODALITIES]]))[0]) == code


def test_render_escapes():
    blocks = [Heading("a <b>", 1), Para("x & y"), Note("n|o"), Table(["h|1", "h2"], [["<td>", "c|d"]], "cap")]
    md = to_markdown(blocks, root=__import__("pathlib").Path("."))
    assert "| h\\|1 | h2 |" in md and "| <td> | c\\|d |" in md and "> n|o" in md
    html = to_html(blocks, "t<")
    assert "<h1>a &lt;b&gt;</h1>" in html and "&lt;td&gt;" in html and "<title>t&lt;</title>" in html


def test_reporting_imports_neither_torch_nor_typer():
    code = ("import sys, umbenet_cli.reporting, umbenet_cli.reporting.pool_figures; "
            "print('torch' in sys.modules, 'typer' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_one_epoch_curves_have_whole_epoch_axes(tmp_path, monkeypatch):
    """With one epoch, the x axis shows epoch 1, not matplotlib's 0.945-1.050."""
    import json
    from types import SimpleNamespace

    from umbenet_cli.reporting import figures

    stage = tmp_path / "fold1" / "onestage"
    stage.mkdir(parents=True)
    (stage / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train": {"total": 1.2}, "val": {"uar": 0.1}}) + "\n")
    fe = SimpleNamespace(fold=1)
    exp = SimpleNamespace(name="r", folds=[fe], stage_dirs=lambda f: [stage])
    got = {}
    monkeypatch.setattr(figures, "save", lambda fig, path: got.setdefault("fig", fig) and path)
    figures.curves_figure(exp, tmp_path / "curves.png")
    for ax in got["fig"].axes:
        assert list(ax.get_xticks()) == [1] and ax.get_xlim() == (0.5, 1.5)


def test_pool_figures_show_one_checkpoint_and_say_which(tmp_path, monkeypatch):
    """The usage heat map and the keys figure use the same (best) checkpoint's counts, not the
    last epoch's, and their titles name it."""
    import json
    from types import SimpleNamespace

    import numpy as np
    from safetensors.numpy import save_file

    from umbenet_cli.reporting import pool_figures as P

    stage = tmp_path / "fold1" / "stage1"
    rng = np.random.default_rng(0)
    best = np.zeros((8, 4), np.int64)
    best[1] = [5, 0, 0, 0]
    last = np.zeros((8, 4), np.int64)
    last[1] = [5, 9, 9, 9]
    for which, counts in (("best", best), ("last", last)):
        (stage / "checkpoints" / which).mkdir(parents=True)
        save_file({"pool.keys": rng.standard_normal((4, 6)).astype(np.float32), "pool.counts": counts},
                  str(stage / "checkpoints" / which / "model.safetensors"))
    (stage / "metrics.jsonl").write_text(json.dumps({"epoch": 2, "pool_counts": last.tolist()}) + "\n")
    exp = SimpleNamespace(name="r", folds=[SimpleNamespace(fold=1)], stage_dirs=lambda f: [stage])
    figs = []
    monkeypatch.setattr(P, "save", lambda fig, path: figs.append(fig) or path)
    P.usage_figure(exp, tmp_path / "u.png")
    P.keys_figure(exp, tmp_path / "k.png")
    usage, keys = figs
    heat = usage.axes[0].images[0].get_array()
    assert np.array_equal(np.asarray(heat).sum(0), best.sum(0))  # not the last epoch's 5, 9, 9, 9
    assert "best checkpoint" in usage.axes[0].get_title() and "best checkpoint" in keys.axes[0].get_title()
    assert "1 of 4 prompts used" in keys.axes[0].get_title()


def test_pool_figures_read_the_counting_pass_and_label_carried_slots(tmp_path, monkeypatch):
    """With selection.json (the counting pass after each stage) the figures show it, not the
    running counts of training; stage 1's panel marks what stage 2 carried, and stage 2's slots
    name the stage-1 prompt they hold."""
    import json
    from types import SimpleNamespace

    import numpy as np
    from safetensors.numpy import save_file

    from umbenet_cli.reporting import pool_figures as P

    rng = np.random.default_rng(0)
    s1, s2 = tmp_path / "fold1" / "stage1", tmp_path / "fold1" / "stage2"
    running = np.zeros((8, 4), np.int64)
    running[1] = [9, 9, 9, 9]  # the first steps' random keys: every prompt
    for stage in (s1, s2):
        (stage / "checkpoints" / "best").mkdir(parents=True)
        save_file({"pool.keys": rng.standard_normal((4, 6)).astype(np.float32), "pool.counts": running},
                  str(stage / "checkpoints" / "best" / "model.safetensors"))
    (s1 / "selection.json").write_text(json.dumps(
        {"pool_size": 4, "counts": {"V": [0, 0, 7, 1], "A": [5, 0, 0, 0], "V+A": [1, 1, 0, 0]}}))
    (s2 / "init.json").write_text(json.dumps({"prompts_carried": [2, 0], "carried": 2, "fresh": 2}))
    exp = SimpleNamespace(name="r", folds=[SimpleNamespace(fold=1)], stage_dirs=lambda f: [s1, s2])
    figs = []
    monkeypatch.setattr(P, "save", lambda fig, path: figs.append(fig) or path)
    P.usage_figure(exp, tmp_path / "u.png")
    P.keys_figure(exp, tmp_path / "k.png")
    usage, keys = figs
    heat1 = np.asarray(usage.axes[0].images[0].get_array())
    assert heat1.sum(0).tolist() == [6, 1, 7, 1]  # the counting pass, not 9, 9, 9, 9
    assert [t.get_text() for t in usage.axes[0].get_yticklabels()] == ["V", "A", "V+A"]
    assert "counting pass" in usage.axes[0].get_title()
    assert "no counting pass" in usage.axes[1].get_title()  # stage 2 has none: says so
    bars1 = [b.get_facecolor() for b in usage.axes[2].patches]  # stage 1: carried prompts 0 and 2 in red
    red = bars1[0]
    assert bars1[2] == red and bars1[1] != red and bars1[3] != red
    ticks2 = [t.get_text() for t in usage.axes[3].get_xticklabels()]
    assert ticks2 == ["0<-2", "1<-0", "2", "3"]
    labels = sorted(t.get_text() for t in keys.axes[1].texts)
    assert labels == ["0<-2", "1<-0", "2", "3"]
