"""A short check for a lent GPU machine: which provider each shipped model really gets, and
its latency at batch 1, 8 and 32, with and without IO binding (on CUDA only).

    python -m tests.perf.gpu_check [--models-dir models] [--providers auto]

It prints one line per model and batch size; with ``--require-gpu`` it exits 1 when CUDA is
not the provider in use (so a silent CPU fallback fails the check).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from service.config import Settings
from service.repository.registry import Registry
from service.repository.runtime import cuda_unavailable_reason
from service.repository.signature import warmup_feeds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--providers", default="auto")
    parser.add_argument("--require-gpu", action="store_true")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print("CUDA:", cuda_unavailable_reason() or "available")
    registry = Registry(Settings(models_dir=args.models_dir, providers=args.providers))
    registry.load_all()
    on_gpu = True
    for name, versions in sorted(registry.models.items()):
        model = versions[max(versions)]
        if not model.ready or model.session is None or model.manifest is None:
            print(f"{name}: not ready: {model.reason}")
            on_gpu = False
            continue
        session, manifest = model.session, model.manifest
        on_gpu &= session.uses_cuda
        for batch in (1, 8, 32):
            feeds = {
                key: np.repeat(value, batch, axis=0)
                for key, value in warmup_feeds(manifest, session.inputs).items()
            }
            for bound in sorted({False, session.uses_cuda}):
                session.use_io_binding = bound
                session.run(feeds, manifest.output_names())
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    session.run(feeds, manifest.output_names())
                    times.append((time.perf_counter() - start) * 1000)
                print(
                    f"{name:18} {session.providers[0]:26} batch {batch:2}"
                    f"{' io-binding' if bound else '':11}: "
                    f"median {statistics.median(times):7.2f} ms, "
                    f"{batch * 1000 / statistics.median(times):8.1f} items/s"
                )
    return 1 if args.require_gpu and not on_gpu else 0


if __name__ == "__main__":
    sys.exit(main())
