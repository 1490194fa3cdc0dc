"""Configuration: presets, overrides from strings, every problem reported at once."""
from __future__ import annotations

import pytest

from umbenet_cli.data.classes import MAFW_CLASSES
from umbenet_cli.model import ConfigError, UMBEnet, UMBEnetConfig
from umbenet_cli.model.config import _flatten


def test_paper_preset_is_the_papers_setting():
    cfg = UMBEnetConfig.preset("paper")
    assert (cfg.pool.size, cfg.pool.top_k) == (32, 5)
    assert cfg.backbone == "openai/clip-vit-large-patch14"
    o = cfg.optim
    assert (o.optimizer, o.lr, o.batch_size, o.plateau_factor, o.plateau_epochs, o.min_lr, o.stop_train_accuracy) == (
        "adam", 2e-3, 16, 0.6, 3, 1e-7, 0.8)
    assert cfg.classes == MAFW_CLASSES
    # The paper has no frequency balancing and names no gradient clipping; the default preset
    # (the paper's pool and schedule on ViT-B/16) follows it.
    for name in ("paper", "default"):
        c = UMBEnetConfig.preset(name)
        assert (c.pool.balance, c.optim.grad_clip) == (False, 0.0)


@pytest.mark.parametrize("preset", ["default", "paper", "authors-code"])
def test_prompt_length_is_table4s_overall_length(preset):
    # The authors' prompt_length = 64: [SOS] + 32 pool tokens + 32 inherent + class name + "." + [EOS]
    cfg = UMBEnetConfig.preset(preset)
    assert (cfg.pool.length, cfg.inherent_length, cfg.prompt_length) == (32, 32, 64)
    assert cfg.override({"pool.enabled": "false", "classifier": "prompts"}).prompt_length == 32


def test_prompt_too_long_for_clip_is_refused_when_the_config_is_validated():
    # No backbone is loaded; CLIP's byte-pair encoding counts "helplessness." as 4 tokens
    # (help les sness .): 1 + 48 + 32 + 4 + 1 = 86 > 77
    with pytest.raises(ConfigError) as err:
        UMBEnetConfig.preset("paper", **{"pool.length": 48})
    text = str(err.value)
    assert "prompt length 80 (pool.length 48 + inherent_length 32)" in text
    assert "+ 4 tokens for 'helplessness.' + [EOS] = 86 exceed CLIP's 77 text positions; shorten pool.length or " \
           "inherent_length" in text
    # 1 + 40 + 31 + 4 + 1 = 77 fits; one more does not
    assert UMBEnetConfig.preset("paper", **{"pool.length": 40, "inherent_length": 31}).prompt_length == 71
    with pytest.raises(ConfigError, match="= 78 exceed"):
        UMBEnetConfig.preset("paper", **{"pool.length": 40, "inherent_length": 32})
    # The paper's 64 with the facial-action descriptions: helplessness's takes 15 tokens, 81 in all.
    # (A tokenizer-free lower bound let this through; every run of a study then failed when its
    # model was built.)
    with pytest.raises(ConfigError, match=r"\+ 15 tokens for 'helplessness, .*= 81 exceed.*or set class_descriptions=false"):
        UMBEnetConfig.preset("paper", class_descriptions=True)


def test_the_configs_token_count_is_clips_tokenizers(backbone):
    """The config counts with CLIP's byte-pair encoding (no backbone loaded): the tokenizer of a
    CLIP checkpoint (the tiny backbone's is CLIP's vocabulary) agrees on every class text of every
    dataset, with and without descriptions, and on text BPE splits unevenly."""
    from umbenet_cli.data.classes import CLASS_DESCRIPTIONS, DATASET_CLASSES, class_text
    from umbenet_cli.model.clip_bpe import clip_tokens

    texts = {class_text(c, d) for classes in DATASET_CLASSES.values() for c in classes
             for d in (False, True) if not d or c.lower() in CLASS_DESCRIPTIONS}
    texts |= {"Hello, world! It's 2026 & we're testing <b>this</b>...", "naïve café, résumé",
              "a photo of a helplessly disappointed face.", "zzzzqqqxxj"}
    tok = backbone.tokenizer
    counts = {t: (clip_tokens(t), len(tok(t)["input_ids"]) - 2) for t in texts}
    assert all(ours == theirs for ours, theirs in counts.values()), counts
    assert clip_tokens("zzzzqqqxxj") > 2  # not one token per word: the count is BPE's


