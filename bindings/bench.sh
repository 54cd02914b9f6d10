#!/usr/bin/env bash
# One step (a submit: the record as text in, the request out, the bank's answer in, the
# outcome and the record as text out) from Python and from Node, against the same step in
# Rust through the host API and natively, all measured in this run on the fixture
# tests/golden/bench_step.json. Release builds. Prints a Markdown table of ratios
# (docs/benchmarks.md, "The bindings"). Needs python3 >= 3.9, node >= 18 and the registries
# (maturin, typescript) the first time; takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bindings-bench
mkdir -p "$out"

echo "== Rust: the host API's step and the native step (cargo bench -p direct-otp-benches --bench wire)" >&2
WIRE_BASELINE_OUT="$PWD/$out/rust.json" cargo bench -p direct-otp-benches --bench wire -- wire_step/ >"$out/rust.log" 2>&1

echo "== Python: a release wheel in a venv of its own" >&2
[ -x "$out/venv/bin/python" ] || python3 -m venv "$out/venv"
"$out/venv/bin/pip" install -q maturin
rm -rf "$out/wheels"
"$out/venv/bin/maturin" build -q --release -m bindings/python/Cargo.toml -o "$out/wheels" >&2
"$out/venv/bin/pip" install -q --force-reinstall "$out"/wheels/*.whl
"$out/venv/bin/python" bindings/python/bench/step.py >"$out/python.json"

echo "== Node: the release native module" >&2
(cd bindings/node && npm ci --silent && npm run -s build:native >&2 && npm run -s build)
(cd bindings/node && node bench/step.mjs) >"$out/node.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rust = json.load(open(f"{out}/rust.json"))
rows = [("Rust, native (`wire_step/native`)", rust["native_us"], None),
        ("Rust, host API (`wire_step/host`)", rust["host_us"], None)]
for lang in ("python", "node"):
    r = json.load(open(f"{out}/{lang}.json"))
    name = lang.capitalize()
    rows.append((f"{name}, raw native calls", r["raw_us"], None))
    rows.append((f"{name}, the package's classes", r["us_per_step"], None))
print("| step through | µs | / Rust host API | / Rust native |")
print("|---|---|---|---|")
for name, us, _ in rows:
    print(f"| {name} | {us:.1f} | {us / rust['host_us']:.2f}x | {us / rust['native_us']:.2f}x |")
PY
