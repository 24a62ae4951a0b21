"""Bounded-memory indexes for filtering a stream of items: exact-duplicate keys, MinHash LSH for near
duplicates and the eval n-gram index for decontamination.

A build of millions of long rows cannot keep every question in Python sets (~100 bytes a key) or
datasketch's in-memory LSH (~4 KB an item with its shingle sets). Here an item costs ~16 bytes in
the exact index and ~20 bytes per LSH band (9 bands at the default threshold) in flat ``array``
tables; the questions an LSH candidate is confirmed against live in a :class:`QuestionStore` (a file
during a build). Keys are stable 64-bit hashes (blake2b), so workers compute them and the build
compares them; a 64-bit collision (about 1e-7 over 2M items) is the only way an answer can differ
from comparing the texts themselves. LSH band keys are 32-bit: a collision only adds a candidate,
which the exact Jaccard then rejects.

>>> index = ExactIndex()
>>> index.add(exact_key(["what", "is", "x"], ())), index.add(exact_key(["what", "is", "x"], ()))
(True, False)
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

_MAX_LOAD = 0.7  # tables double past this share of used slots


def hash64(text: str) -> int:
    """A stable 64-bit hash of ``text``, never 0 (0 marks an empty slot)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") or 1


def exact_key(words: Sequence[str], images: Sequence[str]) -> int:
    """Identity of an item for exact dedup: its folded question words and image hashes."""
    return hash64(" ".join(words) + "\x00" + "\x1f".join(images))


def images_key(images: Sequence[str]) -> int:
    return hash64("\x1f".join(images))


class HashTable:
    """Non-zero integer keys -> int values, open addressing with linear probing in two flat arrays
    (``bits`` 64 or 32 per key + 32 per value), about 1.5x the bytes of its keys and values."""

    def __init__(self, bits: int = 64, capacity: int = 1 << 10):
        self._code = "Q" if bits == 64 else "I"
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self.keys = array(self._code, bytes(array(self._code).itemsize * capacity))
        self.values = array("i", bytes(4 * capacity))
        self.mask, self.size = capacity - 1, 0

    def _slot(self, key: int) -> int:
        keys, mask = self.keys, self.mask
        i = key & mask
        while (k := keys[i]) != key and k != 0:
            i = (i + 1) & mask
        return i

    def get(self, key: int, default: int = -1) -> int:
        i = self._slot(key)
        return self.values[i] if self.keys[i] else default

    def put(self, key: int, value: int = 0) -> bool:
        """Set ``key`` to ``value``; True when the key was new."""
        i = self._slot(key)
        new = not self.keys[i]
        self.keys[i], self.values[i] = key, value
        if new:
            self.size += 1
            if self.size > _MAX_LOAD * len(self.keys):
                self._grow()
        return new

    def __contains__(self, key: int) -> bool:
        return bool(self.keys[self._slot(key)])

    def __len__(self) -> int:
        return self.size

    def _grow(self) -> None:
        """Twice the slots, every key re-placed (in numpy: Python ints would cost ~36 bytes each)."""
        dtype = np.uint64 if self._code == "Q" else np.uint32
        keys = np.frombuffer(self.keys, dtype=dtype)
        used = np.nonzero(keys)[0]
        keys, values = keys[used], np.frombuffer(self.values, dtype=np.int32)[used]
        size, capacity = self.size, 2 * len(self.keys)
        new_keys, new_values = np.zeros(capacity, dtype=dtype), np.zeros(capacity, dtype=np.int32)
        mask = dtype(capacity - 1)
        slot, pending = keys & mask, np.arange(len(keys))
        while pending.size:  # linear probing, all keys a step at a time: the first to reach a free slot takes it
            at = slot[pending]
            _, first = np.unique(at, return_index=True)
            won = first[new_keys[at[first]] == 0]
            new_keys[at[won]], new_values[at[won]] = keys[pending[won]], values[pending[won]]
            lost = np.ones(pending.size, dtype=bool)
            lost[won] = False
            pending = pending[lost]
            slot[pending] = (slot[pending] + dtype(1)) & mask
        self.keys, self.values = array(self._code), array("i")
        self.keys.frombytes(new_keys.tobytes())
        self.values.frombytes(new_values.tobytes())
        self.mask, self.size = capacity - 1, size

    @property
    def nbytes(self) -> int:
        return self.keys.itemsize * len(self.keys) + self.values.itemsize * len(self.values)


