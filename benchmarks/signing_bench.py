"""Cost of signed trades (`trade.signer_key`): import, one fresh transaction, one round of ten.

Run by hand (not a test):  .venv/bin/python benchmarks/signing_bench.py [--count 200]

Against the reference stack's mock providers on 127.0.0.1 (real HTTP), so the figures include
the chain reads (chain id once; nonce, latest block and priority fee once per round).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import UTC, datetime

from omnidrill.profile import TargetProfile, resolve
from omnidrill.txsource import tx_source
from omnihub_ref.rpc_mock import create_rpc_app
from omnihub_ref.serving import serve_in_thread


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=200, help="transactions per measurement")
    args = ap.parse_args()
    t0 = time.perf_counter()
    import eth_account  # noqa: F401

    import_s = time.perf_counter() - t0
    with (
        serve_in_thread(create_rpc_app("primary")) as primary,
        serve_in_thread(create_rpc_app("fallback")) as fallback,
    ):
        profile = TargetProfile.model_validate(
            {
                "name": "bench",
                "base_url": "http://127.0.0.1:9",
                "keys": {"anon": {"value": "anon-bench"}, "service_role": {"value": "sr-bench"}},
                "controls": {"kind": "postgrest", "url": "http://127.0.0.1:9/rest/v1"},
                "rpc_direct": {"primary": primary.url, "fallback": fallback.url},
                "trade": {"signer_key": {"env": "BENCH_KEY"}, "allow_broadcast": True},
            }
        )
        source = tx_source(resolve(profile, {"BENCH_KEY": os.urandom(32).hex()}))
        source.fresh()  # chain id and first reads out of the way
        singles = []
        for _ in range(args.count):
            t = time.perf_counter()
            source.fresh()  # outside a batch: reads nonce and fees again every time
            singles.append(time.perf_counter() - t)
        rounds = []
        for _ in range(max(1, args.count // 10)):
            t = time.perf_counter()
            with source.batch():
                for _ in range(10):
                    source.fresh()
            rounds.append(time.perf_counter() - t)
        source.close()
    print(f"machine: {platform.node()} ({os.cpu_count()} cores), {datetime.now(UTC):%Y-%m-%d}")
    print(f"import eth_account: {import_s * 1000:.0f} ms")
    print(
        f"one fresh transaction with its chain reads: median "
        f"{statistics.median(singles) * 1000:.1f} ms, max {max(singles) * 1000:.1f} ms"
    )
    print(
        f"a round of 10 (reads once): median {statistics.median(rounds) * 1000:.1f} ms "
        f"({statistics.median(rounds) * 100:.1f} ms per transaction)"
    )


if __name__ == "__main__":
    main()
