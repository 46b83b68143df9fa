"""nft transactions in-process through libnftables, inside a chosen namespace.

Running the `nft` program costs a fork, an exec and its start-up (~25 ms here), which
was half of an endpoint change's cost. libnftables (the library `nft` itself is built
on, from Debian's libnftables1, a dependency of the nftables package) takes the same
script text in-process: a helper thread joins the namespace, makes a context (its
netlink socket opens in that namespace), runs the script as one transaction, and frees
it. Calls are serialised: the library keeps global state.

Freeing a context closes its netlink socket, and the kernel makes that close wait
for an RCU grace period: 5-20 ms here, longer than the transaction itself (~1 ms
for an endpoint change). The transaction is committed, and the rules live, before
that; so the context is freed by a helper thread after the caller has its answer,
and the next call waits for it (the lock is held until the free is done).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from netagent.kernel import netns

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
#: nft_ctx_output_set_flags: NFT_CTX_OUTPUT_JSON (libnftables.h).
OUTPUT_JSON = 1 << 4


def _load() -> ctypes.CDLL | None:
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            return None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def available() -> bool:
    return _load() is not None


def run(ns: str | None, script: str) -> tuple[int, str]:
    """Run an nft script in namespace `ns` (None: ours); (return code, error text)."""
    rc, _out, err = _run(ns, script, 0)
    return rc, err


def run_json(ns: str | None, command: str) -> tuple[int, str, str]:
    """Run a read-only nft command (`list table ip vxswarm`) in `ns` with JSON output;
    (return code, output, error text). For drift checks: ~1 ms instead of a process."""
    return _run(ns, command, OUTPUT_JSON)


def _run(ns: str | None, script: str, flags: int) -> tuple[int, str, str]:
    lib = _load()
    if lib is None:
        raise OSError("libnftables is not installed")

    def body() -> tuple[int, str, str, int]:
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            return 1, "", "nft_ctx_new failed", 0
        try:
            if flags:
                lib.nft_ctx_output_set_flags(ctx, flags)
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            rc = lib.nft_run_cmd_from_buffer(ctx, script.encode())
            out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
            err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
            return rc, out, err, ctx
        except BaseException:
            lib.nft_ctx_free(ctx)
            raise

    _lock.acquire()
    try:
        rc, out, err, ctx = netns.in_ns_thread(ns, body)
    except BaseException:
        _lock.release()
        raise
    if not ctx:
        _lock.release()
        return rc, out, err

    def free() -> None:
        try:
            lib.nft_ctx_free(ctx)
        finally:
            _lock.release()  # a plain Lock: released by the thread that ends the call

    threading.Thread(target=free, name="nft-ctx-free", daemon=True).start()
    return rc, out, err
