"""A throwaway PostgreSQL server for the tests: initdb in a temporary folder, listening on a
free loopback port with password authentication, stopped and deleted afterwards.

PostgreSQL refuses to run as root, so under root (CI) the server runs as the `postgres` system
user that Debian's package creates (runuser); otherwise as the current user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "autorec", "s3cret-pw"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    folder: Path
    port: int
    bin: Path
    owner: str | None  # the system user the server runs as, when the tests run as root

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        _stop(self.folder, self.bin, self.owner)


def _stop(folder: Path, bin_folder: Path, owner: str | None) -> None:
    """pg_ctl's immediate stop; if that fails or hangs (a loaded machine), SIGKILL the
    postmaster named in postmaster.pid. Then the folder goes."""
    command = [str(bin_folder / "pg_ctl"), "stop", "-D", str(folder / "data"), "-m",
               "immediate", "-w"]
    if owner:
        command = ["runuser", "-u", owner, "--", *command]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    except (subprocess.SubprocessError, OSError):
        try:
            pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
    shutil.rmtree(folder, ignore_errors=True)


def _stop_orphans() -> None:
    """Servers left by a test session that was killed before its teardown (its pid is gone)."""
    for owner_file in Path(tempfile.gettempdir()).glob("autorec-pg-*/session.pid"):
        try:
            os.kill(int(owner_file.read_text()), 0)
            continue  # that session is still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue
        bin_folder = binaries()
        if bin_folder is not None:
            owner = owner_file.parent.stat().st_uid
            name = pwd.getpwuid(owner).pw_name if owner != os.geteuid() else None
            _stop(owner_file.parent, bin_folder, name)


def start() -> Server:
    bin_folder = binaries()
    if bin_folder is None:
        raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql; .ci/run does)")
    _stop_orphans()
    owner = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="autorec-pg-"))
    (folder / "session.pid").write_text(str(os.getpid()))
    if owner:
        try:
            pw = pwd.getpwnam(owner)
        except KeyError:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError("PostgreSQL refuses to run as root and there is no `postgres` "
                               "user to run it as (Debian's postgresql package creates one)")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
    os.chmod(folder, 0o755)
    (folder / "pw").write_text(PASSWORD + "\n")
    if owner:
        os.chown(folder / "pw", pw.pw_uid, pw.pw_gid)
    server = Server(folder, _free_port(), bin_folder, owner)
    server.run("initdb", "-D", str(folder / "data"), "-U", USER, f"--pwfile={folder / 'pw'}",
               "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
               "--no-sync", timeout=120)
    options = (f"-c listen_addresses=127.0.0.1 -c port={server.port} "
               f"-c unix_socket_directories={folder} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=100 -c shared_buffers=32MB")
    server.run("pg_ctl", "start", "-D", str(folder / "data"), "-o", options, "-w",
               "-l", str(folder / "server.log"), timeout=120)
    deadline = time.time() + 30
    while True:  # pg_ctl -w waits for the socket; make sure TCP answers too
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return server
        except OSError:
            if time.time() > deadline:
                server.stop()
                raise
            time.sleep(0.2)
