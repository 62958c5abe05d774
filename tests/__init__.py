"""The test suite.

Two settings are made here, first, before the conftest imports the app; they reach the xdist
workers and every process a test starts:

- Bytecode is written while the suite runs, even where ``PYTHONDONTWRITEBYTECODE`` is set (as in
  CI's environment): otherwise each of the suite's workers and each ``kap-outcomes`` process its
  tests start compiles the app's modules from source again, and each worker every test module.
  The files go where Python always puts them, ``__pycache__`` beside each source, which git
  ignores.
- Scratch files go to memory where the machine has a RAM-backed ``/dev/shm`` (and ``TMPDIR`` is
  not set): the suite's SQLite databases, ``tmp_path``, the throwaway PostgreSQL clusters. The
  app opens SQLite with ``synchronous=FULL``, so every commit waits for an fsync, about 3 ms
  on a disk and nothing on tmpfs: thousands of commits of test data that no power cut will ever
  threaten. SQLite still issues every sync; what is tested is the same. Set ``TMPDIR`` to keep
  them on a disk.
"""

import os
import shutil
import sys
import tempfile

os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

_RAM = "/dev/shm"
_ENOUGH = 2 << 30
"""Free bytes the RAM-backed directory must have (a run uses far less)."""


def _scratch_in_memory() -> None:
    if "TMPDIR" in os.environ or not os.path.isdir(_RAM) or not os.access(_RAM, os.W_OK):
        return
    if shutil.disk_usage(_RAM).free < _ENOUGH:
        return
    os.environ["TMPDIR"] = _RAM
    tempfile.tempdir = _RAM


_scratch_in_memory()
