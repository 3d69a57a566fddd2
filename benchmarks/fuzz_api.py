"""Fuzz the HTTP API with bad requests against a REAL server and count the answers by status.

Trains quick champions of all three targets into a temporary MLflow store (or uses --tracking-uri), starts
`nascreen serve` in a subprocess on 127.0.0.1 (a free port, local job executor, an API key, a short body
timeout), then sends --n seeded bad requests (default 2,400) over HTTP: non-finite numbers, wrong types,
missing/extra fields, malformed/truncated/binary/deep JSON, empty and huge bodies, bad formulas, bad
screening specs, bad paths, ids, queries and keys, on every endpoint; plus raw-socket cases (a body
declared longer than sent, a bad Content-Length, headers sent a byte at a time, a connection sending
nothing), the connection cap (more idle connections than allowed: 503 by design) and finally kill -9 of
the server (every process below it must be gone). Prints the counts by status and by category, every
answer >= 500 with its request, and whether the server is still alive and answering. Exit status 1 when
any answer is >= 500 (or the server died, or a process outlived the kill -9).

    .venv/bin/python benchmarks/fuzz_api.py [--n 2400] [--seed 0] [--tracking-uri URI]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

API_KEY = "fuzz-key"
BODY_TIMEOUT_S = 2.0
HEADER_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 16  # per server worker process (two workers: the kernel spreads connections over both)
MAX_BODY = 1_048_576

PREDICT = {
    "items": [
        {"formula": "Na3Zr2Si2PO12"},
        {
            "formula": "P2-Na0.67MnO2",
            "cycles": 100,
            "current_mA_g": 20,
            "voltage_low_V": 2.0,
            "voltage_high_V": 4.0,
        },
    ],
    "targets": ["ionic_conductivity", "capacity_retention", "average_voltage"],
}
RANK = {
    "family": "nasicon",
    "host": "Na3Zr2Si2PO12",
    "site": "Zr",
    "dopants": ["Hf", "Ti", "Sn", "Nb"],
    "fractions": [0.05, 0.1],
    "compensation": "na_content",
    "ranking": {"mode": "ucb", "kappa": 1.0},
    "top_k": 5,
}
SPEC = {
    "name": "fuzz",
    "family": "p2_layered_oxide",
    "host": "Na0.6Li0.2Mn0.8O2",
    "site": "Mn",
    "dopants": ["Ru", "Ti"],
    "fractions": {"start": 0.05, "stop": 0.1, "step": 0.05},
    "compensation": {"mode": "variable_valence", "element": "Mn", "range": [3, 4]},
    "conditions": {"cycles": 100, "current_mA_g": 170, "voltage_low_V": 2.0, "voltage_high_V": 4.5},
    "ranking": {
        "mode": "pareto",
        "objectives": {"capacity_retention": {"weight": 2}, "average_voltage": {"weight": 1}},
    },
}
TEMPLATE_SPEC = {
    "name": "fuzz-template",
    "family": "halide",
    "host": "Na2ZrCl6",
    "template": {
        "formula": "Na{2+x*(4-v)}Zr{1-x}{M}{x}Cl6",
        "variables": {"x": {"start": 0.1, "stop": 0.3, "step": 0.1}},
    },
    "dopants": ["Y", "In"],
}

NONFINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e400", "NaN"]
BAD_FORMULAS = [
    "",
    " ",
    "Xx",
    "Na-1Cl",
    "NaCl-",
    "Na1e999Cl",
    "Na1e-999Cl",
    "NaInfCl",
    "NaNaN",
    "Na(Cl",
    "Na)Cl(",
    "((((((((((Na))))))))))",
    "Na" * 200,
    "Na\u0000Cl",
    "Na\u0007Cl",
    "Na\u200bCl",
    "Ｎａ Ｃｌ",
    "Na\nCl",
    "Na\rCl",
    "Na\tCl",
    "Na0.000001Cl",
    "Cl0.000001",
    "Na1/100000O",
    "Na1/0O",
    "Na0/0O",
    "Na[[Cl]]",
    "Na{x}Cl",
    "P2-",
    "-",
    "Na2O2-",
    "NaCl" + "0" * 300,
    "Na99999999999999999999Cl",
    "na cl",
    "NACL",
    "Na.Cl",
    "Na..5Cl",
    "Na0x10Cl",
    "Na1_000Cl",
    "Na٣Cl",
    "H" * 5000,
    "Na\\Cl",
    'Na"Cl',
    "🔋",
    "Na\u202eCl",
]
BAD_ELEMENTS = ["Xx", "", "Zr2", "zr", "ZR", "Q", "Na-", " Ti", "Ti ", "\u0000", "Uuo", "D", "T", "e"]


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_template(depth: int) -> str:
    return "Na{" + "(" * depth + "x" + ")" * depth + "}Zr{1-x}{M}{x}Cl6"


def _long_template(terms: int) -> str:
    return "Na{" + "+".join(["x"] * terms) + "}Zr{1-x}{M}{x}Cl6"


@dataclass
class BadRequest:
    category: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, Any] | None = None

    def describe(self) -> str:
        body = (
            "" if self.body is None else f" body={self.body[:300]!r}{'...' if len(self.body) > 300 else ''}"
        )
        return f"[{self.category}] {self.method} {self.path}{body} headers={self.headers or {}}"


class Generator:
    """Seeded bad requests, by category. Valid bodies are mutated one place at a time, so most requests
    get past JSON parsing and probe validation deep inside."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- helpers -----------------------------------------------------------------------------------
    def random_json_value(self, depth: int = 0) -> Any:
        r = self.rng
        kinds = ["none", "bool", "int", "bigint", "float", "str", "list", "dict", "formula"]
        kind = r.choice(kinds if depth < 3 else kinds[:7])
        if kind == "none":
            return None
        if kind == "bool":
            return r.random() < 0.5
        if kind == "int":
            return r.choice([0, -1, 1, 2, 7, -(2**31), 2**31, 10**6 + 1])
        if kind == "bigint":
            return r.choice([2**63, 2**70, -(2**70), 10**30, 10**400])
        if kind == "float":
            return r.choice([0.0, -0.0, -1.5, 1e-300, 5e-324, 1e308, -1e308, 0.5, 1.0000000001])
        if kind == "str":
            return r.choice(
                ["", "x", "nasicon", "Zr", "0.1", "1e999", "NaN", "null", "\u0000", "é" * 50, "a" * 300]
            )
        if kind == "formula":
            return r.choice(BAD_FORMULAS)
        if kind == "list":
            return [self.random_json_value(depth + 1) for _ in range(r.randint(0, 3))]
        return {r.choice(["a", "start", "stop", "step", "mode", "x", ""]): self.random_json_value(depth + 1)}

    @staticmethod
    def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        yield prefix
        if isinstance(doc, dict):
            for k, v in doc.items():
                yield from Generator._paths(v, (*prefix, k))
        elif isinstance(doc, list):
            for i, v in enumerate(doc):
                yield from Generator._paths(v, (*prefix, i))

    def _set(self, doc: Any, path: tuple[Any, ...], value: Any) -> Any:
        if not path:
            return value
        out = copy.deepcopy(doc)
        node = out
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return out

    def _numeric_paths(self, doc: Any) -> list[tuple[Any, ...]]:
        found = []
        for p in self._paths(doc):
            node = doc
            for k in p:
                node = node[k]
            if isinstance(node, int | float) and not isinstance(node, bool):
                found.append(p)
        return found

    def _dumps_with_token(self, doc: Any, path: tuple[Any, ...], token: str) -> bytes:
        marker = "__FUZZ_TOKEN__"
        text = json.dumps(self._set(doc, path, marker))
        return text.replace(json.dumps(marker), token).encode()

    def _bases(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            ("POST", "/v1/predict", PREDICT),
            ("POST", "/v1/rank-dopants", RANK),
            ("POST", "/v1/screening-jobs", SPEC),
            ("POST", "/v1/screening-jobs", TEMPLATE_SPEC),
        ]

    def _post(self, category: str, path: str, body: bytes, **headers: Any) -> BadRequest:
        h = {"content-type": "application/json", "x-api-key": API_KEY, **headers}
        return BadRequest(category, "POST", path, body, h)

    # -- categories --------------------------------------------------------------------------------
    def nonfinite(self) -> BadRequest:
        _, path, base = self.rng.choice(self._bases())
        numeric = self._numeric_paths(base) or [()]
        where = self.rng.choice(numeric)
        return self._post("nonfinite", path, self._dumps_with_token(base, where, self.rng.choice(NONFINITE)))

    def wrong_type(self) -> BadRequest:
        _, path, base = self.rng.choice(self._bases())
        where = self.rng.choice(list(self._paths(base))[1:])
        return self._post(
            "wrong_type", path, json.dumps(self._set(base, where, self.random_json_value())).encode()
        )

    def missing_or_extra(self) -> BadRequest:
        _, path, base = self.rng.choice(self._bases())
        doc = copy.deepcopy(base)
        key = self.rng.choice(list(doc))
        if self.rng.random() < 0.5:
            del doc[key]
        else:
            doc[self.rng.choice(["extra", "Family", "items ", "", "\u00e9"])] = self.random_json_value()
        return self._post("missing_or_extra", path, json.dumps(doc).encode())

    def malformed(self) -> BadRequest:
        _, path, base = self.rng.choice(self._bases())
        text = json.dumps(base).encode()
        r = self.rng
        choice = r.randrange(7)
        if choice == 0:
            body = text[: r.randrange(1, len(text))]
        elif choice == 1:
            body = bytes(r.randrange(256) for _ in range(r.randint(1, 200)))
        elif choice == 2:
            body = text.replace(b'"', b"'")
        elif choice == 3:
            body = b"\xef\xbb\xbf" + text  # BOM
        elif choice == 4:
            body = text + b"," + text
        elif choice == 5:
            body = text.replace(b":", b"=", 1)
        else:
            body = r.choice(
                [b"null", b"true", b"1", b'"x"', b"[]", b"{}", b"[{}]", b'"\\ud800"', b"1e999", b"NaN"]
            )
        return self._post("malformed_json", path, body)

    def deep(self) -> BadRequest:
        _, path, base = self.rng.choice(self._bases())
        depth = self.rng.choice([65, 100, 990, 1000, 5000, 100_000])
        key = self.rng.choice(list(base))
        text = json.dumps(self._set(base, (key,), "__D__")).replace('"__D__"', _deep(depth))
        return self._post("deep_json", path, text.encode())

    def size(self) -> BadRequest:
        _, path, base = self.rng.choice(self._bases())
        r = self.rng.randrange(4)
        if r == 0:
            body = b""
        elif r == 1:
            body = json.dumps({**base, "pad": "x" * (MAX_BODY + 10)}).encode()
        elif r == 2:
            body = json.dumps(
                {"items": [{"formula": "NaCl"}] * 5000, "targets": ["ionic_conductivity"]}
            ).encode()
            path = "/v1/predict"
        else:
            body = b" " * 10_000 + json.dumps(base).encode()
        return self._post("size", path, body)

    def bad_formula(self) -> BadRequest:
        f = self.rng.choice(BAD_FORMULAS)
        _, path, base = self.rng.choice(self._bases())
        if path == "/v1/predict":
            doc = self._set(base, ("items", 0, "formula"), f)
        elif path == "/v1/rank-dopants":
            doc = self._set(base, self.rng.choice([("host",), ("dopants", 0)]), f)
        elif "template" in base:
            doc = self._set(base, ("template", "formula"), f)
        else:
            doc = self._set(base, ("host",), f)
        return self._post("bad_formula", path, json.dumps(doc).encode())

    def bad_spec(self) -> BadRequest:
        r = self.rng
        path = r.choice(["/v1/rank-dopants", "/v1/screening-jobs"])
        base = RANK if path == "/v1/rank-dopants" else SPEC
        mutations: list[tuple[tuple[Any, ...], Any]] = [
            (("family",), ["nasicon"]),
            (("family",), "no_such_family"),
            (("targets",), [["x"]]),
            (("targets",), ["ionic_conductivity", "ionic_conductivity"]),
            (("exclude",), 5),
            (("site",), ["Zr"]),
            (("site",), r.choice(BAD_ELEMENTS)),
            (("dopants",), [r.choice(BAD_ELEMENTS)]),
            (("dopants",), []),
            (("dopants",), ["Ti"] * 500),
            (("codoping",), {"site": ["Zr"]}),
            (("codoping",), {"site": "Zr", "dopants": 5, "fractions": "x"}),
            (("fractions",), {"start": 0.01, "stop": 1e308, "step": 1e-300}),
            (("fractions",), {"start": 0.5, "stop": 0.1, "step": 0.1}),
            (("fractions",), {"start": 0.1, "stop": 0.5, "step": 0}),
            (("fractions",), {"start": 0.1, "stop": 0.5, "step": -0.1}),
            (("fractions",), [-0.1, 2.0, 0.0]),
            (("fractions",), [1e-320]),
            (("fractions",), [0.1] * 100),
            (("ranking",), {"mode": "pareto", "max_pareto_fronts": 2**70}),
            (("ranking",), {"mode": "ucb", "kappa": -1}),
            (("ranking",), {"mode": "nope"}),
            (("ranking",), {"objectives": {"ionic_conductivity": {"weight": "x"}}}),
            (("ranking",), {"objectives": 5}),
            (("compensation",), {"mode": "variable_valence", "element": "Mn", "range": [4, 3]}),
            (("compensation",), {"mode": "variable_valence", "element": "Xx", "range": [1e999]}),
            (("compensation",), 5),
            (("valences",), {"Ti": [1e308, -1e308]}),
            (("valences",), {"Xx": 4}),
            (("conditions",), {"cycles": -5}),
            (("conditions",), {"cycles": "many"}),
            (
                ("template",),
                {
                    "formula": _long_template(2000),
                    "variables": {"x": {"start": 0.1, "stop": 0.2, "step": 0.1}},
                },
            ),
            (
                ("template",),
                {
                    "formula": _deep_template(2000),
                    "variables": {"x": {"start": 0.1, "stop": 0.2, "step": 0.1}},
                },
            ),
            (
                ("template",),
                {"formula": "Na{1/0}Cl{x}", "variables": {"x": {"start": 0.1, "stop": 0.2, "step": 0.1}}},
            ),
            (
                ("template",),
                {"formula": "Na{x**x**x**99}Cl", "variables": {"x": {"start": 2, "stop": 3, "step": 1}}},
            ),
            (("template",), {"formula": "Na{__import__('os')}Cl", "variables": {}}),
            (("template",), 5),
            (("name",), "../../etc/passwd"),
            (("name",), "x" * 10_000),
            (("top_k",), 10**9),
        ]
        where, value = r.choice(mutations)
        doc = self._set(base, where, value)
        return self._post("bad_spec", path, json.dumps(doc).encode())

    def bad_path(self) -> BadRequest:
        r = self.rng
        ident = r.choice(
            [
                "not-a-uuid",
                "00000000-0000-0000-0000-000000000000",
                "%ED%A0%80",
                "%00",
                "..%2F..%2Fetc%2Fpasswd",
                "a" * 5000,
                "12345678123456781234567812345678",
                "%FF%FE",
                "NaN",
            ]
        )
        method, path = r.choice(
            [
                ("GET", f"/v1/screening-jobs/{ident}"),
                ("GET", f"/v1/screening-jobs/{ident}/results?format={r.choice(['csv', 'xml', '', '%00'])}"),
                ("DELETE", f"/v1/screening-jobs/{ident}"),
                (
                    "GET",
                    f"/v1/screening-jobs?limit={r.choice(['0', '-1', 'NaN', '1e999', '501', 'x', '9' * 50])}",
                ),
                ("GET", "/v1/nope"),
                ("PUT", "/v1/predict"),
                ("GET", "/v1/predict"),
                ("GET", f"/health?{'x=' * 1000}"),
                ("GET", "/v1/models?x=%ED%A0%80"),
                ("POST", "/v1/models"),
            ]
        )
        return BadRequest("bad_path", method, path, None, {"x-api-key": API_KEY})

    def bad_headers(self) -> BadRequest:
        r = self.rng
        _, path, base = r.choice(self._bases())
        headers = r.choice(
            [
                {"content-type": "text/plain"},
                {"content-type": "application/x-www-form-urlencoded"},
                {"content-type": "multipart/form-data; boundary=x"},
                {"content-type": "application/json; charset=latin-1"},
                {"content-type": "application/json", "x-api-key": "wrong"},
                {"content-type": "application/json", "x-api-key": ""},
                {"content-type": "application/json", "x-api-key": ("é" * 10).encode("latin-1")},
                {"content-type": "application/json", "x-request-id": "<script>" * 20},
                {"content-type": "application/json", "content-encoding": "gzip"},
            ]
        )
        return BadRequest("bad_headers", "POST", path, json.dumps(base).encode(), headers)

    def all_categories(self) -> list[Callable[[], BadRequest]]:
        return [
            self.nonfinite, self.wrong_type, self.missing_or_extra, self.malformed, self.deep, self.size,
            self.bad_formula, self.bad_spec, self.bad_path, self.bad_headers,
        ]  # fmt: skip

    def requests(self, n: int) -> Iterator[BadRequest]:
        categories = self.all_categories()
        for i in range(n):
            yield categories[i % len(categories)]()


