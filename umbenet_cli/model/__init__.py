"""The UMBEnet model. Never imports Typer, the training package or the data pipelines.

    from umbenet_cli.model import UMBEnet, UMBEnetConfig
    model = UMBEnet(UMBEnetConfig.preset("tiny"))
"""
from umbenet_cli.model.backbone import Backbone, BackboneError, load_backbone
from umbenet_cli.model.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from umbenet_cli.model.config import MODALITIES, PRESETS, ConfigError, UMBEnetConfig
from umbenet_cli.model.umbenet import Batch, LossParts, Output, UMBEnet, subset_code

__all__ = [
    "Backbone", "BackboneError", "Batch", "CheckpointError", "ConfigError", "LossParts", "MODALITIES",
    "Output", "PRESETS", "UMBEnet", "UMBEnetConfig", "load_backbone", "load_checkpoint", "load_weights",
    "save_checkpoint", "subset_code",
]
