"""Errors that mean "the user asked for something impossible": the CLI prints them as one line, exit 2."""

from __future__ import annotations


class UserError(ValueError):
    """Generic bad input (one line, for the user)."""


class GpuUnavailable(RuntimeError):
    """No WebGPU adapter (or no wgpu/wgpudawn package) for --backend gpu."""


def _collect() -> tuple[type[BaseException], ...]:
    from .train.checkpoint import CheckpointError
    from .config import ConfigError

    errs: list[type[BaseException]] = [UserError, GpuUnavailable, ConfigError, CheckpointError,
                                       FileNotFoundError, IsADirectoryError, PermissionError]
    try:
        from .data.bpe import TokenizerError
        from .data.datasets import DatasetError
        from .data.splits import SplitError
        from .data.tokenfile import TokenFileError
        from .gpu.executor import GpuUnavailable as NoAdapter  # what gpu/native.open_device raises

        errs += [DatasetError, SplitError, TokenFileError, TokenizerError, NoAdapter]
    except ImportError:  # pragma: no cover - during bootstrap only
        pass
    return tuple(errs)


USER_ERRORS = _collect()
