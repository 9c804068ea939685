"""Model weights on disk, as safetensors (no pickle: loading a file never runs code)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn

from bigbench.errors import OutputError
from bigbench.results import file_mode


def save_weights(model: nn.Module, path: Path) -> None:
    """Write the model's state dict to ``path`` atomically."""
    import os

    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write weights ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
