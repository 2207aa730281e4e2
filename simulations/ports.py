"""Listening ports for the processes a simulation script starts (see src/chaos/ports.rs).

A port the kernel hands out for bind(0) comes from the range it also uses for the source
port of every outgoing connection, so another socket may take it before the child binds
it. Ports below the ephemeral range (32768 on Linux) are never chosen by the kernel on its
own; each script walks its own stretch of them, offset by its pid.
"""

import os
import socket

LOW, SPAN = 10_000, 22_000
_next = (os.getpid() * 2654435761) % SPAN


def free_port():
    """A free 127.0.0.1 port below the ephemeral range, not handed out before."""
    global _next
    for _ in range(SPAN):
        port, _next = LOW + _next, (_next + 1) % SPAN
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port below the ephemeral range")
