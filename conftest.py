"""pytest set-up shared by tests/, the iou_lib doctests and the nbval runs of the notebooks."""

import os

# A notebook training cell (iou_lib.budget) stops before a plan longer than 15 minutes unless the reader
# confirms it. The suite runs the notebooks unattended, and a busy machine inflates the estimates, so it
# confirms them all (the notebook kernels inherit this environment).
os.environ.setdefault("IOU_RUN_LONG", "1")
