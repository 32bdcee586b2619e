"""A real S3-protocol server for the store's tests: moto's standalone server, as a process."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from research_cli.embedded import free_port, stop_process
from research_cli.supervisor import ProcessSpec, spawn

# moto accepts any credentials; these keep botocore from looking for real ones.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test-access-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret-key-0123456789",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    """`moto_server` on a free port of 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


def start_s3_server(log_file: Path, within: float = 60.0) -> S3Server:
    """Start moto's S3 server and wait until it answers."""
    command = Path(sys.executable).with_name("moto_server")
    assert command.exists(), f"{command} is missing: install the test extra (moto[server])"
    port = free_port()
    process = spawn(
        ProcessSpec("moto_server", [str(command), "-H", "127.0.0.1", "-p", str(port)], log_file)
    )
    server = S3Server(process, port)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"moto_server exited ({process.returncode}):\n{log_file.read_text()}"
            )
        try:
            with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=2):
                return server
        except urllib.error.HTTPError:
            return server  # it answers
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"moto_server did not answer within {within:g}s")
