"""Read a ``.safetensors`` file one tensor at a time with plain reads (no memory map).

Loading a 7B model's weights into a model that already lives on its device should cost the host
one tensor, not the file: ``safetensors``' own loaders map the whole file into the process (its
pages count in the process's RSS as they are read) or return every tensor at once. Here each tensor
is read into a buffer of its own size, handed over, and dropped before the next one.

>>> for name, tensor in read_tensors("critic/critic.safetensors"):   # doctest: +SKIP
...     params[name].copy_(tensor)
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import torch

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def tensor_index(path: str | Path) -> tuple[int, dict[str, dict]]:
    """(offset of the data section, {name: {"dtype", "shape", "data_offsets"}}) of a safetensors file."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return 8 + size, header


def read_tensors(path: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, CPU tensor)`` for every tensor of the file, in file order; each tensor owns its
    buffer, read when it is reached."""
    start, index = tensor_index(path)
    with open(path, "rb", buffering=0) as f:
        for name, info in sorted(index.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            begin, end = info["data_offsets"]
            dtype = DTYPES.get(info["dtype"])
            if dtype is None:
                raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, which ovr does not read")
            buf = bytearray(end - begin)
            f.seek(start + begin)
            view, got = memoryview(buf), 0
            while got < len(buf):  # one read returns at most ~2 GB on Linux
                n = f.readinto(view[got:])
                if not n:
                    raise ValueError(f"{path} is truncated inside tensor {name}")
                got += n
            flat = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
            yield name, flat.view(info["shape"])
