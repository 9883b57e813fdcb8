"""A helper process that computes psfmodels planes, with its own GIL.

Run as ``python -m acquire.sim.psf_helper`` by
:mod:`acquire.sim.psfmodels_calls`: it reads pickled requests
``(zv, nx, options)`` from standard input and writes back
``("ok", planes)`` or ``("error", message)`` until its input closes. A
module run by name (``-m``), not :mod:`multiprocessing`: a spawned worker
re-imports the parent's main script, which a user's script without a
``__main__`` guard would run again in the child.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any


def serve(requests: Any, replies: Any) -> None:
    """Answer requests from the binary stream ``requests`` until it ends."""
    from acquire.sim.psfmodels_calls import planes_in_calls

    while True:
        try:
            zv, nx, options = pickle.load(requests)
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", planes_in_calls(zv, nx, options))
        except Exception as error:  # sent back, raised in the caller
            reply = ("error", f"{type(error).__name__}: {error}")
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


if __name__ == "__main__":
    # replies on a copy of standard output; anything a library prints (at the
    # C level too) goes to standard error, not into the reply stream
    with os.fdopen(os.dup(sys.stdout.fileno()), "wb") as reply_stream:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        serve(sys.stdin.buffer, reply_stream)