# --------------------------------------------------------------------------------------------- raw socket
def raw_cases(port: int) -> list[tuple[str, int | None, float]]:
    """(case, status or None if the server closed without answering, seconds): cases httpx cannot send."""
    cases = {
        "declares 1000 bytes, sends 10": b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"  # noqa: E501
        b'Content-Length: 1000\r\n\r\n{"items":[',
        "bad Content-Length": b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n{}",
        "chunked, never finished": b'POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"ite',  # noqa: E501
        "negative Content-Length": b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    }
    out = []
    for name, payload in cases.items():
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT_S + 20) as sock:
            sock.sendall(payload)
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except TimeoutError:
                pass
        out.append((name, _status(data), time.monotonic() - start))
    slow = b"GET /health HTTP/1.1\r\nHost: x\r\nUser-Agent: slowloris\r\nAccept: */*\r\n\r\n"
    for name, payload in (("headers 1 byte / 0.1 s (slowloris)", slow), ("connects, sends nothing", b"")):
        start = time.monotonic()
        data = _drip(port, payload, every_s=0.1, wait_s=HEADER_TIMEOUT_S + 30)
        out.append((name, _status(data), time.monotonic() - start))
    return out


def _status(data: bytes) -> int | None:
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def _drip(port: int, payload: bytes, every_s: float, wait_s: float) -> bytes:
    """Send ``payload`` a byte every ``every_s`` until the server answers and closes (or ``wait_s``)."""
    start = time.monotonic()
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.settimeout(every_s)
        sent = 0
        while time.monotonic() - start < wait_s:
            if sent < len(payload):
                try:
                    sock.sendall(payload[sent : sent + 1])
                    sent += 1
                except OSError:
                    pass
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data


