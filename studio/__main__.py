"""`python -m studio` is the same as the `studio` command."""

import os
import sys

from studio.cli import main

code = main()
if "WORLD_SIZE" in os.environ:
    from studio.training.distributed import current

    if current().active:
        # One of torchrun's processes, its work done and its process group left: leave
        # now. Torch's C++ threads of the group can still be unwinding while the
        # interpreter tears down, and now and then abort the process ("terminate called
        # without an active exception"): the launcher would report a finished run as a
        # crash.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)
raise SystemExit(code)
