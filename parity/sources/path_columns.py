"""Request paths templated column-wise (pyarrow): :func:`parity.sources.routes.template_path_values` over a whole
column of distinct paths at once, with no Python per path on the common path.

Shared by the access-log readers (distinct targets of a block) and the k6 / JMeter readers (distinct request
names). Results equal the per-path functions of :mod:`parity.sources.routes` by construction: the RE2 patterns
below say exactly what ``_looks_like_id`` says of an (encoded, so ASCII) segment, and a path with a character
:func:`~parity.sources.routes.encode_path` changes is encoded by that function itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from parity.sources.routes import ID_PLACEHOLDER, MIN_TOKEN_ID_LENGTH, encode_path

__all__ = ["ID_SHORT", "ID_TOKEN", "NEEDS_ENCODING", "PathTemplate", "encode_column", "template_column"]

#: A character :func:`~parity.sources.routes.encode_path` changes: outside printable ASCII, a space, "{" or "}".
NEEDS_ENCODING = r"[^\x21-\x7a\x7c\x7e]"
#: ``_looks_like_id`` of an (encoded, so ASCII) segment: digits or a UUID; or, at MIN_TOKEN_ID_LENGTH characters or
#: more, hex digits or letters and digits with a digit (:data:`ID_TOKEN`).
ID_SHORT = r"^(?:[0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
ID_TOKEN = r"^(?:[0-9a-fA-F]+|[A-Za-z0-9]*[0-9][A-Za-z0-9]*)$"


@dataclass(frozen=True)
class PathTemplate:
    """Paths templated column-wise: ``route[i]`` of path i; per segment of all paths (in order), its path
    ``row``, whether it ``is_id``, its ``rank`` among its path's ids (1 for ``{id}``), and ``segments[segment]``
    its text."""

    route: pa.Array
    row: npt.NDArray[np.int64]
    is_id: npt.NDArray[np.bool_]
    rank: npt.NDArray[np.int64]
    segment: npt.NDArray[np.int64]
    segments: pa.Array


def encode_column(paths: pa.Array) -> pa.Array:
    """:func:`~parity.sources.routes.encode_path` of each path (a string array without nulls): only the paths
    holding a character it changes go through it (one Python call each), the others are kept as they are."""
    needs = pc.match_substring_regex(paths, NEEDS_ENCODING)
    if not pc.any(needs).as_py():
        return paths
    encoded = [encode_path(p) for p in paths.filter(needs).to_pylist()]
    return pc.replace_with_mask(paths, needs, pa.array(encoded, pa.string()))


def template_column(paths: pa.Array) -> PathTemplate:
    """:func:`parity.sources.routes.template_path_values`' route of each (encoded: see :func:`encode_column`;
    without query or fragment) path, column-wise: the paths split into segments, "looks like an id" decided once
    per distinct segment by RE2 patterns equal to ``_looks_like_id``, the k-th id segment of a path replaced by
    ``{id}`` (k = 1) or ``{idk}``."""
    lists = pc.split_pattern(paths, "/")
    offsets = lists.offsets.to_numpy().astype(np.int64)
    encoded = pc.dictionary_encode(lists.flatten())
    segments = encoded.dictionary
    token = pc.and_(
        pc.greater_equal(pc.utf8_length(segments), MIN_TOKEN_ID_LENGTH), pc.match_substring_regex(segments, ID_TOKEN)
    )
    is_id_distinct = pc.or_(pc.match_substring_regex(segments, ID_SHORT), token).to_numpy(zero_copy_only=False)
    segment = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    is_id = is_id_distinct[segment]
    before = np.concatenate(([0], np.cumsum(is_id)))
    row = np.repeat(np.arange(len(paths), dtype=np.int64), np.diff(offsets))
    rank = before[1:] - before[offsets[:-1] - offsets[0]][row]
    if not is_id.any():
        return PathTemplate(paths, row, is_id, rank, segment, segments)
    names = pa.array(
        ["{" + ID_PLACEHOLDER + "}"] + ["{" + f"{ID_PLACEHOLDER}{k}" + "}" for k in range(2, int(rank.max()) + 1)]
    )
    placeholders = names.take(pa.array(np.where(is_id, rank - 1, 0)))
    templated = pc.if_else(pa.array(is_id), placeholders, lists.flatten())
    rebuilt = pa.ListArray.from_arrays(pa.array(offsets - offsets[0], pa.int32()), templated)
    return PathTemplate(pc.binary_join(rebuilt, "/"), row, is_id, rank, segment, segments)