def cap_case(port: int) -> tuple[int | None, int | None]:
    """MAX_CONNECTIONS idle connections per server worker process, then one request: (its status while
    they are open, a request's status after they are closed). The 503 is the designed overload answer."""
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(MAX_CONNECTIONS * 2)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            busy = _status(sock.recv(65536))
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        after = _status(sock.recv(65536))
    return busy, after


def kill_9_case(server: subprocess.Popen[bytes]) -> tuple[int, int, float]:
    """kill -9 of the server: (processes below it before, still alive after, seconds until none were)."""
    from screening.process_guard import descendants, process_table

    table = process_table()
    below = {p: table[p][1] for p in descendants([server.pid], table) if p != server.pid}
    server.kill()
    server.wait()
    start = time.monotonic()
    left = dict(below)
    while left and time.monotonic() - start < 30:
        table = process_table()
        left = {p: t for p, t in left.items() if table.get(p, (0, -1))[1] == t}
        time.sleep(0.1)
    for pid in left:  # report them, but do not leave them running
        os.kill(pid, 9)
    return len(below), len(left), time.monotonic() - start


# --------------------------------------------------------------------------------------------- set-up
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train_store(root: Path) -> str:
    from models import tracking
    from models.targets import TargetName
    from models.training import TrainingConfig, train_target

    uri = tracking.default_tracking_uri(root)
    for target in TargetName:
        result = train_target(target, ROOT / "data", TrainingConfig(quick=True, n_splits=3, studies=False))
        logged = tracking.log_training_run(
            tracking_uri=uri, target=target, model=result.model, input_example=result.input_example,
            params=result.params(), metrics=result.flat_metrics(), figures=result.figures,
            model_card=result.model_card,
        )  # fmt: skip
        tracking.register_champion(tracking_uri=uri, target=target, logged=logged)
    return uri


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2400, help="bad requests over HTTP (>= 2,000 for the issue)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tracking-uri", default=None, help="store with champions (default: train quick ones)"
    )
    parser.add_argument(
        "--store-dir",
        type=Path,
        default=None,
        help="train the quick champions here once and reuse them next run",
    )
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="nascreen-fuzz-")
    root = Path(scratch.name)
    t0 = time.monotonic()
    if args.tracking_uri:
        uri = args.tracking_uri
    elif args.store_dir is not None and (args.store_dir / "mlruns" / "mlflow.db").exists():
        from models import tracking

        uri = tracking.default_tracking_uri(args.store_dir)
    else:
        uri = train_store(args.store_dir or root / "store")
    print(f"champions ready in {time.monotonic() - t0:.0f} s ({uri})")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RAY_USAGE_STATS_ENABLED": "0",
        "NASCREEN_API_KEY": API_KEY,
        "NASCREEN_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "NASCREEN_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "NASCREEN_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "NASCREEN_MAX_JOB_CANDIDATES": "200",
        "NASCREEN_CHUNK_SIZE": "50",
    }
    cmd = [
        sys.executable, "-c", "from service.cli import main; main()", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--tracking-uri", uri, "--project-root", str(root), "--executor", "local",
        "--log-level", "warning", "--workers", "2",
    ]  # fmt: skip
    log_path = root / "server.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    failures: list[tuple[BadRequest, int, str]] = []
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                print(f"server exited during start-up:\n{log_path.read_text()[-3000:]}", file=sys.stderr)
                return 1
            try:
                if httpx.get(f"{base}/health", timeout=2).json().get("status") == "ok":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                print("server did not start in time", file=sys.stderr)
                return 1
            time.sleep(0.5)

        by_status: Counter[int] = Counter()
        by_category: dict[str, Counter[int]] = defaultdict(Counter)
        started = time.monotonic()
        with httpx.Client(base_url=base, timeout=60) as client:
            for req in Generator(args.seed).requests(args.n):
                try:
                    r = client.request(req.method, req.path, content=req.body, headers=req.headers)
                    status, text = r.status_code, r.text
                except httpx.HTTPError as exc:  # the server dropped the connection: as bad as a 500
                    status, text = 599, f"{type(exc).__name__}: {exc}"
                by_status[status] += 1
                by_category[req.category][status] += 1
                if status >= 500:
                    failures.append((req, status, text[:300]))
        seconds = time.monotonic() - started
        raw = raw_cases(port)
        cap = cap_case(port)
        alive = server.poll() is None and httpx.get(f"{base}/health", timeout=10).status_code == 200
        killed = kill_9_case(server)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    print(f"\n{args.n} bad requests in {seconds:.1f} s ({args.n / seconds:.0f} req/s, under load if shared)")
    print("by status: " + ", ".join(f"{s}: {c}" for s, c in sorted(by_status.items())))
    for category, counts in sorted(by_category.items()):
        print(f"  {category:17s} " + ", ".join(f"{s}: {c}" for s, c in sorted(counts.items())))
    print("raw socket:")
    for name, status, secs in raw:
        print(f"  {name:36s} -> {status if status is not None else 'closed, no answer'} in {secs:.1f} s")
    print(
        f"connection cap ({MAX_CONNECTIONS} per worker; {2 * MAX_CONNECTIONS} idle connections open): "
        f"{cap[0]} (designed overload answer, not counted below); after they closed: {cap[1]}"
    )
    print(f"server alive and healthy after the fuzz: {alive}")
    print(
        f"kill -9 of the server: {killed[0]} processes below it, {killed[1]} still running after "
        f"{killed[2]:.1f} s"
    )
    print(f"responses >= 500: {len(failures)}")
    for req, status, text in failures[:50]:
        print(f"  {status} {req.describe()}\n      -> {text}")
    raw_5xx = [r for r in raw if r[1] is not None and r[1] >= 500]
    return 1 if failures or raw_5xx or not alive or killed[1] or cap[1] != 200 else 0


if __name__ == "__main__":
    raise SystemExit(main())
