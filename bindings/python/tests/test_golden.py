"""Golden records: the script in tests/golden/script.json (a config, and payments each
starting from its stored record, then its steps: a command, or the reply to the last
request, each at its now_ms) run through the Python Payment sans-IO API gives records and
views byte-identical to the Rust core's (<name>.record.json, <name>.view.json); and a
record kept in a SqliteStore loads back byte-identical."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import direct_otp as d

from conftest import REPO

GOLDEN = Path(os.environ.get("DIRECT_OTP_GOLDEN", REPO / "tests" / "golden"))


def scripts() -> List[Tuple[str, Dict[str, Any]]]:
    path = GOLDEN / "script.json"
    if not path.exists():
        return []
    script = json.loads(path.read_text(encoding="utf-8"))
    payments = script["payments"]
    items = payments.items() if isinstance(payments, dict) else (
        (p["name"], p) for p in payments)
    return [(name, {"config": script["config"], **p}) for name, p in items]


SCRIPTS = scripts()


def test_the_golden_files_are_there() -> None:
    if not SCRIPTS:
        if os.environ.get("CI"):
            pytest.fail(f"no golden script at {GOLDEN}")
        pytest.skip(f"no golden script at {GOLDEN} yet")
    for name, _ in SCRIPTS:
        assert (GOLDEN / f"{name}.record.json").exists(), name
        assert (GOLDEN / f"{name}.view.json").exists(), name


def run(p: Dict[str, Any]) -> d.Payment:
    config = p["config"]
    payment: Optional[d.Payment] = None
    if "record" in p:
        payment = d.Payment.from_record(p["record"])
        assert payment.to_record() == p["record"]
    request: Optional[d.Request] = None
    for step in p["steps"]:
        now = d.from_ms(step["now_ms"])
        if step.get("begin"):
            payment, request = d.Payment.begin(config, p["start"],
                                               attempt=p.get("attempt", 1), now=now)
        elif "command" in step:
            assert payment is not None
            request = payment.command(config, step["command"], now=now)
        elif "reply" in step:
            assert payment is not None and request is not None
            payment.handle(request, step["reply"], now=now)
        else:
            raise AssertionError(f"unknown step {sorted(step)}")
    assert payment is not None
    return payment


@pytest.mark.parametrize("name,p", SCRIPTS, ids=[n for n, _ in SCRIPTS])
def test_golden_record_and_view(name: str, p: Dict[str, Any], tmp_path: Path) -> None:
    payment = run(p)
    record = (GOLDEN / f"{name}.record.json").read_text(encoding="utf-8")
    view = (GOLDEN / f"{name}.view.json").read_text(encoding="utf-8")
    assert payment.to_record() == record
    assert payment.view_json(d.from_ms(p["view_ms"])) == view

    # Kept in a SqliteStore, it loads back byte for byte.
    with d.SqliteStore(tmp_path / "golden.sqlite3") as store:
        row = payment.row()
        assert row.record == record and row.key == payment.key
        assert store.insert(row)
        assert not store.insert(row), "an insert never overwrites"
        assert store.load(row.key) == record
        assert store.latest_for_order(row.order_id) == record
        assert d.Payment.from_record(store.load(row.key) or "").to_record() == record
        # A replace wins only against the revision stored.
        assert not store.replace(row.revision + 1, row)
        assert store.replace(row.revision, row)
        assert store.load(row.key) == record
