"""The one configuration of a UMBEnet model (and of the schedule it is trained with).

Everything the model is built from lives in frozen dataclasses here; nothing is inferred from data
at run time. Sizes that belong to the CLIP backbone (its widths) are read from the backbone's own
config when the model is built, and recorded in every checkpoint.

    cfg = UMBEnetConfig.preset("paper", **{"pool.size": 16, "pool.top_k": 3})
    cfg = cfg.override({"optim.lr": "2e-4"})        # strings are parsed, as from the CLI

Validation reports every problem at once (torchtune's habit), each with the field, the bad value
and the fix.
"""
from __future__ import annotations

from umbenet_cli.errors import UserError

import copy
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from umbenet_cli.data.classes import CLASS_DESCRIPTIONS, MAFW_CLASSES, class_text

MODALITIES: tuple[str, ...] = ("video", "audio", "text")
QUERY_FUNCTIONS: tuple[str, ...] = ("cosine", "l2", "l1")
DEFAULT_BACKBONE = "openai/clip-vit-base-patch16"
PAPER_BACKBONE = "openai/clip-vit-large-patch14"
TINY_BACKBONE = "umbenet/tiny-random-clip"
CLIP_TEXT_POSITIONS = 77  # the text tower's positions in every CLIP checkpoint (the tiny one too)


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class TemporalConfig:
    """Trainable temporal transformer over per-frame CLIP embeddings (visual stream)."""

    layers: int = 1
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    scene_stream: bool = False  # mix a whole-frame (scene) embedding into each face frame


@dataclass(frozen=True)
class AudioConfig:
    """Small audio encoder trained from scratch (the 'imbalanced' encoder's light branch)."""

    input: Literal["waveform", "logmel"] = "waveform"
    sample_rate: int = 16000
    seconds: float = 8.0  # clips are cropped or zero padded to this length
    channels: int = 64  # width of the conv stack
    conv_layers: int = 6
    hidden: int = 256  # width of the first of the two linear layers
    dropout: float = 0.1
    # Parameter-free skip around conv layers 2..n (the mean of the layer's input over the conv's
    # own window). Without it, six LayerNorm + GELU layers do not learn a weak cue at Adam 2e-3
    # (benchmarks/controlled/audio_depth.py). False = the stack as before (older checkpoints).
    residual: bool = True
    # Waveform input only: zero mean and unit variance per clip over its real samples. Without
    # it, quiet audio (|x| ~ 0.01-0.1) is swamped by the first conv's bias. False = as before.
    standardize: bool = True


@dataclass(frozen=True)
class FusionConfig:
    """AdaptiveFusion (eq. 2-3): self-attention over the modality tokens with the modal mask."""

    layers: int = 1
    heads: int = 8
    dropout: float = 0.1


@dataclass(frozen=True)
class PoolConfig:
    """Prompt Pool (eq. 4, 8-9)."""

    size: int = 32  # N
    # L_p, tokens per prompt value. Table 4's "Length" is the whole prompt, pool.length +
    # inherent_length: the authors' prompt_length = 64 is 32 pool tokens and 32 inherent ones.
    length: int = 32
    top_k: int = 5
    query: Literal["cosine", "l2", "l1"] = "cosine"
    # Frequency-balanced selection while training. Off: the paper has none (the authors' code's
    # factor is a constant). On, every prompt is picked within the first steps and training selects
    # differently from evaluation; stage 2's transfer then reads the counts made without it.
    balance: bool = False
    key_loss_weight: float = 0.5  # weight of the key-matching term (1 - cos), L2P's pull constraint
    enabled: bool = True  # False: no pool, inherent prompts only (an ablation)
    # Which of stage 1's prompts stage 2 carries (training.two_stage.activated): "significant"
    # (selected more than uniform selection explains, exact binomial test at transfer_alpha,
    # Bonferroni over prompts x modalities), "above_uniform" (runs saved before the test existed),
    # "any" (selected at least once), "top" (each modality's k most selected), "all", "none".
    transfer: Literal["significant", "above_uniform", "any", "top", "all", "none"] = "significant"
    transfer_alpha: float = 0.01
    # "clip": each clip's own F_fusion is its query (the paper). "batch": the batch mean of F_fusion
    # selects one set of k prompts for the whole batch (the authors' code); a prediction then
    # depends on the other clips of its batch.
    query_scope: Literal["clip", "batch"] = "clip"
    # False: keys stay at their initialisation, out of the optimiser (the authors' code: no
    # key-matching term, and top-k carries no gradient); needs key_loss_weight = 0.
    train_keys: bool = True


