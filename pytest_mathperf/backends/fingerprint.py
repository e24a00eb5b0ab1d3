"""A content fingerprint of a model folder, so that new weights in the same folder break its trend.

A hub model carries its commit hash; a folder carries nothing, and its name says nothing about
what is in it (``models/candidate`` holds this week's weights and next week's). Hashing every
byte of a 140 GB checkpoint would cost minutes per run, so a large file is hashed by its size,
its head (a safetensors header: every tensor's name, dtype, shape and offset), evenly spaced
blocks of its content and its tail. Weights retrained, noised, re-quantised or re-shaped change
those; only an edit confined to the bytes between the sampled blocks would go unseen.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Files read whole: configs, tokenizers, small checkpoints.
WHOLE_FILE_BYTES = 8 * 1024 * 1024
#: A large file's head (covers a safetensors header, with its 8-byte length prefix, up to this size).
HEAD_BYTES = 1024 * 1024
#: Blocks of a large file's content read between the head and the tail.
SAMPLED_BLOCKS = 32
BLOCK_BYTES = 64 * 1024
#: What a model card or licence changes does not change a single figure the gate measures.
IGNORED_SUFFIXES = frozenset({".md", ".rst", ".png", ".jpg", ".jpeg", ".gif"})
IGNORED_NAMES = frozenset({"LICENSE", "LICENSE.txt", "NOTICE"})


def folder_fingerprint(folder: Path) -> str:
    """``sha256:`` and 16 hex digits over the files that decide a model's numbers."""
    digest = hashlib.sha256()
    for path in _model_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(_file_digest(path))
    return "sha256:" + digest.hexdigest()[:16]


def _model_files(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):  # .git, .cache, editor droppings
            continue
        if path.is_file() and path.suffix.lower() not in IGNORED_SUFFIXES and path.name not in IGNORED_NAMES:
            found.append(path)
    return found


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(size.to_bytes(8, "little"))
    with path.open("rb") as handle:
        if size <= WHOLE_FILE_BYTES:
            digest.update(handle.read())
            return digest.digest()
        digest.update(handle.read(HEAD_BYTES))
        stride = (size - HEAD_BYTES) // (SAMPLED_BLOCKS + 1)
        for block in range(1, SAMPLED_BLOCKS + 1):
            handle.seek(HEAD_BYTES + block * stride)
            digest.update(handle.read(BLOCK_BYTES))
        handle.seek(max(size - BLOCK_BYTES, 0))
        digest.update(handle.read(BLOCK_BYTES))
    return digest.digest()
