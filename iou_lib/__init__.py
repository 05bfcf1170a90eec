"""iou_lib: IoU (Jaccard) metrics and IoU-optimizing losses for segmentation, and the workbook's engine.

The core (``iou_lib.metrics``, ``iou_lib.losses``, ``iou_lib.relax``) depends on torch only. Drawing
(``iou_lib.viz``) and widgets (``iou_lib.widgets``) are imported on demand.
"""

from iou_lib.validation import set_value_checks, value_checks

__version__ = "0.1.0"

__all__ = ["__version__", "set_value_checks", "value_checks"]
