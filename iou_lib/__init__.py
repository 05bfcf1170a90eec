"""iou_lib: IoU (Jaccard) metrics and IoU-optimizing losses for segmentation, and the workbook's engine.

The core (``iou_lib.metrics``, ``iou_lib.losses``, ``iou_lib.relax``) depends on torch and numpy only
(``pip install .``); the training engine, drawing (``iou_lib.viz``) and widgets (``iou_lib.widgets``)
need the ``book`` extra (``pip install ".[book]"``) and are imported on demand. Every loss and metric
takes ``mode``, ``reduction`` (losses) and ``validate_args``; see the README section "Using iou_lib in your
own training loop".
"""

from iou_lib.validation import set_value_checks, value_checks

__version__ = "0.1.0"

__all__ = ["__version__", "set_value_checks", "value_checks"]
