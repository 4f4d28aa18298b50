#!/usr/bin/env python3
"""libargon2 (through argon2-cffi) verifying the same kind of PHC string as the
`verify-m19456` group of `cargo bench --bench auth`: Argon2id, m=19456 KiB, t=2,
p=1, 16-byte salt, 32-byte hash. Prints the median of the timed verifications.

    pip install argon2-cffi && python3 benches/libargon2_baseline.py

Run it right after (or right before) the criterion benchmark, on the same quiet
machine, and divide: ours ÷ libargon2 is the figure TARGETS.md asks for.
"""
import statistics
import sys
import time

import argon2

SECRET = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA"


def main(rounds: int = 60) -> None:
    hasher = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1,
                                   hash_len=32, salt_len=16)
    phc = hasher.hash(SECRET)
    for _ in range(5):  # warm up
        hasher.verify(phc, SECRET)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        hasher.verify(phc, SECRET)
        samples.append(time.perf_counter() - start)
    median = statistics.median(samples)
    print(f"libargon2 verify (argon2-cffi), m=19456 t=2 p=1: median {median * 1e3:.3f} ms "
          f"over {rounds} (min {min(samples) * 1e3:.3f}, max {max(samples) * 1e3:.3f})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
