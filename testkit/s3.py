"""An S3-protocol server on loopback, for tests and benchmarks of the object-storage backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import httpx

from testkit.processes import ROOT, free_port, stop, wait_for, wait_until_listening


class S3Server:
    """moto's S3-protocol server on a loopback port, in a thread of this process.

    It speaks the S3 wire protocol over real HTTP, so obstore (or any S3 client, in any
    process) talks to it exactly as to a real bucket. `bucket()` creates a fresh one.
    """

    ACCESS_KEY = "test-access-key"
    SECRET_KEY = "test-secret-key"
    REGION = "us-east-1"

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # Port 0: the server binds a port the kernel picks and reports it once started.
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bucket(self) -> str:
        """Create a new empty bucket and return its name."""
        name = f"test-{os.urandom(6).hex()}"
        httpx.put(f"{self.endpoint}/{name}", timeout=10).raise_for_status()
        return name

    @property
    def credentials(self) -> dict[str, str]:
        """obstore configuration keys for this server."""
        return {
            "access_key_id": self.ACCESS_KEY,
            "secret_access_key": self.SECRET_KEY,
            "region": self.REGION,
        }

    @property
    def env(self) -> dict[str, str]:
        """Environment of a process using this server (with ARCHIVE_STORE set by the caller)."""
        return {
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
            "AWS_REGION": self.REGION,
        }

    def multipart_uploads(self, bucket: str) -> str:
        """The bucket's ListMultipartUploads answer (XML), to check none was left behind."""
        return httpx.get(f"{self.endpoint}/{bucket}?uploads", timeout=10).text

    def __enter__(self) -> S3Server:
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        wait_until_listening(self.endpoint)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


class S3Process(S3Server):
    """moto's S3-protocol server as a process of its own, for fault tests: `pause()` (SIGSTOP:
    connections are accepted and never answered), `resume()` (SIGCONT), `kill()` (SIGKILL: the
    buckets are gone with it) and `restart()` (an empty server on the same port).

    moto binds its own port (it cannot serve an inherited socket): a port that was free a
    moment ago is used, and another is tried when it was taken meanwhile.
    """

    def __init__(self, attempts: int = 5) -> None:
        self.port = 0
        self.attempts = attempts
        self.process: subprocess.Popen[Any] | None = None

    def _start(self, port: int) -> bool:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until_listening(f"http://127.0.0.1:{port}", process=process, timeout=30)
        except RuntimeError:
            stop(process)
            return False
        self.process, self.port = process, port
        return True

    def __enter__(self) -> S3Process:
        for _ in range(self.attempts):
            if self._start(free_port()):
                return self
        raise RuntimeError(f"moto found no free port in {self.attempts} attempts")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.resume()
            stop(self.process)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start an empty server on the same port (after `kill()`)."""
        wait_for(lambda: self._start(self.port), timeout=30, interval=0.2)
