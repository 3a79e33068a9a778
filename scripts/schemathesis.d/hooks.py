"""Schemathesis hooks for weft, run before each request of every phase.

- Valid data for `POST /components` is a WebAssembly component, which no schema can describe:
  each positive case sends one of the components in $WEFT_FUZZ_COMPONENTS (in turn), so deploys
  and checks happen for real. Negative cases keep their generated bodies.
- A positive `POST /instances/{id}/upgrade` names one of those components (in turn) as `to`,
  so an instance reached through the document's links is replayed on a real component; every
  other one moves $WEFT_FUZZ_RUNNING, an instance the script started that waits for an event,
  so upgrades also succeed (onto its own component) and diverge (onto the other).
- A `waitForCompletion` may hold a request up to 60 s on an instance that does not end; a wait
  over 250 ms is sent as `250ms` (a value the document allows too), so the run stays short.
"""

import hashlib
import itertools
import os
import pathlib
import re

import schemathesis

_dir = pathlib.Path(os.environ["WEFT_FUZZ_COMPONENTS"])
_wasm = sorted(p.read_bytes() for p in _dir.glob("*.wasm"))
_components = itertools.cycle(_wasm)
_digests = itertools.cycle([hashlib.sha256(w).hexdigest() for w in _wasm])
_running_digests = itertools.cycle([hashlib.sha256(w).hexdigest() for w in _wasm])
_running = os.environ.get("WEFT_FUZZ_RUNNING")
_upgrades = itertools.count()
_WAIT = re.compile(r"^((0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|60000)ms|([0-9]|[1-5][0-9]|60)s)$")
_LONGEST_WAIT_MS = 250


@schemathesis.hook
def before_call(context, case, kwargs):
    operation = case.operation
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if positive and operation.method.upper() == "POST" and operation.path == "/components":
        case.body = next(_components)
    query = case.query
    if positive and operation.path == "/instances/{id}/upgrade" and isinstance(query, dict):
        if _running and next(_upgrades) % 2 == 0:
            case.path_parameters["id"] = _running
            query["to"] = next(_running_digests)
        else:
            query["to"] = next(_digests)
    if isinstance(query, dict):
        wait = query.get("waitForCompletion")
        if isinstance(wait, str) and _WAIT.match(wait):
            ms = int(wait[:-2]) if wait.endswith("ms") else int(wait[:-1]) * 1000
            if ms > _LONGEST_WAIT_MS:
                query["waitForCompletion"] = f"{_LONGEST_WAIT_MS}ms"
