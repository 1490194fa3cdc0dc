"""The model card (``README.md``) of an exported model, in the Hugging Face convention.

YAML front matter (``library_name``, ``pipeline_tag``, ``tags``, ``datasets``, ``metrics``,
``model-index`` with the test scores) followed by Markdown: what the model is, how to use it,
its classes, the evaluation table per modality subset (the numbers of the run's
``eval-test.json``, percent with two decimals), how it was trained, the command lines, its limits
and how to publish it. Everything comes from the run's own files; nothing is typed in by hand.
"""
from __future__ import annotations

import math
import shlex

import yaml

from umbenet_cli.evaluation.metrics import RULE_LABELS, RULES
from umbenet_cli.model.config import PRESETS, TINY_BACKBONE, UMBEnetConfig

DIGITS = 2  # percent with two decimals, as every table of the toolkit
SUBSET_MEANING = {"V": "video", "A": "audio", "T": "text"}


def score(value) -> tuple[float | None, float | None]:
    """(mean, std) as fractions from an eval summary cell: ``[mean, std]``, ``{"mean", "std"}`` or None."""
    if value is None:
        return None, None
    if isinstance(value, dict):
        return value.get("mean"), value.get("std")
    if isinstance(value, (list, tuple)):
        return value[0], (value[1] if len(value) > 1 else None)
    return float(value), None


def percent(value, folds: int = 1) -> str:
    """``[0.4567, 0.012]`` over 5 folds -> ``45.67 ± 1.20``; one fold -> ``45.67`` (a std over one
    fold is no spread); None -> ``n/a``."""
    mean, std = score(value)
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    text = f"{100 * mean:.{DIGITS}f}"
    if folds > 1 and std is not None:
        text += f" ± {100 * std:.{DIGITS}f}"
    return text


def eval_columns(eval_test: dict) -> list[tuple[str, str]]:
    """(column title, summary key) of the scores the summary holds: UAR, WAR and, where the run
    has neutral, both without-neutral rules."""
    cols = [("UAR %", "uar"), ("WAR %", "war")]
    rows = eval_test.get("subsets") or []
    for r in RULES:
        for k in ("uar", "war"):
            key = f"{k}_without_neutral_{r}"
            if any(row.get(key) is not None for row in rows):
                cols.append((f"{k.upper()} % w/o neutral ({RULE_LABELS[r]})", key))
    return cols


def eval_table(eval_test: dict) -> list[str]:
    """The Markdown table of ``eval-test.json``: one row per modality subset."""
    cols = eval_columns(eval_test)
    lines = ["| subset | modalities | " + " | ".join(t for t, _ in cols) + " |",
             "|---|---|" + "---:|" * len(cols)]
    for row in eval_test.get("subsets") or []:
        mods = ", ".join(SUBSET_MEANING[p] for p in row["name"].split("+"))
        folds = row.get("folds") or len(eval_test.get("folds") or [None])
        lines.append(f"| {row['name']} | {mods} | " + " | ".join(percent(row.get(k), folds) for _, k in cols) + " |")
    return lines


def _front_matter(config: UMBEnetConfig, meta: dict, source: dict, run: dict, eval_test: dict | None) -> str:
    dataset = (run.get("extra") or {}).get("dataset") or _dataset_name(run)
    fm: dict = {
        "library_name": "umbenet",
        "pipeline_tag": "video-classification",
        "tags": ["umbenet", "emotion-recognition", "multimodal", "missing-modalities", "video", "audio", "text"],
        "metrics": ["uar", "war"],
    }
    if dataset:
        fm["datasets"] = [dataset]
    if config.backbone != TINY_BACKBONE:
        fm["base_model"] = config.backbone
    if eval_test:
        split = f"fold {source['fold']} test" if source["fold"] is not None else "test"
        if len(eval_test.get("folds") or []) > 1:
            split = f"test, mean over folds {', '.join(str(f) for f in eval_test['folds'])}"
        metrics = []
        for row in eval_test.get("subsets") or []:
            for title, key in (("UAR", "uar"), ("WAR", "war")):
                mean, _ = score(row.get(key))
                if mean is not None:
                    metrics.append({"type": key, "name": f"{title} ({row['name']})", "value": round(100 * mean, DIGITS)})
        fm["model-index"] = [{"name": source["run"], "results": [{
            "task": {"type": "video-classification", "name": "emotion recognition"},
            "dataset": {"name": dataset or "unknown", "type": dataset or "unknown", "split": split},
            "metrics": metrics}]}]
    return "---\n" + yaml.safe_dump(fm, sort_keys=False, allow_unicode=True) + "---\n"


def _dataset_name(run: dict) -> str | None:
    cache = run.get("cache")
    if not cache:
        return None
    from pathlib import Path

    try:
        from umbenet_cli.data.cache_io import features_dir, table_spec

        spec = table_spec(features_dir(cache))
        if spec is not None and spec.dataset:
            return spec.dataset
    except Exception:  # the cache may live on another machine: the card falls back to no name
        pass
    return Path(cache).name or None


