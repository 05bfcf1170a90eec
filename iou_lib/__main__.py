"""``python -m iou_lib``: the command line of :mod:`iou_lib.cli`."""

import sys

from iou_lib.cli import main

sys.exit(main())
