"""k6 / JMeter request names → endpoint keys column-wise (``routes_of``, ``split_labels``, ``endpoint_codes``): the
same routes, methods and keys as ``route_of`` / ``split_label`` of each name, on tricky names."""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from parity.sources.load_tool import (
    PY_WHITESPACE,
    endpoint_codes,
    route_of,
    routes_of,
    split_label,
    split_labels,
)

NAMES = [
    "http://127.0.0.1:8080/api/users/17?x=1",
    "https://host:443/api/users/17/orders/99#frag",
    "http://host:8080",  # no path: "/"
    "http://host?q=1",
    "http://host#f?x=/1",
    "HTTP://HOST/API/V2/Users/42",
    "ws+unix://sock/a/123e4567-e89b-12d3-a456-426614174000",
    "1http://host/a/1",  # not a scheme: free text
    "http://host/posts/${}/comments/${}",  # k6 template literal
    "http://host/posts/${}?page=${}",
    "/posts/${}",
    "http://host/users/{id}?x=1",  # already templated: kept, query dropped
    "/users/{id}?x=1",  # a path already templated: kept as it is (query too)
    "/users/{id2}/x/7",
    "/api/items/1234",
    "/api/items/1234/",
    "/api//items/99",
    "/",
    "",
    "   ",
    "  /api/items/5  ",
    "\u3000/api/items/6\x85",  # str.strip() whitespace beyond ASCII
    "/api/%E5%B1%B1/7",
    "/api/山/8",
    "http://hôst/api/山/9?x=é",
    "/api/١٢٣/4",
    "/api/{x}/10",
    "/a b/11",
    "/api/DEADBEEFdeadbeef",
    "/api/deadbeefdeadbee",
    "/api/abcdefghijklmno1",
    "/files/1234.json?x#y",
    "/x?y#z/1",
    "/x#y?z/1",
    "login",
    "HTTP Request",
    "home page / 2",  # free text with slashes
    "a/b/123",
    "GET /api/users/2048",
    "get /api/users/2048?x=1",
    "post http://h/api/orders",
    "GET",
    "GET ",
    "GET  /x/1",
    "  PUT /x/2  ",
    "DELETE\t/x/3",  # no space after the method: not a label
    "FETCH /x/4",
    "poſt /x/5",  # str.upper: POST
    "optıons /x/6",  # str.upper: OPTIONS
    "Ünknown /x/7",
    "GET login",
    "OPTIONS *",
    "PATCH ${}",
    "HEAD http://h/${}/z/1",
    "\x1cGET /x/8",
]


def test_python_whitespace_is_what_str_strip_strips() -> None:
    assert "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()) == PY_WHITESPACE


def test_routes_of_equals_route_of() -> None:
    assert routes_of(pa.array(NAMES)).to_pylist() == [route_of(n) for n in NAMES]
    assert routes_of(pa.array(NAMES[:3])).to_pylist() == ["/api/users/{id}", "/api/users/{id}/orders/{id2}", "/"]
    assert routes_of(pa.array(["login", "home page / 2"])).to_pylist() == ["login", "home page / 2"]


def test_split_labels_equals_split_label() -> None:
    methods, routes = split_labels(pa.array(NAMES))
    assert list(zip(methods.to_pylist(), routes.to_pylist(), strict=True)) == [split_label(n) for n in NAMES]
    methods, routes = split_labels(pa.array(["GET /api/users/2048", "poſt /x/5", "HTTP Request"]))
    assert methods.to_pylist() == ["GET", "POST", ""]
    assert routes.to_pylist() == ["/api/users/{id}", "/x/{id}", "HTTP Request"]


def _reference(
    methods: list[str],
    method_index: npt.NDArray[np.int64],
    names: list[str],
    name_index: npt.NDArray[np.int64],
    labels: bool,
) -> tuple[tuple[tuple[str, str], ...], npt.NDArray[np.int64]]:
    """The keys and endpoint indices as worked out one distinct (method, name) pair at a time."""
    width = max(len(names), 1)
    by_key: dict[tuple[str, str], int] = {}
    distinct, inverse = np.unique(method_index * width + name_index, return_inverse=True)
    slot = []
    for code in distinct.tolist():
        name = names[code % width]
        key = split_label(name) if labels else (methods[code // width], route_of(name))
        slot.append(by_key.setdefault(key, len(by_key)))
    return tuple(by_key), np.asarray(slot, dtype=np.int64)[inverse.reshape(-1)]


def test_endpoint_codes_equal_the_per_name_keys() -> None:
    rng = np.random.default_rng(3)
    methods = ["GET", "POST", ""]
    method_index = rng.integers(0, len(methods), 4000)
    name_index = rng.integers(0, len(NAMES), 4000)
    for labels in (False, True):
        got = endpoint_codes(methods, method_index, pa.array(NAMES), name_index, labels=labels)
        want = _reference(methods, method_index, NAMES, name_index, labels)
        assert got[0] == want[0]
        assert np.array_equal(got[1], want[1])


def test_one_key_for_a_url_per_id() -> None:
    """k6 names requests by URL (one distinct name per id): every name of one route gives one key."""
    names = [f"http://h/api/orders/{i}/items?x={i}" for i in range(5000)]
    keys, endpoint = endpoint_codes(["GET"], np.zeros(5000, dtype=np.int64), pa.array(names), np.arange(5000),
                                    labels=False)  # fmt: skip
    assert keys == (("GET", "/api/orders/{id}/items"),)
    assert not endpoint.any()