class ExactIndex:
    """The set of exact keys seen so far."""

    def __init__(self) -> None:
        self.table = HashTable(64)

    def add(self, key: int) -> bool:
        """Record ``key``; True when it was not seen before."""
        return self.table.put(key)


def shingles(words: Sequence[str], k: int = 3) -> set[str]:
    """Word ``k``-grams (the whole text when shorter)."""
    if len(words) < k:
        return {" ".join(words)}
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


@lru_cache(maxsize=4)
def lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) datasketch's MinHashLSH picks for a near-duplicate ``threshold``. The
    LSH only proposes candidates, so it is set a little below the threshold to miss fewer."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=max(0.05, min(0.9, threshold - 0.1)), num_perm=num_perm)
    return lsh.b, lsh.r


@lru_cache(maxsize=4)
def _minhash_template(num_perm: int, seed: int):
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, seed=seed)


_MIX = np.random.default_rng(20261206).integers(1, 2**63, size=512, dtype=np.uint64) | np.uint64(1)


def band_keys(words: Sequence[str], images: Sequence[str], threshold: float, num_perm: int = 128, seed: int = 1):
    """32-bit keys of the LSH bands of the question's MinHash (datasketch's, word 3-gram shingles),
    each mixed with the image hashes: only items with the same images can be near duplicates."""
    from datasketch import MinHash

    bands, rows = lsh_shape(threshold, num_perm)
    template = _minhash_template(num_perm, seed)
    mh = MinHash(num_perm=num_perm, seed=seed, permutations=template.permutations, scheme=template.scheme)
    mh.update_batch([s.encode() for s in shingles(words)])
    values = mh.hashvalues[: bands * rows].astype(np.uint64).reshape(bands, rows)
    mixed = (values * _MIX[:rows]).sum(axis=1, dtype=np.uint64) + _MIX[rows : rows + bands]
    mixed ^= np.uint64(images_key(images))
    mixed ^= mixed >> np.uint64(31)  # fold the high bits in before keeping 32 of them
    mixed *= np.uint64(0x9E3779B97F4A7C15)
    return [(int(v) >> 32) or 1 for v in mixed]


class QuestionStore:
    """The folded question of every item the LSH holds, by id: in a list, or appended to ``path``
    (one line each, offsets kept in an array) so a build keeps only 8 bytes an item in memory."""

    def __init__(self, path: str | Path | None = None):
        self._items: list[str] | None = [] if path is None else None
        self._file = None if path is None else open(path, "w+b")  # noqa: SIM115 (closed by close())
        self._offsets = array("q", [0])

    def append(self, text: str) -> int:
        if self._items is not None:
            self._items.append(text)
            return len(self._items) - 1
        data = text.encode() + b"\n"
        self._file.write(data)
        self._offsets.append(self._offsets[-1] + len(data))
        return len(self._offsets) - 2

    def __getitem__(self, i: int) -> str:
        if self._items is not None:
            return self._items[i]
        self._file.flush()
        start, end = self._offsets[i], self._offsets[i + 1]
        return os.pread(self._file.fileno(), end - start - 1, start).decode()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class NearDupIndex:
    """Items kept so far, indexed by MinHash LSH bands; :meth:`check_add` says whether a new item
    is a near duplicate (same images, word-3-gram Jaccard >= ``threshold`` with an indexed item,
    confirmed exactly) and indexes it when it is not."""

    def __init__(self, threshold: float, num_perm: int = 128, store: QuestionStore | None = None):
        self.threshold, self.num_perm = threshold, num_perm
        self.bands, _ = lsh_shape(threshold, num_perm)
        self.tables = [HashTable(32) for _ in range(self.bands)]
        self.chain = array("i")  # chain[id * bands + b]: the previous id with the same band-b key
        self.store = store or QuestionStore()

    def candidates(self, keys: Sequence[int]) -> set[int]:
        """Ids of indexed items sharing a band key with ``keys``."""
        out: set[int] = set()
        for b, key in enumerate(keys):
            i = self.tables[b].get(key)
            while i >= 0:
                out.add(i)
                i = self.chain[i * self.bands + b]
        return out

    def check_add(self, words: Sequence[str], images: Sequence[str], keys: Sequence[int]) -> bool:
        """True when the item is a near duplicate of an indexed one; else it is indexed."""
        found = self.candidates(keys)
        tag = f"{images_key(images):016x}"
        if found:
            mine = shingles(words)
            for i in sorted(found):
                other_tag, _, other_words = self.store[i].partition(" ")
                if other_tag != tag:
                    continue
                other = shingles(other_words.split(" "))
                if len(mine & other) / len(mine | other) >= self.threshold:
                    return True
        new = self.store.append(f"{tag} {' '.join(words)}")
        for b, key in enumerate(keys):
            self.chain.append(self.tables[b].get(key))
            self.tables[b].put(key, new)
        return False

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables) + self.chain.itemsize * len(self.chain)


