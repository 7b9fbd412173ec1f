"""The detector core. Importing it first quiets one known-harmless warning of bitsandbytes
(``_MissingKernelsPackage``)."""

import logging


class _MissingKernelsPackage(logging.Filter):
    """Drops bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" when the cause is only
    that the optional ``kernels`` package is not installed.

    bitsandbytes logs it at import time on every CPU with AVX512-BF16, then uses its own built-in 4-bit kernel.
    Installing ``kernels`` would not help offline: it downloads the kernel from the Hub on first use. Any other
    cause (``kernels`` installed but failing) and every other bitsandbytes message still get through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        cause = record.args[0] if isinstance(record.args, tuple) and record.args else None
        missing = isinstance(cause, ModuleNotFoundError) and cause.name == "kernels"
        return not (missing and str(record.msg).startswith("Failed to load CPU gemm_4bit_forward"))


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_MissingKernelsPackage())
