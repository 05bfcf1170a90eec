"""Speed and memory of iou_lib's losses and metrics against peer libraries and plain baselines.

Run ``python -m benchmarks`` (``--quick`` for a smoke run, ``--help`` for the options). The committed
snapshot of a full run is ``benchmarks/RESULTS.md``; run outputs go to ``benchmarks/results/``
(git-ignored).
"""
