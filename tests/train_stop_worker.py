"""One rank of `poft train` cut after N epochs as if killed (poft.training.train's stop_after_epochs hook), for
tests/test_multiprocess.py's resume test; the rest is the real CLI path.

    accelerate launch --multi_gpu --num_processes 2 tests/train_stop_worker.py N train --data ... --out RUN
"""

import functools
import sys

import poft.training
from poft.cli import main

if __name__ == "__main__":
    # cmd_train imports `train` from poft.training when it runs: the hook is in place by then.
    poft.training.train = functools.partial(poft.training.train, stop_after_epochs=int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
