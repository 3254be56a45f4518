"""A real OpenSSH server on localhost for one test: its own host key, one authorised client key."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def unavailable() -> str | None:
    """Why an sshd cannot start here, or None."""
    if not Path(SSHD).is_file() or not shutil.which("ssh-keygen"):
        return "no OpenSSH server (apt-get install openssh-server; .ci/run does)"
    if os.geteuid() != 0:
        return "sshd needs root for its privilege-separation directory"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``with Server(folder) as s``: sshd on ``s.port``, key ``s.client_key``, a HOME whose known_hosts
    trusts the server's key (so the client checks the host, as it should)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.client_key = folder / "client_key"
        self.home = folder / "home"

    def __enter__(self) -> Server:
        f = self.folder
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(f / key)], check=True, timeout=600)
        shutil.copy(f / "client_key.pub", f / "authorized_keys")
        (f / "sshd_config").write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {f / 'host_key'}",
            f"AuthorizedKeysFile {f / 'authorized_keys'}", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "StrictModes no", "UsePAM no", f"PidFile {f / 'sshd.pid'}",
            "Subsystem sftp internal-sftp"]) + "\n")
        Path("/run/sshd").mkdir(exist_ok=True)
        (self.home / ".ssh").mkdir(parents=True)
        host = " ".join((f / "host_key.pub").read_text().split()[:2])
        (self.home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host}\n")
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(f / "sshd_config")],
                                        stdout=subprocess.DEVNULL, stderr=open(f / "sshd.log", "wb"))
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.process.kill()
        self.process.wait(timeout=10)
        import pytest  # installed but unable to start here: a reason to skip, not a failure of nasforge

        pytest.skip(f"sshd is installed but did not start: {(f / 'sshd.log').read_text()[-400:]}")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
