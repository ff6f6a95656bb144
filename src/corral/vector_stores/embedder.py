"""What indexing and search need from an embedding model, as an interface: the service
that embeds (and meters) lives in ``corral.inference``, above this package, and is
handed in by the composition root (``corral.app``).

numpy is imported on first use, never when corral starts (it cost ~130 ms of each
start): modules here name its types only for the type checker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

from corral.accounts.keys import Principal

if TYPE_CHECKING:  # numpy itself is imported where vectors are made (vectors.py)
    import numpy as np
    import numpy.typing as npt

    Vectors: TypeAlias = npt.NDArray[np.float32]

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
