"""lassm: a research workbook for LaSSM 3D instance segmentation."""

__version__ = "0.1.0"