# What the authors' released model file and train script run (model_unimod_mafw_vat_64_32_5.py),
# and what the paper's equations say, where the two differ.
AUTHORS_CODE = {
    "backbone": "openai/clip-vit-large-patch14",
    "pool.length": 32, "inherent_length": 32,  # prompt_length = 64: 32 pool + 32 inherent tokens
    "pool.size": 32, "pool.top_k": 5, "pool.balance": False,  # their factor is a constant
    "pool.query_scope": "batch",  # torch.mean(x_embed, dim=0): one top-k for the whole batch
    "pool.train_keys": False, "pool.key_loss_weight": 0.0,  # no key term; top-k carries no gradient
    "sff.gate": "scalar", "sff.combine": "sum",  # sigmoid(Linear(D -> 1)) per token, out.sum(dim=0)
    "sff.l1_lambda": 0.01, "sff.gate_l1": 0.0,  # 0.01 * sum |alpha[0].weight|, nothing on gate values
    "optim.optimizer": "adam", "optim.lr": 2e-4, "optim.weight_decay": 1e-6, "optim.batch_size": 8,
    "optim.plateau_factor": 0.3, "optim.plateau_epochs": 3,  # torch patience 2: a cut after 3 bad epochs
    "optim.plateau_threshold": 1e-3, "optim.max_epochs": 30, "optim.grad_clip": 0.0,
    "optim.stop_train_accuracy": 1.0,
}
PAPER_EQUATIONS = {"pool.query_scope": "clip", "pool.train_keys": True, "pool.key_loss_weight": 0.5,
                   "sff.gate": "mlp", "sff.combine": "mean", "sff.l1_lambda": 1e-5, "sff.gate_l1": 0.0,
                   "optim.plateau_threshold": 1e-4}


def test_authors_code_preset():
    flat = _flatten(UMBEnetConfig.preset("authors-code").to_dict())
    assert {k: flat[k] for k in AUTHORS_CODE} == AUTHORS_CODE


@pytest.mark.parametrize("preset", ["paper", "default"])
def test_paper_and_default_keep_the_papers_equations(preset):
    flat = _flatten(UMBEnetConfig.preset(preset).to_dict())
    assert {k: flat[k] for k in PAPER_EQUATIONS} == PAPER_EQUATIONS


def test_configs_saved_before_the_authors_options_load_as_they_were_trained():
    saved = UMBEnetConfig.preset("tiny").to_dict()
    for section, names in {"pool": ("query_scope", "train_keys"), "sff": ("gate", "combine"),
                           "optim": ("plateau_threshold",)}.items():
        for name in names:
            saved[section].pop(name)
    saved["sff"]["gate_l1"] = 0.01  # the old authors-code preset's extra term still loads
    cfg = UMBEnetConfig.from_saved(saved)
    assert (cfg.pool.query_scope, cfg.pool.train_keys, cfg.sff.gate, cfg.sff.combine, cfg.sff.gate_l1,
            cfg.optim.plateau_threshold) == ("clip", True, "mlp", "mean", 0.01, 1e-4)


def test_frozen_keys_need_no_key_matching_term():
    with pytest.raises(ConfigError, match="pool.train_keys=false with pool.key_loss_weight=0.5: .* set "
                                          "pool.key_loss_weight=0"):
        UMBEnetConfig.preset("tiny", **{"pool.train_keys": "false"})


