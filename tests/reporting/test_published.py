"""The published numbers are transcribed as in the project's note and the paper's Tables 1-4."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from umbenet_cli.reporting.published import PUBLISHED, TABLE4, published_for, table4_for

NOTE = Path("/work/shared/notes/datasets.md")


def one(dataset, method, subset, classes, block="trained"):
    found = [p for p in published_for(dataset, subset, classes, block) if p.method == method]
    assert len(found) == 1, (dataset, method, subset, classes, block, found)
    return found[0].uar, found[0].war


@pytest.mark.parametrize("key, expected", [
    (("mafw", "UMBEnet", "V", 11), (41.00, 55.04)),
    (("mafw", "UMBEnet", "A", 11), (13.02, 17.34)),
    (("mafw", "UMBEnet", "V+A+T", 11), (53.33, 68.03)),
    (("mafw", "UMBEnet", "V+T", 10), (45.03, 61.28)),
    (("mafw", "UMBEnet", "A", 10), (15.96, 24.93)),
    (("dfew", "UMBEnet", "V", 7), (64.55, 73.93)),
    (("dfew", "UMBEnet", "V+A", 7), (62.23, 74.83)),
    (("ferv39k", "UMBEnet", "V", 7), (44.01, 52.10)),
    (("mafw", "DFER-CLIP", "V", 11), (39.89, 52.55)),
    (("ferv39k", "MAE-DFER", "V", 7), (43.12, 52.07)),
    (("mafw", "HiCMAE", "V+A", 11), (42.69, 56.21)),
    (("mafw", "T-ESFL", "V+A+T", 11), (31.00, 50.29)),
])
def test_spot_checks(key, expected):
    assert one(*key) == expected


def test_missing_modality_block():
    assert one("mafw", "UMBEnet", "V", 11, "missing") == (40.29, 53.41)
    assert one("mafw", "UMBEnet", "V+A+T", 11, "missing") == (54.04, 68.90)
    assert one("mafw", "UMBEnet", "V", 10, "missing") == (42.86, 59.13)  # paper Table 3 (not in the note)
    assert published_for("mafw", "A+T", 11, "missing") == []  # the paper has no A+T row


def test_table4():
    assert table4_for("mafw", "V+A+T", 11, 32, 8, 5, "2-stage").uar == 51.95
    assert (table4_for("mafw", "V+A+T", 10, 64, 16, 5, "2-stage").war) == 60.04
    assert (table4_for("mafw", "V+A+T", 11, 64, 32, 3, "2-stage").war) == 57.45
    one_stage = table4_for("mafw", "V+A+T", 11, 64, 32, 5, "1-stage")
    assert (one_stage.uar, one_stage.war) == (52.85, 66.77)
    assert table4_for("mafw", "V+A+T", 10, 64, 32, 5, "1-stage").uar == 48.13
    assert len([a for a in TABLE4 if a.strategy == "2-stage"]) == 18  # 9 pool settings x 2 class settings
    # The paper's default pool row is its Table 3 full-modality model.
    for c in (11, 10):
        t4 = table4_for("mafw", "V+A+T", c, 64, 32, 5, "2-stage")
        assert (t4.uar, t4.war) == one("mafw", "UMBEnet", "V+A+T", c)


def test_no_duplicate_keys():
    keys = [(p.dataset, p.method, p.subset, p.classes, p.block) for p in PUBLISHED]
    assert len(keys) == len(set(keys))


@pytest.mark.skipif(not NOTE.is_file(), reason="the project's notes are not here")
def test_every_number_of_the_note():
    text = NOTE.read_text().split("## Published numbers to compare with")[1].split("\n## ")[0]
    text = " ".join(text.split())
    t3 = text.split("UMBEnet (paper, Table 3, MAFW 11-class):")[1].split("- UMBEnet (paper, Table 1)")[0]
    eleven, rest = t3.split("10-class (neutral left out):")
    ten, missing = rest.split("Missing-modality inference with the full model:")
    pair = re.compile(r"(V\+A\+T|V\+T|V\+A|V|A|T) (\d+\.\d+)/(\d+\.\d+)")
    for chunk, classes, block in ((eleven, 11, "trained"), (ten, 10, "trained"), (missing, 11, "missing")):
        found = pair.findall(chunk)
        assert len(found) == 6
        for subset, u, w in found:
            assert one("mafw", "UMBEnet", subset, classes, block) == (float(u), float(w))
    for method, line in (("DFER-CLIP", "DFER-CLIP:"), ("MAE-DFER", "MAE-DFER:")):
        part = text.split(f"- {line}")[1].split(" - ")[0]
        for dataset, u, w in re.findall(r"(DFEW|FERV39k|MAFW) (\d+\.\d+)/(\d+\.\d+)", part):
            classes = 11 if dataset == "MAFW" else 7
            assert one(dataset.lower(), method, "V", classes) == (float(u), float(w))
    tesfl = text.split("T-ESFL (MAFW paper):")[1]
    for subset, u, w in pair.findall(tesfl)[:3]:
        assert one("mafw", "T-ESFL", subset, 11) == (float(u), float(w))
    assert one("mafw", "HiCMAE", "V+A", 11) == tuple(map(float, re.search(
        r"HiCMAE \(audio-visual\): MAFW (\d+\.\d+)/(\d+\.\d+)", text).groups()))
    t1 = re.search(r"DFEW (\d+\.\d+)/(\d+\.\d+) \(V\), (\d+\.\d+)/(\d+\.\d+) \(V\+A\); FERV39k (\d+\.\d+)/(\d+\.\d+)",
                   text).groups()
    assert one("dfew", "UMBEnet", "V", 7) == (float(t1[0]), float(t1[1]))
    assert one("dfew", "UMBEnet", "V+A", 7) == (float(t1[2]), float(t1[3]))
    assert one("ferv39k", "UMBEnet", "V", 7) == (float(t1[4]), float(t1[5]))


@pytest.mark.skipif(not NOTE.is_file(), reason="the project's notes are not here")
def test_newer_anchors_of_the_note():
    """The note's newer audio-visual and video anchors, each with its source, and the split caveat."""
    from umbenet_cli.reporting.published import NOTES

    text = " ".join(NOTE.read_text().split("Newer anchors")[1].split("\n## ")[0].split())
    expect = {("MMA-DFER", "V+A"): r"MMA-DFER .*?MAFW (\d+\.\d+)/(\d+\.\d+).*?DFEW (\d+\.\d+)/(\d+\.\d+)",
              ("S4D/UniLearn", "V"): r"S4D/UniLearn .*?MAFW (\d+\.\d+)/(\d+\.\d+), DFEW (\d+\.\d+)/(\d+\.\d+)",
              ("FineCLIPER", "V"): r"FineCLIPER .*?MAFW (\d+\.\d+)/(\d+\.\d+), DFEW (\d+\.\d+)/(\d+\.\d+)",
              ("GM-GReFEL", "V"): r"GM-GReFEL .*?MAFW (\d+\.\d+)/(\d+\.\d+), DFEW (\d+\.\d+)/(\d+\.\d+)"}
    for (method, subset), pattern in expect.items():
        u11, w11, u7, w7 = map(float, re.search(pattern, text).groups())
        assert one("mafw", method, subset, 11) == (u11, w11)
        assert one("dfew", method, subset, 7) == (u7, w7)
    assert any("same split" in n and "5-fold" in n for n in NOTES)
    assert any("HumanOmni" in n and "52.94" in n for n in NOTES)
    assert not [p for p in PUBLISHED if p.method == "HumanOmni"]
