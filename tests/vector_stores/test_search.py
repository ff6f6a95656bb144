from __future__ import annotations

import time

import numpy as np

from corral.vector_stores.search import fuse
from corral.vector_stores.vectors import Matrix, pooled, unit_rows


def matrix(n: int, dims: int = 8, files: int = 2, seed: int = 0) -> Matrix:
    rng = np.random.default_rng(seed)
    vectors = unit_rows(rng.standard_normal((n, dims)).astype(np.float32))
    codes = (np.arange(n) % files).astype(np.int32)
    names = tuple(f"file-{i}" for i in range(files))
    return Matrix(1, np.arange(100, 100 + n, dtype=np.int64), codes, names, vectors)


def test_nearest_first_and_filtered_by_file() -> None:
    m = matrix(50)
    query = m.vectors[7]
    top = m.top(query, 5, None)
    assert top[0][0] == 107 and abs(top[0][1] - 1.0) < 1e-5
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    only = m.top(query, 5, frozenset({"file-0"}))
    assert all((cid - 100) % 2 == 0 for cid, _ in only) and 107 not in {c for c, _ in only}
    assert m.top(query, 5, frozenset({"file-9"})) == []
    assert len(m.top(query, 500, None)) == 50


def test_exact_search_of_100k_chunks_is_one_matrix_product() -> None:
    m = matrix(100_000, dims=576)
    started = time.perf_counter()
    top = m.top(m.vectors[4242], 100, frozenset({"file-0"}))
    took = time.perf_counter() - started
    assert top[0][0] == 100 + 4242 and len(top) == 100
    assert took < 1.0  # ~30 ms here; a Python loop over the chunks takes seconds


def test_reciprocal_rank_fusion_is_normalised() -> None:
    fused = fuse([([1, 2, 3], 1.0), ([1, 3], 1.0)], k=60)
    assert fused[1] == 1.0  # first in both lists
    assert fused[3] > fused[2]  # in both lists beats one
    assert min(fused.values()) > 0
    assert fuse([([1], 0.0)], k=60) == {}
    weighted = fuse([([1, 2], 3.0), ([2, 1], 1.0)], k=60)
    assert weighted[1] > weighted[2]  # the heavier list decides


def test_pieces_pool_back_into_one_unit_vector_per_chunk() -> None:
    v = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    owner = np.array([0, 0, 1])
    out = pooled(v, owner, np.array([3, 1, 1], dtype=np.float32), [(0, 1), (1, 2), (0, 2)])
    assert np.allclose(np.linalg.norm(out, axis=1), 1)
    assert out[0][0] > out[0][1] and np.allclose(out[1], [1, 0])
    assert out[2][0] > out[0][0]  # both units: more of the first direction
