"""``python -m bench crypto``: SM2 signatures and SM3 through certstore, against OpenSSL and pure-Python gmssl.

* certstore: ``SoftwareSigner.sign(message)`` and ``SM2PublicKey.verify(message, signature)`` on a 1 KiB
  message with the default ID — the full path: cached Z_A, SM3(Z_A ‖ M), then signing in GmSSL's C code with
  the key prepared once (``certstore.crypto.gmssl_sign``: (1 + d)⁻¹ kept, a fresh random k per signature) or,
  where that is unavailable, the ``gmssl-pyx`` call; verification in OpenSSL's libcrypto; DER in and out.
* reference: ``openssl speed -seconds N sm2`` (OpenSSL 3.0, ``apps/speed.c``): each sign iteration is
  ``EVP_DigestSignInit(SM3)`` + ``EVP_DigestSign`` of a 20-byte buffer under the ID
  ``TLSv1.3+GM+Cipher+Suite`` — so Z_A (four SM3 blocks) is recomputed and the operation re-initialised every
  time, a fresh nonce from OpenSSL's DRBG, [k]G on OpenSSL's generic prime-field code (3.0 has no
  SM2-specific arithmetic on x86-64), DER out; verify iterations are ``EVP_DigestVerifyInit`` +
  ``EVP_DigestVerify`` likewise. Per-call work outside the curve arithmetic is a few µs on both sides
  (OpenSSL: init and Z_A; certstore: SM3 over 1 KiB, Python call frames), small against ~200 µs per
  operation, so the ratio compares the signature implementations. Run in the same process tree, pinned to the
  same CPU.
* naive baseline: the pure-Python ``gmssl`` package (``CryptSM2.sign_with_sm3`` / ``verify_with_sm3``).
* SM3 throughput: ``hashlib.new("sm3")`` on 16 KiB buffers against ``openssl speed -evp sm3 -bytes 16384``.

Rates are operations per second of *CPU time* on both sides: ``openssl speed`` divides by the CPU time it used
unless given ``-elapsed``, and our loops are timed with :func:`time.process_time` (:func:`cpu_rate`). On a
machine shared with other work, wall-clock rates measure the neighbours as much as the code: a wall-clock
certstore rate against openssl's CPU-time rate understated the ratio by up to 2× there.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable

from bench import BenchContext, Rate, Results, register, single_cpu
from certstore.crypto.sm2 import (
    SM2PrivateKey,
    SoftwareSigner,
    decode_signature,
    encode_signature,
    sm3,
)

MESSAGE_SIZE = 1024
SM3_BLOCK = 16384
NAN = float("nan")

__all__ = ["cpu_rate", "crypto", "parse_openssl_sm2", "parse_openssl_sm3"]


def _openssl() -> str | None:
    return shutil.which("openssl")


def _run_openssl_speed(args: list[str], seconds: int) -> str:
    openssl = _openssl()
    assert openssl is not None
    completed = subprocess.run(
        # Without -elapsed, openssl speed divides by the CPU time it used; so do our rates (cpu_rate).
        [openssl, "speed", "-seconds", str(seconds), *args],
        capture_output=True,
        text=True,
        timeout=60 + 4 * seconds,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"openssl speed {' '.join(args)} failed: {completed.stderr.strip()[-300:]}")
    return completed.stdout + completed.stderr


_SM2_TABLE = re.compile(r"^\s*\d+\s+bits\s+SM2\b.*?([\d.]+)s\s+([\d.]+)s\s+([\d.]+)\s+([\d.]+)\s*$", re.M)
_SM2_DOING = re.compile(r"(\d+)\s+\d+\s+bits\s+CurveSM2\s+(signs?|verify)\s+in\s+([\d.]+)s")


def parse_openssl_sm2(output: str) -> tuple[float, float]:
    """(sign/s, verify/s) from ``openssl speed sm2`` output.

    OpenSSL 3.0 ends with a table whose SM2 row reads
    ``256 bits SM2 (CurveSM2)   0.0002s   0.0002s   4349.0   4710.1`` (s/sign, s/verify, sign/s, verify/s);
    the progress lines (``4349 256 bits CurveSM2 signs in 1.00s``) are the fallback.
    """
    table = _SM2_TABLE.search(output)
    if table:
        return float(table.group(3)), float(table.group(4))
    rates: dict[str, float] = {}
    for count, kind, seconds in _SM2_DOING.findall(output):
        rates["verify" if kind == "verify" else "sign"] = int(count) / float(seconds)
    if len(rates) == 2:
        return rates["sign"], rates["verify"]
    raise ValueError("no SM2 results in the openssl speed output")


_SM3_ROW = re.compile(r"^sm3\s+([\d.]+)k\s*$", re.M)


def parse_openssl_sm3(output: str) -> float:
    """MB/s (10^6 bytes) from ``openssl speed -evp sm3 -bytes 16384`` (the row is in 1000s of bytes/s)."""
    row = _SM3_ROW.search(output)
    if not row:
        raise ValueError("no sm3 row in the openssl speed output")
    return float(row.group(1)) / 1000.0


def cpu_rate(function: Callable[[], object], seconds: float, *, min_calls: int = 3) -> Rate:
    """Like :meth:`BenchContext.rate`, but ``seconds`` and the result are in CPU time of this process (user +
    system), the divisor ``openssl speed`` uses; gives up after 20× ``seconds`` of wall time."""
    function()
    cpu, wall = time.process_time, time.perf_counter
    calls = 0
    start, wall_deadline = cpu(), wall() + 20 * seconds
    while True:
        function()
        calls += 1
        used = cpu() - start
        if (used >= seconds or wall() >= wall_deadline) and calls >= min_calls:
            return Rate(calls, used)


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 and not math.isnan(theirs) else NAN


def _certstore_sm2(ctx: BenchContext, seconds: float) -> tuple[Rate, Rate]:
    signer = SoftwareSigner(SM2PrivateKey.generate())
    message = os.urandom(MESSAGE_SIZE)
    signature = signer.sign(message)
    if not signer.public_key.verify(message, signature):
        raise RuntimeError("certstore could not verify its own signature")
    sign = cpu_rate(lambda: signer.sign(message), seconds)
    verify = cpu_rate(lambda: signer.public_key.verify(message, signature), seconds)
    path = "prepared key" if signer.private_key._prepared is not None else "gmssl-pyx binding"
    ctx.log(
        f"certstore  sign   {sign.per_s:9.1f}/s  ({sign.us_per_call:6.1f} µs, {sign.calls} calls, {path})"
    )
    ctx.log(f"certstore  verify {verify.per_s:9.1f}/s  ({verify.us_per_call:6.1f} µs, {verify.calls} calls)")
    return sign, verify


def _openssl_sm2(ctx: BenchContext, seconds: float) -> tuple[float, float]:
    if _openssl() is None:
        ctx.log("openssl: NOT FOUND on PATH — no reference; ratios are nan (install OpenSSL 3 to compare)")
        return NAN, NAN
    whole_seconds = max(1, round(seconds))
    try:
        output = _run_openssl_speed(["sm2"], whole_seconds)
        sign, verify = parse_openssl_sm2(output)
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        ctx.log(f"openssl speed sm2: no result ({exc}); ratios are nan")
        return NAN, NAN
    ctx.log(
        f"openssl    sign   {sign:9.1f}/s  verify {verify:9.1f}/s  (openssl speed -seconds {whole_seconds} sm2)"
    )
    return sign, verify


def _gmssl_python(ctx: BenchContext, seconds: float) -> tuple[float, float]:
    try:
        from gmssl import sm2 as gmssl_sm2  # pure Python; a test extra
    except ImportError:
        ctx.log("gmssl (pure Python): not installed (pip install -e '.[test]'); baseline is nan")
        return NAN, NAN
    # gmssl strips a leading "04" with str.lstrip("04"), which also eats leading '0'/'4' digits of x: pick a
    # key whose x coordinate starts with neither.
    key = SM2PrivateKey.generate()
    while key.public_key.point.hex()[0] in "04":
        key = SM2PrivateKey.generate()
    crypt = gmssl_sm2.CryptSM2(private_key=key.scalar.hex(), public_key=key.public_key.point.hex())
    message = os.urandom(MESSAGE_SIZE)
    # Cross-check both ways so the baseline is known to do the same computation (Z_A, SM3, default ID).
    theirs = crypt.sign_with_sm3(message)
    r, s = int(theirs[:64], 16), int(theirs[64:], 16)
    ours = decode_signature(SoftwareSigner(key).sign(message))
    if not key.public_key.verify(message, encode_signature(r, s)) or not crypt.verify_with_sm3(
        f"{ours[0]:064x}{ours[1]:064x}", message
    ):
        raise RuntimeError("gmssl and certstore disagree on SM2-with-SM3 signatures")
    sign = cpu_rate(lambda: crypt.sign_with_sm3(message), seconds)
    verify = cpu_rate(lambda: crypt.verify_with_sm3(theirs, message), seconds)
    ctx.log(
        f"gmssl-py   sign   {sign.per_s:9.1f}/s  verify {verify.per_s:9.1f}/s  (pure Python, naive baseline)"
    )
    return sign.per_s, verify.per_s


def _sm3(ctx: BenchContext, seconds: float) -> tuple[float, float]:
    if sm3(b"abc").hex() != "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0":
        raise RuntimeError("hashlib SM3 gives a wrong digest")
    block = os.urandom(SM3_BLOCK)
    rate = cpu_rate(lambda: hashlib.new("sm3", block).digest(), seconds, min_calls=10)
    ours = rate.per_s * SM3_BLOCK / 1e6
    theirs = NAN
    if _openssl() is not None:
        try:
            theirs = parse_openssl_sm3(
                _run_openssl_speed(["-bytes", str(SM3_BLOCK), "-evp", "sm3"], max(1, round(seconds)))
            )
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            ctx.log(f"openssl speed -evp sm3: no result ({exc})")
    ctx.log(
        f"SM3 hashlib {ours:8.1f} MB/s   openssl -evp sm3 {theirs:8.1f} MB/s   ({SM3_BLOCK}-byte buffers)"
    )
    return ours, theirs


@register("crypto", "SM2 sign/verify and SM3 throughput vs OpenSSL speed and pure-Python gmssl")
def crypto(ctx: BenchContext) -> Results:
    seconds = ctx.pick(full=2.0, quick=0.3)
    with single_cpu() as cpu:
        where = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
        ctx.log(
            f"SM2, {MESSAGE_SIZE}-byte message, default ID, one core ({where}), {seconds:g} s per measurement"
        )
        sign, verify = _certstore_sm2(ctx, seconds)
        openssl_sign, openssl_verify = _openssl_sm2(ctx, seconds)
        gmssl_sign, gmssl_verify = _gmssl_python(ctx, ctx.pick(full=1.0, quick=0.2))
        sm3_mb_s, openssl_sm3_mb_s = _sm3(ctx, ctx.pick(full=1.0, quick=0.2))

    sign_ratio, verify_ratio = _ratio(sign.per_s, openssl_sign), _ratio(verify.per_s, openssl_verify)
    ctx.log(
        f"ratio to OpenSSL: sign {sign_ratio:.2f}x (goal >= 1.3), verify {verify_ratio:.2f}x; "
        f"vs pure-Python gmssl: sign {_ratio(sign.per_s, gmssl_sign):.0f}x, "
        f"verify {_ratio(verify.per_s, gmssl_verify):.0f}x"
    )
    return {
        "sign_per_s": sign.per_s,
        "verify_per_s": verify.per_s,
        "openssl_sign_per_s": openssl_sign,
        "openssl_verify_per_s": openssl_verify,
        "sign_ratio_vs_openssl": sign_ratio,
        "verify_ratio_vs_openssl": verify_ratio,
        "gmssl_py_sign_per_s": gmssl_sign,
        "gmssl_py_verify_per_s": gmssl_verify,
        "sm3_mb_per_s": sm3_mb_s,
        "openssl_sm3_mb_per_s": openssl_sm3_mb_s,
    }
