"""MAFW adapter on small trees that mimic the release (placeholder .mp4 files; nothing decoded)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipelines.sources import ScanError, apply_policy, scan_mafw, scan_source
from pipelines.sources.layout import read_text_lines
from umbenet_cli.data.classes import MAFW_CLASSES

# id -> 1-based single_label, as in single-set.xlsx
LABELS = {
    "00001": 1, "00002": 5, "00003": 4, "00004": 11, "00005": 6,
    "00006": 2, "00007": 5, "00008": 7, "00009": 9, "00010": 8,
}
FOLD = {clip: i % 5 + 1 for i, clip in enumerate(LABELS)}
NEUTRAL = 5
EN = {c: f"A person in clip {c} lowers the head and looks away." for c, l in LABELS.items() if l != NEUTRAL}
ZH = {c: f"一个人低下了头，看向别处{c}" for c in EN}


def make_mafw(
    root: Path,
    *,
    split_folder: str = "Train & Test Set",
    under_labels: bool = False,
    variants: tuple[str, ...] = ("no_caption", "with_caption"),
    suffix: bool = True,
    numeric_names: bool = False,
    headers: tuple[str, str] = ("name", "single_label"),
    descriptive: bool = True,
    caption_encoding: str = "gbk",
    labels: dict[str, int] | None = None,
    folds: dict[str, int] | None = None,
) -> Path:
    """Write a mimic MAFW release under ``root`` and return it."""
    labels = dict(LABELS if labels is None else labels)
    folds = dict(FOLD if folds is None else folds)
    (root / "clips").mkdir(parents=True)
    for clip in labels:
        (root / "clips" / f"{clip}.mp4").write_bytes(b"")
    (root / "Labels").mkdir()

    def name(clip: str) -> object:
        if numeric_names:
            return int(clip)
        return f"{clip}.mp4" if suffix else clip

    pd.DataFrame({headers[0]: [name(c) for c in labels], headers[1]: list(labels.values())}).to_excel(
        root / "Labels" / "single-set.xlsx", index=False)
    if descriptive:
        pd.DataFrame({
            "name": [name(c) for c in labels],
            "e_cap": [EN.get(c, "") for c in labels],
            "c_cap": [ZH.get(c, "") for c in labels],
        }).to_excel(root / "Labels" / "descriptive_text.xlsx", index=False)
    base = (root / "Labels" if under_labels else root) / split_folder / "single"
    for variant in variants:
        for k in range(1, 6):
            folder = base / variant / f"set_{k}"
            folder.mkdir(parents=True)
            for part, members in (("train", [c for c in labels if folds[c] != k]),
                                  ("test", [c for c in labels if folds[c] == k])):
                lines = []
                for clip in members:
                    file = f"{clip}.mp4" if suffix else clip
                    label = dict(enumerate(MAFW_CLASSES, 1)).get(labels[clip], "unknown")
                    if variant == "no_caption":
                        lines.append(f"{file} {label}")
                    else:
                        lines.append(f"{file}\t{label}\t{ZH.get(clip, '')}\t{EN.get(clip, '')}")
                data = "\n".join(lines) + "\n"
                path = folder / f"{part}.txt"
                if variant == "with_caption":
                    path.write_bytes(data.encode(caption_encoding))
                else:
                    path.write_text(data, encoding="utf-8")
    return root


def kinds(scan) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in scan.problems:
        out.setdefault(p.kind, []).append(p)
    return out


def test_happy_path_labels_folds_and_text(tmp_path: Path) -> None:
    scan = scan_mafw(make_mafw(tmp_path / "mafw"))
    assert scan.problems == []
    assert scan.dataset == "mafw" and scan.protocol == "5-fold" and scan.classes == MAFW_CLASSES
    assert len(scan.records) == len(LABELS)
    by_id = {r.clip_id: r for r in scan.records}
    assert set(by_id) == set(LABELS)
    for clip, record in by_id.items():
        assert record.label == LABELS[clip] - 1
        assert record.fold == FOLD[clip]
        assert record.media_kind == "video" and record.media_path.is_file()
        assert record.split is None
    assert MAFW_CLASSES[by_id["00001"].label] == "anger"
    assert MAFW_CLASSES[by_id["00004"].label] == "disappointment"
    for neutral in ("00002", "00007"):
        assert by_id[neutral].text is None and by_id[neutral].text_source == "none"
    assert by_id["00003"].text == EN["00003"] and by_id["00003"].text_source == "annotation"


def test_asr_text_mode(tmp_path: Path) -> None:
    scan = scan_mafw(make_mafw(tmp_path / "mafw"), text="asr")
    assert {r.text_source for r in scan.records} == {"asr"}
    assert all(r.text is None for r in scan.records)


def test_registry_runs_mafw(tmp_path: Path) -> None:
    scan = scan_source("MAFW", make_mafw(tmp_path / "mafw"))
    assert len(scan.records) == len(LABELS)
    with pytest.raises(ValueError, match="available sources"):
        scan_source("afew", tmp_path)


def test_gbk_lines_keep_chinese(tmp_path: Path) -> None:
    root = make_mafw(tmp_path / "mafw")
    test_list = root / "Train & Test Set/single/with_caption/set_1/test.txt"
    with pytest.raises(UnicodeDecodeError):
        test_list.read_bytes().decode("utf-8")
    lines, bad = read_text_lines(test_list, gbk=True)
    assert bad == []
    fields = lines[0][1].split("\t")
    assert fields[0] == "00001.mp4" and fields[2] == ZH["00001"] and fields[3] == EN["00001"]


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_with_caption_lists_give_folds_and_captions(tmp_path: Path, encoding: str) -> None:
    root = make_mafw(tmp_path / "mafw", variants=("with_caption",), descriptive=False,
                     caption_encoding=encoding)
    scan = scan_mafw(root)  # auto: only with_caption exists
    assert [p.kind for p in scan.problems] == ["missing-file"]  # captions from the lists: noted
    by_id = {r.clip_id: r for r in scan.records}
    assert {c: r.fold for c, r in by_id.items()} == FOLD
    assert by_id["00001"].text == EN["00001"]
    assert by_id["00002"].text is None and by_id["00002"].text_source == "none"


def test_no_caption_variant_with_caption_fallback(tmp_path: Path) -> None:
    root = make_mafw(tmp_path / "mafw", descriptive=False)
    scan = scan_mafw(root, split_variant="no_caption")
    assert {r.clip_id: r.text for r in scan.records if r.text} == EN


def test_explicit_variant_missing_is_fatal(tmp_path: Path) -> None:
    root = make_mafw(tmp_path / "mafw", variants=("no_caption",))
    with pytest.raises(ScanError, match="with_caption.*not found.*no_caption"):
        scan_mafw(root, split_variant="with_caption")


def test_captions_missing_everywhere_is_fatal_unless_asr(tmp_path: Path) -> None:
    root = make_mafw(tmp_path / "mafw", variants=("no_caption",), descriptive=False)
    with pytest.raises(ScanError, match="descriptive_text.xlsx.*text='asr'"):
        scan_mafw(root)
    assert len(scan_mafw(root, text="asr").records) == len(LABELS)


@pytest.mark.parametrize("layout", [
    {"split_folder": "train&test set"},
    {"split_folder": "Train_Test_Set", "under_labels": True},
    {"split_folder": "TRAIN AND TEST SET"},
    {"suffix": False},
    {"numeric_names": True},
    {"headers": ("Name", " Single Label ")},
    {"headers": ("NAME", "single-label"), "suffix": False},
])
def test_layout_variants(tmp_path: Path, layout: dict) -> None:
    scan = scan_mafw(make_mafw(tmp_path / "mafw", **layout))
    assert scan.problems == []
    assert {r.clip_id: (r.label, r.fold) for r in scan.records} == {
        c: (LABELS[c] - 1, FOLD[c]) for c in LABELS}
    assert {r.clip_id: r.text for r in scan.records if r.text} == EN


def test_fatal_layout_errors_name_what_and_where(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="does not exist"):
        scan_mafw(tmp_path / "nowhere")
    root = make_mafw(tmp_path / "mafw")
    (root / "Labels" / "single-set.xlsx").unlink()
    with pytest.raises(ScanError, match="single-set.xlsx.*Labels"):
        scan_mafw(root)

    root = make_mafw(tmp_path / "mafw2")
    shutil.rmtree(root / "Train & Test Set")
    with pytest.raises(ScanError, match="split lists not found.*Train & Test Set"):
        scan_mafw(root)

    root = make_mafw(tmp_path / "mafw3")
    shutil.rmtree(root / "clips")
    with pytest.raises(ScanError, match="clips"):
        scan_mafw(root)


def test_bad_options(tmp_path: Path) -> None:
    root = make_mafw(tmp_path / "mafw")
    with pytest.raises(ValueError, match="caption"):
        scan_mafw(root, text="subtitles")
    with pytest.raises(ValueError, match="no_caption"):
        scan_mafw(root, split_variant="both")


def test_label_file_problems(tmp_path: Path) -> None:
    labels = dict(LABELS, **{"00011": 12})  # 12 is no class
    root = make_mafw(tmp_path / "mafw", labels=labels, folds=dict(FOLD, **{"00011": 1}))
    sheet = root / "Labels" / "single-set.xlsx"
    df = pd.read_excel(sheet)
    extra = pd.DataFrame({"name": ["00003.mp4", "00005.mp4"], "single_label": [4, 1]})
    pd.concat([df, extra]).to_excel(sheet, index=False)  # 00003 exact duplicate; 00005 conflicting
    (root / "clips" / "00008.mp4").unlink()
    scan = scan_mafw(root)
    found = kinds(scan)
    assert [p.clip_id for p in found["unknown-label"]] == ["00011"]
    assert [p.clip_id for p in found["duplicate-line"]] == ["00003"]
    assert [p.clip_id for p in found["duplicate-id"]] == ["00005"]
    assert [p.clip_id for p in found["absent-on-disk"]] == ["00008"]
    assert [p.clip_id for p in found["unlabelled-clip"]] == ["00011"]
    assert "00011" not in {r.clip_id for r in scan.records}
    assert len(scan.records) == len(LABELS)  # duplicates collapse to one record each

    kept = apply_policy(scan, "skip")
    assert {r.clip_id for r in kept.records} == set(LABELS) - {"00005", "00008"}
    with pytest.raises(ScanError, match="(?s)absent-on-disk: 1.*on_problem='skip'.*2 affected clips"):
        apply_policy(scan, "stop")


def test_split_list_problems(tmp_path: Path) -> None:
    root = make_mafw(tmp_path / "mafw", variants=("no_caption",))
    sets = root / "Train & Test Set/single/no_caption"
    # 00001 (fold 1) also in fold 2's test list; 00003 in train and test of its fold 3
    with open(sets / "set_2/test.txt", "a") as f:
        f.write("00001.mp4 anger\n")
    with open(sets / "set_3/train.txt", "a") as f:
        f.write("00003.mp4 happiness\n")
    # 00004 labelled differently in one list; a line that cannot be parsed; an unknown clip
    text = (sets / "set_4/test.txt").read_text().replace("00004.mp4 disappointment", "00004.mp4 sadness")
    (sets / "set_4/test.txt").write_text(text + "justonetoken\n99999.mp4 anger\n")
    (sets / "set_5/test.txt").unlink()  # fold 5's test clips (00005, 00010) are in no test list
    scan = scan_mafw(root)
    found = kinds(scan)
    folds = {p.clip_id: p.detail for p in found["inconsistent-folds"]}
    assert set(folds) == {"00001", "00003", "00005", "00010"}
    assert "folds [1, 2]" in folds["00001"]
    assert "train and test lists of fold(s) [3]" in folds["00003"]
    assert "folds [5] are missing" in folds["00005"]
    assert [p.detail for p in found["missing-split-list"]][0].startswith("no test.txt")
    assert [p.clip_id for p in found["label-mismatch"]] == ["00004"]
    assert {r.clip_id: r.label for r in scan.records}["00004"] == 10  # the label file wins
    assert len(found["bad-line"]) == 1
    assert [p.clip_id for p in found["unlabelled-clip"]] == ["99999"]
    skipped = apply_policy(scan, "skip")
    assert {r.clip_id for r in skipped.records} == set(LABELS) - set(folds)
    assert all(r.fold is not None for r in skipped.records)


def test_missing_caption_and_bad_encoding(tmp_path: Path) -> None:
    root = make_mafw(tmp_path / "mafw", variants=("with_caption",), descriptive=False)
    # 00001's lines (its test list and four train lists): bytes that are neither UTF-8 nor GBK
    for path in sorted((root / "Train & Test Set/single/with_caption").glob("set_*/*.txt")):
        lines = path.read_bytes().split(b"\n")
        lines = [b"00001.mp4\tanger\t\xff\xfe\t" + EN["00001"].encode()
                 if line.startswith(b"00001.mp4") else line for line in lines]
        path.write_bytes(b"\n".join(lines))
    scan = scan_mafw(root)
    found = kinds(scan)
    assert {p.clip_id for p in found["bad-encoding"]} == {"00001"}
    assert len(found["bad-encoding"]) == 5
    by_id = {r.clip_id: r for r in scan.records}
    assert by_id["00001"].fold == 1 and by_id["00001"].label == 0  # the ASCII fields still count
    # every caption of 00001 came from a bad line, so it has none: a missing-text warning
    assert by_id["00001"].text is None
    assert [p.clip_id for p in found["missing-text"]] == ["00001"]
    assert apply_policy(scan, "stop") is not None  # warnings only: the run goes on


def test_empty_caption_is_missing_text(tmp_path: Path) -> None:
    root = make_mafw(tmp_path / "mafw")
    sheet = root / "Labels" / "descriptive_text.xlsx"
    df = pd.read_excel(sheet, dtype=str, na_filter=False)
    df.loc[df["name"] == "00003.mp4", "e_cap"] = "   "
    df.to_excel(sheet, index=False)
    scan = scan_mafw(root)
    by_id = {r.clip_id: r for r in scan.records}
    assert by_id["00003"].text is None and by_id["00003"].text_source == "none"
    assert [p.clip_id for p in scan.problems if p.kind == "missing-text"] == ["00003"]


SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "mafw"


@pytest.mark.skipif(not (SAMPLE / "Labels" / "single-set.xlsx").is_file(),
                    reason="sample_data/mafw not generated")
def test_scans_sample_data() -> None:
    """The committed sample (see sample_data/PROVENANCE.md): 33 clips, 3 per class, folds of
    7/7/7/6/6, no caption for the three neutral clips and, on purpose, for 00019 and 00022."""
    scan = scan_mafw(SAMPLE)
    assert len(scan.records) == 33 and scan.errors() == []
    assert sorted((p.kind, p.clip_id) for p in scan.problems) == [
        ("missing-text", "00019"), ("missing-text", "00022")]
    by_id = {r.clip_id: r for r in scan.records}
    assert sorted(sum(r.fold == k for r in scan.records) for k in range(1, 6)) == [6, 6, 7, 7, 7]
    assert MAFW_CLASSES[by_id["00001"].label] == "helplessness" and by_id["00001"].fold == 5
    assert {c for c, r in by_id.items() if r.text is None} == {"00003", "00009", "00011", "00019", "00022"}
    # The GBK with_caption lists give the same folds and the same English captions.
    other = scan_mafw(SAMPLE, split_variant="with_caption")
    assert {r.clip_id: (r.fold, r.text) for r in other.records} == {
        c: (r.fold, r.text) for c, r in by_id.items()}



@pytest.mark.skipif(not (SAMPLE / "Labels" / "single-set.xlsx").is_file(),
                    reason="sample_data/mafw not generated")
def test_sample_gbk_captions_match_the_sheet(tmp_path: Path) -> None:
    """Without descriptive_text.xlsx, captions come from the sample's GBK lists, unchanged."""
    copy = Path(shutil.copytree(SAMPLE, tmp_path / "mafw"))
    (copy / "Labels" / "descriptive_text.xlsx").unlink()
    from_lists = scan_mafw(copy)
    assert "missing-file" in {p.kind for p in from_lists.problems}
    assert {r.clip_id: r.text for r in from_lists.records} == {
        r.clip_id: r.text for r in scan_mafw(SAMPLE).records}