def _flat(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


def _set_value(value) -> str | None:
    """A config value as ``--set`` parses it back (``UMBEnetConfig.override``); None where it cannot."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) if value and all(str(v) for v in value) else None
    if isinstance(value, (int, float, str)):
        return str(value)
    return None  # None (an unset optional field): --set has no spelling for it


def config_options(model: dict, preset: str | None) -> tuple[str | None, list[str], list[str]]:
    """(``--preset``, the ``--set KEY=VALUE`` items, keys --set cannot express) that rebuild the
    resolved config ``model`` (run.json's ``model``). The items are the keys where ``model`` differs
    from the preset's values, so they carry the run's own ``--set`` options and any that a resumed
    run applied later. ``classes`` is left out: ``--cache`` and ``--exclude-classes`` set it. A run
    that did not record its preset gets the preset its config differs least from."""
    try:
        resolved = _flat(UMBEnetConfig.from_saved(model).to_dict())
    except Exception:  # a run.json this version cannot read: no --set rather than no card
        return preset, [], []

    def differing(name: str) -> list[str]:
        base = _flat(UMBEnetConfig.preset(name).to_dict())
        return [k for k in resolved if k != "classes" and resolved[k] != base.get(k)]

    if preset not in PRESETS:
        preset = min(PRESETS, key=lambda name: len(differing(name)))
    sets, unsaid = [], []
    for key in differing(preset):
        value = _set_value(resolved[key])
        (sets if value is not None else unsaid).append(f"{key}={value}" if value is not None else key)
    return preset, sets, unsaid


def reconstructed_command(run: dict) -> str:
    """The ``umbenet train`` line that redoes the run from its run.json (when no commands.txt):
    its options, ``--preset`` and the ``--set`` items of its resolved config (``config_options``)."""
    parts = ["umbenet train", f"--cache {shlex.quote(str(run.get('cache')))}",
             f"--name {shlex.quote(run.get('run_dir', '').split('/')[-1])}",
             f"--stage {run.get('stage')}", f"--modalities {','.join(run.get('modalities') or [])}",
             f"--seed {run.get('seed')}", f"--val-fraction {run.get('val_fraction')}"]
    if run.get("fold"):
        parts.append(f"--fold {run['fold']}")
    if run.get("exclude_classes"):
        parts.append(f"--exclude-classes {shlex.quote(','.join(run['exclude_classes']))}")
    unsaid: list[str] = []
    if isinstance(run.get("model"), dict):
        preset, sets, unsaid = config_options(run["model"], (run.get("extra") or {}).get("preset"))
        parts.append(f"--preset {preset}")
        parts += [f"--set {shlex.quote(item)}" for item in sets]
    line = " ".join(parts)
    if not isinstance(run.get("model"), dict):
        line += "  # plus the resolved config of config.json"
    elif unsaid:
        line += f"  # plus {', '.join(unsaid)} as in config.json (--set has no spelling for them)"
    return line


def model_card(config: UMBEnetConfig, meta: dict, source: dict, run: dict, eval_test: dict | None,
               fold_eval: dict | None, stage_result: dict | None, commands: list[str]) -> str:
    """The whole README.md of an exported model folder."""
    name = source["run"]
    where = (f"fold {source['fold']}" if source["fold"] is not None else source["split"])
    bb = meta.get("backbone", {})
    optim = config.optim
    out = [_front_matter(config, meta, source, run, eval_test),
           f"# {name}: UMBEnet ({where}, {source['stage']}, {source['checkpoint']} checkpoint)", "",
           "UMBEnet (Unimodal/Multimodal Bridging Emotion network: prompt pool, sparse feature fusion, "
           "CLIP text encoder as classifier) for emotion recognition from video, audio and text, any of "
           "them missing. Exported with `umbenet export` from the run "
           f"`{name}`: {where}, stage `{source['stage']}`, the `{source['checkpoint']}` checkpoint "
           + (f"(best validation epoch {stage_result.get('best_epoch')}, " if stage_result and source["checkpoint"] == "best" else "(")
           + f"step {source.get('global_step')}).", "",
           "## Use", "",
           "```bash",
           "umbenet predict clip.mp4 --run THIS_FOLDER_OR_HUB_ID",
           "```", "",
           "```python",
           "from umbenet_cli.model import UMBEnet",
           "model = UMBEnet.load(\"THIS_FOLDER_OR_HUB_ID\")  # strict load; the backbone by its id",
           "```", "",
           f"The frozen CLIP towers are not in this folder: they are loaded by id, `{bb.get('name')}`, "
           f"and must have the weight fingerprint `{bb.get('fingerprint')}` (checked at load).", "",
           "## Classes", "",
           "Output order: " + ", ".join(f"`{c}`" for c in config.classes) + ".", ""]
    out += ["## Evaluation", ""]
    if eval_test:
        folds = eval_test.get("folds") or []
        over = (f"mean ± sample std over folds {', '.join(str(f) for f in folds)}" if len(folds) > 1
                else f"one fold ({folds[0] if folds and folds[0] is not None else 'train/test split'}): no std")
        out += [f"Test split, {over}; percent, {DIGITS} decimals; from `eval-test.json` (also in this "
                f"folder). One row per modality subset given to the model; a clip that has none of a "
                f"subset's modalities is left out of that row.", ""]
        out += eval_table(eval_test) + [""]
        rules = eval_test.get("rules") or {}
        for key in ("uar", *(f"without_neutral_{r}" for r in RULES)):
            if rules.get(key):
                out.append(f"- {key.replace('_', ' ')}: {rules[key]}")
        out.append("")
        if fold_eval and len(folds) > 1:
            out += [f"This folder's weights are fold {source['fold']}'s; that fold alone scored "
                    + "; ".join(f"{e['name']} UAR {percent(e.get('uar'))}%" for e in fold_eval["subsets"]) + ".", ""]
        if fold_eval and fold_eval.get("checkpoint") and not str(fold_eval["checkpoint"]).endswith(source["checkpoint"]):
            out += [f"Note: the evaluation used `{fold_eval['checkpoint']}`, not the exported "
                    f"`{source['checkpoint']}` checkpoint.", ""]
    else:
        out += ["Not evaluated: the run had no `eval-test.json` when it was exported "
                "(`umbenet eval RUN`, then export again).", ""]
    out += ["## Training", "",
            f"- data: `{run.get('cache')}` (dataset {_dataset_name(run) or 'unknown'}), "
            f"{'fold ' + str(run.get('fold')) if run.get('fold') else 'train/test split'}, "
            f"validation {run.get('val_fraction')} of the training clips (stratified), seed {run.get('seed')}",
            f"- stages: {run.get('stage')} (this model: {source['stage']}); modalities "
            f"{', '.join(run.get('modalities') or [])}"
            + (f"; classes left out: {', '.join(run['exclude_classes'])}" if run.get("exclude_classes") else ""),
            f"- optimiser: lr {optim.lr:g}, batch {optim.batch_size}, at most {optim.max_epochs} epochs; "
            f"prompt pool {'size ' + str(config.pool.size) + ', top-' + str(config.pool.top_k) if config.pool.enabled else 'off'}",
            f"- backbone: `{bb.get('name')}` (fingerprint `{bb.get('fingerprint')}`), frozen"]
    if stage_result:
        out.append(f"- stage ended: {stage_result.get('stop_reason')} after {stage_result.get('epochs')} epochs; "
                   f"best epoch {stage_result.get('best_epoch')}, validation UAR {percent(stage_result.get('best_val_uar'))}%")
    out.append(f"- library versions: " + ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items()))
    out += ["", "The whole resolved configuration is `config.json`; the run's options `run.json`.", "",
            "## Command lines", "", "```bash"]
    out += commands or [reconstructed_command(run)]
    out += ["```", "", "## Limits", ""]
    if config.backbone == TINY_BACKBONE:
        out.append("- **Built on the tiny CLIP with random weights** (a test fixture): its scores check the "
                   "pipeline, not the method. Do not use it to recognise emotions.")
    out += ["- Trained and tested on one dataset's clips; other recording conditions, languages and "
            "cultures are untested.",
            "- Emotion labels are annotators' judgements of short clips, not a person's inner state; "
            "do not use the model to make decisions about people.",
            "- Scores on other papers' splits are not comparable unless the split (fold lists) is the same.",
            "", "## Publishing", "",
            "With huggingface_hub's own CLI (after `hf auth login`):", "", "```bash",
            "hf upload OWNER/NAME THIS_FOLDER . --repo-type model", "```", "",
            "then `umbenet predict clip.mp4 --run OWNER/NAME` fetches it into the Hugging Face cache.", "",
            "## Files", "",
            "`model.safetensors` (weights), `config.json` (resolved config), `meta.json` (backbone id and "
            "fingerprint, versions, source run), `classes.json`, `run.json`, `eval-test.json`, `README.md`, "
            "`COMPLETE`. No pickles.", ""]
    return "\n".join(out)


def parse_card_table(text: str) -> list[dict[str, str]]:
    """The evaluation table of a card as a list of {column: cell} (for tests and tools)."""
    lines = [l for l in text.splitlines() if l.startswith("| ")]
    if not lines:
        return []
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in l.strip("|").split("|")))) for l in lines[1:]]


def front_matter(text: str) -> dict:
    """The YAML front matter of a card."""
    if not text.startswith("---\n"):
        return {}
    return yaml.safe_load(text[4:text.index("\n---\n", 4)]) or {}


__all__ = ["model_card", "eval_table", "parse_card_table", "front_matter", "percent", "score"]
