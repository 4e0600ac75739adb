"""The random streams of Google's FDE reference code (C++ `std::mt19937` + libstdc++ distributions), in numpy.

The reference (github.com/google/graph-mining, sketching/point_cloud) draws its SimHash, AMS and Count-Sketch
matrices from `std::mt19937(seed)` through libstdc++'s `normal_distribution<float>` (Marsaglia's polar method),
`uniform_int_distribution` (Lemire's nearly-divisionless reduction, GCC >= 11) and `bernoulli_distribution(0.5)`
(one `generate_canonical<double>`: two 32-bit words). Reproducing those streams word for word makes our FDEs equal
to the reference's for the same seed, which the tests check against the compiled reference (PyPI `muvfde`).

numpy's MT19937 is the same generator; its state is set from the seed with the reference's `init_genrand`, so
`random_raw()` yields exactly the words `std::mt19937(seed)()` yields. Everything is vectorised; only the rare
rejections of the integer reduction (probability < range / 2**32 per draw) are resolved one at a time.
"""

from __future__ import annotations

import numpy as np

_N = 624


class WordStream:
    """The 32-bit outputs of `std::mt19937(seed)`, read in order (buffered, vectorised)."""

    def __init__(self, seed: int) -> None:
        key = np.empty(_N, dtype=np.uint64)
        s = int(seed) & 0xFFFFFFFF
        for i in range(_N):  # init_genrand: 624 scalar steps, once per stream
            key[i] = s
            s = (1812433253 * (s ^ (s >> 30)) + i + 1) & 0xFFFFFFFF
        self._bg = np.random.MT19937(0)
        self._bg.state = {"bit_generator": "MT19937", "state": {"key": key.astype(np.uint32), "pos": _N}}
        self._buf = np.empty(0, dtype=np.uint64)
        self._pos = 0

    def peek(self, n: int) -> np.ndarray:
        """The next n words without consuming them (uint64 holding 32-bit values)."""
        if self._pos + n > len(self._buf):
            if self._pos > len(self._buf):  # skipped past the buffer: drop those words from the generator
                self._bg.random_raw(self._pos - len(self._buf))
                self._buf, self._pos = self._buf[:0], 0
            rest = self._buf[self._pos:]
            self._buf = np.concatenate([rest, self._bg.random_raw(max(n, 4096)).astype(np.uint64)])
            self._pos = 0
        return self._buf[self._pos:self._pos + n]

    def skip(self, n: int) -> None:
        self._pos += n


def normal_floats(stream: WordStream, n: int) -> np.ndarray:
    """n draws of libstdc++ `normal_distribution<float>(0, 1)` from one stream: the polar method in float32,
    each accepted pair giving y*m then x*m."""
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        pairs = int((n - have) / 2 / 0.78) + 16
        w = stream.peek(2 * pairs)
        u = (w.astype(np.float32) / np.float32(4294967296.0)).astype(np.float32)
        u = np.where(u >= 1, np.nextafter(np.float32(1), np.float32(0)), u)  # generate_canonical's clamp
        v = (np.float32(2) * u).astype(np.float64) - 1.0  # float * float, then `- 1.0` in double, stored as float
        v = v.astype(np.float32)
        x, y = v[0::2], v[1::2]
        r2 = x * x + y * y
        ok = (r2 <= 1.0) & (r2 != 0.0)
        need_pairs = (n - have + 1) // 2
        accepted = np.flatnonzero(ok)
        if len(accepted) >= need_pairs:
            used = accepted[need_pairs - 1] + 1
            accepted = accepted[:need_pairs]
        else:
            used = pairs
        stream.skip(2 * int(used))
        xa, ya, r = x[accepted], y[accepted], r2[accepted]
        mult = np.sqrt((np.float32(-2) * np.log(r.astype(np.float64)).astype(np.float32)) / r).astype(np.float32)
        block = np.empty(2 * len(accepted), dtype=np.float32)
        block[0::2] = ya * mult
        block[1::2] = xa * mult
        out.append(block)
        have += len(block)
    return np.concatenate(out)[:n]


def _bernoulli_half(w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """`bernoulli_distribution(0.5)` from two words: generate_canonical<double> = (w0 + w1 * 2**32) / 2**64 < 0.5."""
    s = w0.astype(np.float64) + w1.astype(np.float64) * 4294967296.0
    return s / 18446744073709551616.0 < 0.5


def index_sign_pairs(stream: WordStream, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """n consecutive draws of (uniform_int_distribution(0, size - 1), 2 * bernoulli(0.5) - 1), as the reference's
    AMS and Count-Sketch loops take them. Returns (index int64, sign float32)."""
    rng = np.uint64(size)
    threshold = np.uint64((1 << 32) % size)  # (-range) % range in 32-bit arithmetic
    idx = np.empty(n, dtype=np.int64)
    sign = np.empty(n, dtype=np.float32)
    done = 0
    while done < n:
        m = n - done
        w = stream.peek(3 * m)
        a, b, c = w[0::3], w[1::3], w[2::3]
        prod = a * rng
        reject = (prod & np.uint64(0xFFFFFFFF)) < threshold
        good = int(np.argmax(reject)) if reject.any() else m
        idx[done:done + good] = (prod[:good] >> np.uint64(32)).astype(np.int64)
        sign[done:done + good] = np.where(_bernoulli_half(b[:good], c[:good]), 1.0, -1.0)
        stream.skip(3 * good)
        done += good
        if done < n:  # one draw whose reduction rejects: redraw words until one is accepted
            while True:
                word = stream.peek(1)[0]
                stream.skip(1)
                prod1 = word * rng
                if (prod1 & np.uint64(0xFFFFFFFF)) >= threshold:
                    break
            idx[done] = int(prod1 >> np.uint64(32))
            w2 = stream.peek(2)
            sign[done] = 1.0 if _bernoulli_half(w2[:1], w2[1:2])[0] else -1.0
            stream.skip(2)
            done += 1
    return idx, sign