def test_configs_saved_with_torch_patience_keep_their_schedule():
    saved = UMBEnetConfig.preset("tiny").to_dict()
    saved["optim"].pop("plateau_epochs")
    saved["optim"]["plateau_patience"] = 3  # torch's patience: a cut after 4 bad epochs
    assert UMBEnetConfig.from_saved(saved).optim.plateau_epochs == 4


def test_default_backbone_is_vit_b16():
    assert UMBEnetConfig().backbone == "openai/clip-vit-base-patch16"


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match=r"available presets = \['authors-code', 'default', 'paper', 'tiny'\]"):
        UMBEnetConfig.preset("papr")


def test_overrides_parse_strings_like_the_cli():
    cfg = UMBEnetConfig.preset("tiny").override(
        {"pool.size": "16", "pool.query": "l1", "optim.lr": "2e-4", "pool.balance": "true",
         "classes": "happy,sad,neutral"})
    assert (cfg.pool.size, cfg.pool.query, cfg.optim.lr, cfg.pool.balance) == (16, "l1", 2e-4, True)
    assert cfg.classes == ("happy", "sad", "neutral")


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError) as err:
        UMBEnetConfig.preset("tiny", **{"pool.sise": 3, "pool.query": "dot", "optim.lr": "fast", "pool.top_k": "x"})
    problems = err.value.problems
    assert len(problems) == 4
    text = str(err.value)
    assert "unknown key 'pool.sise'" in text and "pool.size" in text  # lists the valid keys
    assert "choose one of ['cosine', 'l2', 'l1']" in text


def test_cross_field_validation():
    with pytest.raises(ConfigError, match="pool.top_k=9: must be between 1 and pool.size=6"):
        UMBEnetConfig.preset("tiny", **{"pool.top_k": 9})


def test_json_round_trip_and_diff():
    cfg = UMBEnetConfig.preset("paper", **{"pool.size": 16})
    assert UMBEnetConfig.from_json(cfg.to_json()) == cfg
    assert cfg.diff(UMBEnetConfig.preset("paper")) == ["pool.size: 16 != 32"]


def test_prompt_that_cannot_fit_the_text_tower_is_refused(backbone, monkeypatch):
    # A backbone whose tokenizer makes more tokens than CLIP's count at config time (here: a config
    # check that counts none) is refused when the model is built, with the tokenizer's own count.
    from umbenet_cli.model import clip_bpe

    monkeypatch.setattr(clip_bpe, "clip_tokens", lambda text: 0)
    cfg = UMBEnetConfig.preset("paper", backbone="umbenet/tiny-random-clip", class_descriptions=True)
    with pytest.raises(ConfigError, match="exceed the text tower's 77 positions"):
        UMBEnet(cfg, backbone=backbone)
    UMBEnet(cfg.override({"class_descriptions": False}), backbone=backbone)  # names alone fit


def test_vision_holds_most_parameters_at_full_size():
    # The paper's imbalanced encoder: at ViT-B/16 widths the frozen image tower dwarfs audio and text.
    from umbenet_cli.model.audio import AudioEncoder
    from umbenet_cli.model.text import TextStream

    audio = sum(p.numel() for p in AudioEncoder(512, UMBEnetConfig().audio).parameters())
    text = sum(p.numel() for p in TextStream(512).parameters())
    vit_b16_image_tower = 86_000_000
    assert audio + text < 0.02 * vit_b16_image_tower


@pytest.mark.parametrize("preset", ["default", "paper", "authors-code", "tiny"])
@pytest.mark.parametrize("dataset", ["mafw", "dfew", "ferv39k"])
def test_every_preset_fits_every_dataset(backbone, preset, dataset):
    # The tiny backbone has CLIP's vocabulary and 77 positions, so token budgets are the real ones.
    from umbenet_cli.data.classes import DATASET_CLASSES

    cfg = UMBEnetConfig.preset(preset, backbone="umbenet/tiny-random-clip")
    cfg = cfg.override({"classes": list(DATASET_CLASSES[dataset])})
    model = UMBEnet(cfg, backbone=backbone)
    assert model.class_prompts.eos_pos.max().item() < 77