@dataclass(frozen=True)
class SFFConfig:
    """Sparse Feature Fusion (eq. 10-13)."""

    hidden: int = 128  # width of W1 (gate "mlp")
    l1_lambda: float = 1e-5  # lambda of eq. 13: lambda * sum |W1|
    # lambda' * mean |gate|: in neither the paper nor the authors' code (they penalise the gate's
    # weight, which is eq. 13); 0 in every preset, kept so that runs saved with it load as trained.
    gate_l1: float = 0.0
    # "mlp": eq. 11-12, sigmoid(W2 ReLU(W1 x)) per token and channel. "scalar": the authors' code,
    # sigmoid(W1 x) with W1: D -> 1, one gate per token.
    gate: Literal["mlp", "scalar"] = "mlp"
    combine: Literal["mean", "sum"] = "mean"  # the k gated prompts averaged (eq. 10-12) or summed (their code)


@dataclass(frozen=True)
class OptimConfig:
    """Training schedule. The paper's is the default; ``authors-code`` is the released code's."""

    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    batch_size: int = 16
    plateau_factor: float = 0.6
    # Cut the lr at the end of the plateau_epochs-th consecutive epoch without a lower validation
    # loss (the paper: 3). torch's ReduceLROnPlateau(patience=p) cuts after p + 1 such epochs, so
    # training.two_stage passes patience = plateau_epochs - 1.
    plateau_epochs: int = 3
    min_lr: float = 1e-7  # stop when the learning rate falls below this
    max_epochs: int = 100
    stop_train_accuracy: float = 0.80  # stop once training accuracy passes this (None-like: 1.0)
    grad_clip: float = 0.0  # max gradient norm; 0 = none (the paper names no clipping)
    # ReduceLROnPlateau's threshold (relative): a validation loss counts as lower only below
    # best * (1 - threshold). torch's default 1e-4; the authors' code 1e-3.
    plateau_threshold: float = 1e-4
    # How stage 1 (one modality per clip) validates. "unimodal": each validation clip with each of
    # its modalities alone; the best checkpoint (which stage 2 starts from) by the mean of the
    # per-modality UARs (then WARs), the lr schedule by the mean of their losses. "all": every
    # clip with all its modalities together, as the other stages validate.
    stage1_val: Literal["unimodal", "all"] = "unimodal"