def gram_keys(words: Sequence[str], n: int) -> np.ndarray:
    """64-bit hashes of the word ``n``-grams of ``words`` (none when it is shorter)."""
    count = max(0, len(words) - n + 1)
    return np.fromiter((hash64(" ".join(words[i : i + n])) for i in range(count)), dtype=np.uint64, count=count)


class EvalIndex:
    """What training items are decontaminated against, built once from the (small) eval sets: the
    eval items' exact keys, their image hashes and (``n`` set) the hashes of their word n-grams."""

    def __init__(self, n: int | None, exact: np.ndarray, images: np.ndarray, grams: np.ndarray):
        self.n = n
        self.exact = np.sort(exact.astype(np.uint64))
        self.images = frozenset(images.tolist())
        self.grams = np.sort(grams.astype(np.uint64))

    @classmethod
    def build(cls, items, n: int | None) -> EvalIndex:
        """From ``(words, image hashes)`` of every eval item."""
        exact, images, grams = [], set(), []
        for words, shas in items:
            exact.append(exact_key(words, shas))
            images.update(s for s in shas if s)
            if n is not None:
                grams.append(gram_keys(words, n))
        all_grams = np.unique(np.concatenate(grams)) if grams else np.zeros(0, np.uint64)
        return cls(n, np.array(exact, dtype=np.uint64), np.array(sorted(images), dtype=str), all_grams)

    def _has(self, table: np.ndarray, keys: np.ndarray) -> bool:
        if not table.size or not keys.size:
            return False
        at = np.minimum(np.searchsorted(table, keys), table.size - 1)
        return bool((table[at] == keys).any())

    def reason(self, words: Sequence[str], images: Sequence[str], procedural: bool = False) -> str | None:
        """Why this training item is contaminated (same item, a shared image or, for source items, a
        shared n-gram), or None. Procedural items share n-grams by construction: exact match only."""
        if self._has(self.exact, np.array([exact_key(words, images)], dtype=np.uint64)):
            return "eval contamination: same item"
        if any(s in self.images for s in images):
            return "eval contamination: shared image"
        if (
            self.n is not None
            and self.grams.size
            and not procedural
            and self._has(self.grams, gram_keys(words, self.n))
        ):
            return f"eval contamination: shared {self.n}-gram"
        return None

    def save(self, path: str | Path) -> None:
        n = np.array([-1 if self.n is None else self.n])
        with open(path, "wb") as f:
            np.savez(f, n=n, exact=self.exact, images=np.array(sorted(self.images), dtype=str), grams=self.grams)

    @classmethod
    def load(cls, path: str | Path) -> EvalIndex:
        with np.load(path) as z:
            n = int(z["n"][0])
            return cls(None if n < 0 else n, z["exact"], z["images"], z["grams"])
