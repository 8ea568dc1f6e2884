"""Child processes on loopback, for the tests and benchmarks that start real servers (the HTTP service, moto,
PostgreSQL, MinIO, MLflow, torchrun): a free port, waiting until one listens, and stopping one.

One home for what each of them needs, so a server left running by a failed test is stopped the same way everywhere.
"""

from __future__ import annotations

import socket
import subprocess
import time

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30.0) -> None:
    """Until something accepts connections on ``port``; ``RuntimeError`` early if ``process`` died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with status {process.returncode} before listening")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listened on {LOOPBACK}:{port} within {seconds:.0f}s")


def stop(process: subprocess.Popen, grace: float = 30.0) -> None:
    """Ask ``process`` to exit (SIGTERM: uvicorn finishes the requests in flight), kill it after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