@dataclass(frozen=True)
class UMBEnetConfig:
    """A whole UMBEnet model: backbone, streams, fusion, prompts and classes."""

    backbone: str = DEFAULT_BACKBONE  # Hugging Face CLIP id or local folder
    classes: tuple[str, ...] = MAFW_CLASSES
    class_descriptions: bool = False  # append a short facial-action description to class names
    num_frames: int = 16  # T
    # Tokens of inherent (task) prompts: the other half of Table 4's prompt length (the authors'
    # code splits prompt_length = 64 into 32 pool + 32 inherent tokens). CLIP's 77 text positions
    # hold [SOS] + pool.length + inherent_length + the class's tokens + [EOS] (checked below).
    inherent_length: int = 32
    # What the fused feature is compared with. "prompts": the paper's class embeddings, class tokens
    # (after P' and the inherent prompts) through the frozen CLIP text tower (eq. 14, 5). "vectors":
    # an ablation, one learned vector per class (no text tower, no pool: needs pool.enabled=false),
    # with the same cosine and the same logit scale.
    classifier: Literal["prompts", "vectors"] = "prompts"
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    sff: SFFConfig = field(default_factory=SFFConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        # Accept lists from JSON; the class order is data, so keep it as given.
        if not isinstance(self.classes, tuple):
            object.__setattr__(self, "classes", tuple(self.classes))
        problems = _validate(self)
        if problems:
            raise ConfigError(problems)

    # ----------------------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "UMBEnetConfig":
        """A named preset (``paper``, ``authors-code``, ``tiny``), with dotted-key overrides."""
        if name not in PRESETS:
            raise ConfigError([f"preset {name!r} not found; available presets = {sorted(PRESETS)}"])
        return PRESETS[name]().override(overrides)

    def override(self, overrides: dict[str, Any]) -> "UMBEnetConfig":
        """A copy with ``{"pool.size": 16, ...}`` applied; strings are parsed to the field's type."""
        data = self.to_dict()
        problems: list[str] = []
        for key, raw in overrides.items():
            parts = key.split(".")
            node, cls_ = data, type(self)
            for i, part in enumerate(parts):
                hints = typing.get_type_hints(cls_)
                if part not in hints:
                    valid = sorted(_field_paths(cls_, ".".join(parts[:i])))
                    problems.append(f"unknown key {key!r}; valid keys = {valid}")
                    break
                if i == len(parts) - 1:
                    try:
                        node[part] = _coerce(raw, hints[part])
                    except (TypeError, ValueError) as exc:
                        problems.append(f"{key}={raw!r}: {exc}")
                elif dataclasses.is_dataclass(hints[part]):
                    node, cls_ = node[part], hints[part]
                else:
                    problems.append(f"unknown key {key!r}: {'.'.join(parts[: i + 1])} has no sub-fields")
                    break
        if problems:
            raise ConfigError(problems)
        return type(self).from_dict(data)

    # ------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UMBEnetConfig":
        return _build(cls, data, prefix="")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "UMBEnetConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> "UMBEnetConfig":
        """A config the library itself wrote (checkpoint config.json, run.json): those are full
        dumps, so a field they lack was added later, and takes the value that rebuilds the model
        they were written for (``SAVED_BEFORE``), not today's default."""
        data = copy.deepcopy(data)
        optim = data.get("optim")
        if isinstance(optim, dict) and "plateau_patience" in optim:
            # Saved when the field held torch's patience (a cut after patience + 1 bad epochs).
            optim.setdefault("plateau_epochs", int(optim.pop("plateau_patience")) + 1)
        for section, fields in SAVED_BEFORE.items():
            if isinstance(data.get(section), dict):
                for name, value in fields.items():
                    data[section].setdefault(name, value)
        return cls.from_dict(data)

    @property
    def prompt_length(self) -> int:
        """Table 4's "Length", the overall prompt: pool.length (0 without the pool) + inherent_length."""
        return (self.pool.length if self.pool.enabled else 0) + self.inherent_length

    def diff(self, other: "UMBEnetConfig") -> list[str]:
        """Human-readable differences ``key: mine != theirs`` (for checkpoint mismatches)."""
        a, b = _flatten(self.to_dict()), _flatten(other.to_dict())
        return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# Fields added after configs were first saved, with the value that keeps an older saved config's
# model as it was trained (see ``UMBEnetConfig.from_saved``).
SAVED_BEFORE: dict[str, dict[str, Any]] = {
    "audio": {"residual": False, "standardize": False},
    "pool": {"transfer": "above_uniform",  # the rule before the counting pass and its test
             "query_scope": "clip", "train_keys": True},
    "sff": {"gate": "mlp", "combine": "mean"},
    "optim": {"plateau_threshold": 1e-4, "stage1_val": "all"},
}


# ------------------------------------------------------------------------------- presets
def _paper() -> UMBEnetConfig:
    """Paper, section 4.1 and Table 4 (MAFW main result): ViT-L/14, prompt length 64 (32 pool +
    32 inherent tokens), N 32, k 5."""
    return UMBEnetConfig(backbone=PAPER_BACKBONE, inherent_length=32, pool=PoolConfig(size=32, length=32, top_k=5))


def _authors_code() -> UMBEnetConfig:
    """The authors' released model and schedule (model_unimod_mafw_vat_64_32_5.py and its train
    script): prompt_length 64 = 32 pool + 32 inherent tokens, N 32, k 5; the batch mean of F_fusion
    selects one set of k prompts per batch against keys that never train; one scalar gate per token,
    the k gated prompts summed, 0.01 * sum |W| of the gate's weight; Adam 2e-4, wd 1e-6, plateau
    x0.3 with threshold 1e-3 (torch patience 2: a cut after 3 bad epochs), 30 epochs, batch 8, no
    gradient clipping, no stop on training accuracy."""
    return UMBEnetConfig(
        backbone=PAPER_BACKBONE,
        inherent_length=32,
        pool=PoolConfig(size=32, length=32, top_k=5, query_scope="batch", train_keys=False, key_loss_weight=0.0),
        sff=SFFConfig(gate="scalar", combine="sum", l1_lambda=0.01),
        optim=OptimConfig(lr=2e-4, weight_decay=1e-6, batch_size=8, plateau_factor=0.3,
                          plateau_epochs=3, plateau_threshold=1e-3, max_epochs=30, stop_train_accuracy=1.0),
    )


def _default() -> UMBEnetConfig:
    """ViT-B/16 with the paper's pool and schedule: fits one consumer GPU."""
    return UMBEnetConfig()


def _tiny() -> UMBEnetConfig:
    """Random-weight tiny CLIP and small everything: builds in well under a second, for tests."""
    return UMBEnetConfig(
        backbone=TINY_BACKBONE,
        num_frames=4,
        inherent_length=4,
        temporal=TemporalConfig(layers=1, heads=2, dropout=0.0),
        audio=AudioConfig(seconds=2.0, channels=8, conv_layers=6, hidden=16, dropout=0.0),
        fusion=FusionConfig(layers=1, heads=2, dropout=0.0),
        pool=PoolConfig(size=6, length=4, top_k=2),
        sff=SFFConfig(hidden=8, l1_lambda=1e-4),
        optim=OptimConfig(batch_size=4),
    )


PRESETS = {"default": _default, "paper": _paper, "authors-code": _authors_code, "tiny": _tiny}


# ---------------------------------------------------------------------------- validation
def _validate(c: UMBEnetConfig) -> list[str]:
    p: list[str] = []

    def need(ok: bool, msg: str) -> None:
        if not ok:
            p.append(msg)

    need(len(c.classes) >= 2, f"classes={list(c.classes)}: need at least 2 classes")
    need(len(set(x.lower() for x in c.classes)) == len(c.classes), f"classes={list(c.classes)}: names repeat")
    need(c.num_frames >= 1, f"num_frames={c.num_frames}: must be >= 1")
    need(c.inherent_length >= 1, f"inherent_length={c.inherent_length}: must be >= 1")
    need(c.temporal.layers >= 0, f"temporal.layers={c.temporal.layers}: must be >= 0")
    need(c.temporal.heads >= 1, f"temporal.heads={c.temporal.heads}: must be >= 1")
    need(c.fusion.heads >= 1, f"fusion.heads={c.fusion.heads}: must be >= 1")
    need(c.fusion.layers >= 1, f"fusion.layers={c.fusion.layers}: must be >= 1")
    need(c.audio.input in ("waveform", "logmel"), f"audio.input={c.audio.input!r}: use 'waveform' or 'logmel'")
    need(c.audio.sample_rate == 16000 or c.audio.input == "waveform",
         f"audio.sample_rate={c.audio.sample_rate}: log-mel features (whisper.audio) need 16000")
    need(c.audio.seconds > 0, f"audio.seconds={c.audio.seconds}: must be > 0")
    need(c.audio.conv_layers >= 1, f"audio.conv_layers={c.audio.conv_layers}: must be >= 1")
    need(c.classifier in ("prompts", "vectors"), f"classifier={c.classifier!r}: use 'prompts' or 'vectors'")
    need(c.classifier != "vectors" or not c.pool.enabled,
         "classifier=vectors with pool.enabled=true: learned class vectors take no prompts, so P' would reach "
         "nothing; set pool.enabled=false as well")
    need(c.pool.query in QUERY_FUNCTIONS, f"pool.query={c.pool.query!r}: choose one of {list(QUERY_FUNCTIONS)}")
    need(c.pool.size >= 1, f"pool.size={c.pool.size}: must be >= 1")
    need(c.pool.length >= 1, f"pool.length={c.pool.length}: must be >= 1")
    need(1 <= c.pool.top_k <= c.pool.size,
         f"pool.top_k={c.pool.top_k}: must be between 1 and pool.size={c.pool.size}")
    rules = typing.get_args(typing.get_type_hints(PoolConfig)["transfer"])
    need(c.pool.transfer in rules, f"pool.transfer={c.pool.transfer!r}: choose one of {list(rules)}")
    need(0 < c.pool.transfer_alpha < 1,
         f"pool.transfer_alpha={c.pool.transfer_alpha}: must be in (0, 1) (the test's family-wise error rate)")
    p.extend(_prompt_fits(c))
    need(c.pool.query_scope in ("clip", "batch"), f"pool.query_scope={c.pool.query_scope!r}: use 'clip' or 'batch'")
    need(c.pool.train_keys or c.pool.key_loss_weight == 0,
         f"pool.train_keys=false with pool.key_loss_weight={c.pool.key_loss_weight}: the key-matching term moves "
         f"only the keys, which are frozen; set pool.key_loss_weight=0")
    need(c.sff.l1_lambda >= 0 and c.sff.gate_l1 >= 0, "sff.l1_lambda and sff.gate_l1 must be >= 0")
    need(c.sff.gate in ("mlp", "scalar"), f"sff.gate={c.sff.gate!r}: use 'mlp' (eq. 11-12) or 'scalar' (the authors' code)")
    need(c.sff.combine in ("mean", "sum"), f"sff.combine={c.sff.combine!r}: use 'mean' or 'sum'")
    need(c.optim.lr > 0, f"optim.lr={c.optim.lr}: must be > 0")
    need(c.optim.batch_size >= 1, f"optim.batch_size={c.optim.batch_size}: must be >= 1")
    need(0 < c.optim.plateau_factor < 1, f"optim.plateau_factor={c.optim.plateau_factor}: must be in (0, 1)")
    need(c.optim.plateau_epochs >= 1, f"optim.plateau_epochs={c.optim.plateau_epochs}: must be >= 1 (epochs without "
         f"a lower validation loss before the lr is cut)")
    need(c.optim.plateau_threshold >= 0, f"optim.plateau_threshold={c.optim.plateau_threshold}: must be >= 0 "
         f"(torch's default 1e-4)")
    need(c.optim.stage1_val in ("unimodal", "all"),
         f"optim.stage1_val={c.optim.stage1_val!r}: use 'unimodal' (each modality alone) or 'all'")
    need(c.optim.grad_clip >= 0, f"optim.grad_clip={c.optim.grad_clip}: must be >= 0 (0 = no clipping)")
    return p


def _prompt_fits(c: UMBEnetConfig) -> list[str]:
    """The prompt must fit CLIP's text positions: [SOS] + pool.length + inherent_length + the
    class's tokens + [EOS] <= 77, counted with CLIP's own byte-pair encoding (``clip_bpe``), so
    that a run that cannot fit is refused before anything is loaded (a study checks every run's
    config first). The model, built with the backbone's tokenizer and its own position count,
    checks again."""
    from umbenet_cli.model.clip_bpe import clip_tokens

    if c.classifier != "prompts":
        return []
    try:
        texts = [class_text(name, c.class_descriptions) for name in c.classes]
    except KeyError as exc:
        return [f"class_descriptions=true but class {exc.args[0]!r} has no description; "
                f"known: {sorted(CLASS_DESCRIPTIONS)}; set class_descriptions=false"]
    try:
        tokens, text = max(((clip_tokens(t), t) for t in texts), key=lambda x: x[0])  # the first longest
    except FileNotFoundError:  # no open-clip-torch vocabulary: the model's check is the one
        return []
    need = 1 + c.prompt_length + tokens + 1
    if need <= CLIP_TEXT_POSITIONS:
        return []
    pool = f"pool.length {c.pool.length} + " if c.pool.enabled else ""
    return [f"prompt length {c.prompt_length} ({pool}inherent_length {c.inherent_length}): [SOS] + "
            f"{c.prompt_length} prompt tokens + {tokens} tokens for {text!r} + [EOS] "
            f"= {need} exceed CLIP's {CLIP_TEXT_POSITIONS} text positions; shorten pool.length or "
            f"inherent_length" + (", or set class_descriptions=false" if c.class_descriptions else "")]


# ------------------------------------------------------------------------------- helpers
def _field_paths(cls: type, prefix: str) -> list[str]:
    out = []
    for f in fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        hint = typing.get_type_hints(cls)[f.name]
        out.extend(_field_paths(hint, key) if dataclasses.is_dataclass(hint) else [key])
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def _coerce(raw: Any, hint: Any) -> Any:
    """Parse ``raw`` (possibly a CLI string) into a value of type ``hint``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise ValueError(f"choose one of {list(choices)}")
        return raw
    if origin in (tuple, list):
        items = [s.strip() for s in raw.split(",")] if isinstance(raw, str) else list(raw)
        if not items or any(not s for s in items):
            raise ValueError("expected a comma-separated list")
        return items
    if origin in (typing.Union, types.UnionType):
        return _coerce(raw, next(a for a in typing.get_args(hint) if a is not type(None)))
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return raw.lower() in ("true", "1", "yes", "on")
        raise ValueError("expected true or false")
    if hint is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError("expected an integer")
        return int(raw)
    if hint is float:
        return float(raw)
    if hint is str:
        return str(raw)
    if dataclasses.is_dataclass(hint):
        raise ValueError("is a section; set one of its fields, e.g. pool.size=16")
    return raw


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError([f"unknown key {prefix}{k!r} in configuration" for k in unknown])
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        kwargs[name] = _build(hint, value, f"{prefix}{name}.") if dataclasses.is_dataclass(hint) else value
        if typing.get_origin(hint) is tuple:
            kwargs[name] = tuple(value)
    return cls(**kwargs)


__all__ = [
    "AudioConfig", "ConfigError", "FusionConfig", "MODALITIES", "OptimConfig", "PoolConfig", "PRESETS",
    "SFFConfig", "TemporalConfig", "UMBEnetConfig", "replace",
]
