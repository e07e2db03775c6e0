"""seg_core: the pure library behind the Cityscapes segmentation workbench (no UI imports)."""

__version__ = "0.1.0"
