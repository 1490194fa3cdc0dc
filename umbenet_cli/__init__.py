"""UMBEnet toolkit: prep, train, eval, report and predict for multimodal DFER."""

__version__ = "0.1.0"
