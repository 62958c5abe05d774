"""The test suite.

Bytecode is written while the suite runs, even where ``PYTHONDONTWRITEBYTECODE`` is set (as in
CI's environment): otherwise each of the suite's workers and each ``kap-outcomes`` process its
tests start compiles the app's modules from source again, and each worker every test module.
The files go where Python always puts them, ``__pycache__`` beside each source, which git
ignores. This runs first, before the conftest imports the app, and what it sets reaches the
xdist workers and every process a test starts.
"""

import os
import sys

os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
