"""What indexing and search need from an embedding model, as an interface: the service
that embeds (and meters) lives in ``corral.inference``, above this package, and is
handed in by the composition root (``corral.app``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from corral.accounts.keys import Principal

Vectors = npt.NDArray[np.float32]
INGEST = "vector_stores"  # usage rows' endpoint: a file's chunks embedded
SEARCH = "vector_stores.search"  # a search's queries embedded


@dataclass(frozen=True)
class Embedded:
    vectors: Vectors  # (len(texts), dimensions), each row of unit length
    tokens: int  # billed prompt tokens


class Embedder(Protocol):
    def piece_bytes(self) -> int:
        """The longest text (UTF-8 bytes) one input may be: sure to fit the model."""
        ...

    async def embed(self, who: Principal, texts: list[str], endpoint: str) -> Embedded:
        """Embeddings of ``texts``, metered to ``who`` under ``endpoint``."""
        ...


def unit_rows(m: Vectors) -> Vectors:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return (m / np.where(norms == 0, 1, norms)).astype(np.float32)


def pooled(
    vectors: Vectors,
    owner: npt.NDArray[np.intp],
    weight: Vectors,
    spans: list[tuple[int, int]],
) -> Vectors:
    """Row ``i`` of the result: the weighted mean of the rows of ``vectors`` (pieces,
    weighted by their length) whose ``owner`` (a unit) lies in ``spans[i]``, made unit
    length again. The model mean-pools over tokens, so pooling the vectors of a chunk's
    pieces stays close to what one long input would have given, with no input past its
    window. One cumulative sum over the units makes every chunk a difference of two rows."""
    n_units = max(end for _, end in spans)
    units = np.zeros((n_units, vectors.shape[1]), dtype=np.float64)
    np.add.at(units, owner, vectors * weight[:, None])
    cumulative = np.vstack([np.zeros((1, vectors.shape[1])), np.cumsum(units, axis=0)])
    starts = np.array([s for s, _ in spans], dtype=np.intp)
    ends = np.array([e for _, e in spans], dtype=np.intp)
    return unit_rows((cumulative[ends] - cumulative[starts]).astype(np.float32))
