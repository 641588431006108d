"""Keep TensorFlow's native symbols out of the process-wide symbol table (call before ``import tensorflow``).

The TensorFlow 2.20 / 2.21 wheels on PyPI ship ``tensorflow/python/pywrap_dlopen_global_flags.py``, a helper
meant only for monolithic builds. When it is present, ``tensorflow/python/pywrap_tensorflow.py`` loads
``_pywrap_tensorflow_internal.so`` with ``RTLD_GLOBAL``, which promotes ``libtensorflow_framework.so.2`` and
``libtensorflow_cc.so.2`` -- and the LLVM/MLIR statically linked into them -- to the global symbol scope. Any
native library loaded afterwards that exports its own, different LLVM binds to TensorFlow's copy instead. Triton
>= 3.7 (``libtriton.so``, a hard dependency of the CUDA builds of torch on Linux, imported by ``torch._dynamo``
and therefore by transformers) is one: its static initializers (``llvm::DebugCounter`` in ``PassBuilder.cpp``)
then run against TensorFlow's ABI-incompatible LLVM and the interpreter dies with SIGSEGV on ``import triton``.
See tensorflow/tensorflow#124205; the fix upstream (tensorflow/tensorflow#124230) drops the helper from the
shared wheels, so TensorFlow loads ``RTLD_LOCAL`` again.

:func:`keep_tensorflow_symbols_local` does the same from the outside: a ``None`` entry in ``sys.modules`` makes
the helper's import raise ``ImportError``, and ``pywrap_tensorflow`` takes its ordinary shared-wheel path
(``RTLD_LOCAL``). Shared wheels need no ``RTLD_GLOBAL``: TensorFlow's own extension modules and custom-op
libraries link ``libtensorflow_framework.so.2`` explicitly. On a wheel without the helper this is a no-op.

This module imports nothing heavy, so every TensorFlow code path in es-biomed can call it at import time.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["keep_tensorflow_symbols_local"]

logger = logging.getLogger(__name__)

_GLOBAL_FLAGS_MODULE = "tensorflow.python.pywrap_dlopen_global_flags"


def keep_tensorflow_symbols_local() -> bool:
    """Make a later ``import tensorflow`` load its native libraries ``RTLD_LOCAL``; idempotent.

    Returns:
        ``True`` when TensorFlow will load (or has loaded) ``RTLD_LOCAL``; ``False`` when it was already
        imported with ``RTLD_GLOBAL`` before this call, which is too late to undo (a later ``import triton``
        in this process may then crash).
    """
    loaded = sys.modules.get(_GLOBAL_FLAGS_MODULE)
    if loaded is not None:
        logger.debug("TensorFlow was imported with RTLD_GLOBAL before es-biomed could keep its symbols local")
        return False
    sys.modules[_GLOBAL_FLAGS_MODULE] = None  # type: ignore[assignment]
    return True
