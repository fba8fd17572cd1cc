"""An embedded PostgreSQL 15 cluster in a folder of ours, for development and tests.

PostgreSQL refuses to run as root, so when we are root every server-side command runs as the
`postgres` OS user and the data folder is handed to it. The server listens on 127.0.0.1 only.
The cluster superuser is `supabase_admin`, so that `postgres` can be an ordinary role with
the same rights it has on hosted Supabase.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tools.settings import LOCAL_PASSWORD, LOCAL_SUPERUSER, local_url

PG_MAJOR = 15
SERVER_USER = "postgres"

# Settings every Intent cluster needs: logical decoding for Realtime, loopback only.
BASE_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "max_connections": "200",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
}
# A throwaway test cluster trades durability for speed; benchmarks never use these.
THROWAWAY_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class ClusterError(Exception):
    """The cluster could not be set up, started or stopped; the message says what to do."""


def pg_bindir() -> Path:
    """PostgreSQL's server programs: INTENT_PG_BIN, Debian's folder, or pg_config's answer."""
    explicit = os.environ.get("INTENT_PG_BIN")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin"))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    for candidate in candidates:
        if (candidate / "pg_ctl").exists() and (candidate / "initdb").exists():
            return candidate
    raise ClusterError(
        f"PostgreSQL {PG_MAJOR} server programs were not found (looked in "
        f"{', '.join(map(str, candidates))}); install postgresql-{PG_MAJOR} "
        "or set INTENT_PG_BIN to the folder that has pg_ctl and initdb"
    )


def _as_root() -> bool:
    return os.geteuid() == 0


def _server_cmd(args: Sequence[str]) -> list[str]:
    """Run a server-side program as the `postgres` OS user when we are root."""
    if _as_root():
        return ["runuser", "-u", SERVER_USER, "--", *args]
    return list(args)


def _run(args: Sequence[str], what: str, timeout: float = 120) -> str:
    proc = subprocess.run(
        _server_cmd(args), capture_output=True, text=True, check=False, timeout=timeout
    )
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()
        raise ClusterError(f"{what} failed (exit {proc.returncode}): {output}")
    return proc.stdout


def process_exists(pid: int) -> bool:
    """Any process with this pid, a zombie included (what `kill(pid, 0)` sees)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def postgres_alive(pid: int) -> bool:
    """A running (not zombie) PostgreSQL process has this pid; not some other program that
    was given the pid of a dead server."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():  # no procfs: the best kill() can say
        return process_exists(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"} and b"postgres" in cmdline



@dataclass
class LocalCluster:
    """One cluster in `data_dir`, served on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    throwaway: bool = False
    extra_settings: dict[str, str] = field(default_factory=dict)

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def url(self) -> str:
        """The project's URL: the `postgres` role, as a hosted project's DATABASE_URL is."""
        return local_url(self.port)

    @property
    def admin_url(self) -> str:
        return local_url(self.port, user=LOCAL_SUPERUSER)

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        proc = subprocess.run(
            _server_cmd([str(pg_bindir() / "pg_ctl"), "status", "-D", str(self.data_dir)]),
            capture_output=True,
            check=False,
        )
        # pg_ctl believes a zombie's postmaster.pid (kill(pid, 0) succeeds on a zombie).
        pid = self.pid()
        return proc.returncode == 0 and pid is not None and postgres_alive(pid)

    def pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def init(self) -> bool:
        """Create the cluster if there is none; True when it was created now."""
        if self.initialised():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _as_root():
            self._hand_to_server_user()
        self.data_dir.chmod(0o700)
        with tempfile.NamedTemporaryFile("w", delete=False, prefix="intent-pw-") as pw:
            pw.write(LOCAL_PASSWORD + "\n")
        try:
            os.chmod(pw.name, 0o644)
            _run(
                [
                    str(pg_bindir() / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", LOCAL_SUPERUSER,
                    f"--pwfile={pw.name}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-instructions",
                ],
                "initdb",
            )
        finally:
            os.unlink(pw.name)
        settings = {**BASE_SETTINGS, "port": str(self.port)}
        if self.throwaway:
            settings.update(THROWAWAY_SETTINGS)
        settings.update(self.extra_settings)
        conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# Intent\n" + conf)
        return True

    def _hand_to_server_user(self) -> None:
        # Every folder above the data folder must be enterable by the server user.
        probe = subprocess.run(
            ["runuser", "-u", SERVER_USER, "--", "test", "-x", str(self.data_dir.parent)],
            check=False,
        )
        if probe.returncode != 0:
            raise ClusterError(
                f"the '{SERVER_USER}' OS user cannot enter {self.data_dir.parent}; "
                "PostgreSQL runs as that user when Intent runs as root. Move the project "
                "(or INTENT_STATE_DIR) somewhere it can reach, e.g. under /work or /srv"
            )
        shutil.chown(self.data_dir, user=SERVER_USER, group=SERVER_USER)

    def start(self, timeout: int = 60, *, wait: bool = True) -> None:
        """Start the server; `wait=False` returns once it is launched (a supervisor that
        must keep looking at its other processes polls for it instead)."""
        if self.running():
            return
        self._check_port_free()
        waiting = ["-w", "-t", str(timeout)] if wait else ["-W"]
        _run(
            [
                str(pg_bindir() / "pg_ctl"), "start",
                "-D", str(self.data_dir),
                "-l", str(self.log_file),
                *waiting,
                "-o", f"-p {self.port}",
            ],
            "starting PostgreSQL",
            timeout=timeout + 10,
        )

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                raise ClusterError(
                    f"port {self.port} on 127.0.0.1 is already in use by another server; "
                    "stop it or choose another port with INTENT_DB_PORT"
                )

    def stop(self, timeout: int = 60) -> bool:
        """Stop the server this folder's postmaster.pid names; True when one was running."""
        if not self.running():
            return False
        _run(
            [str(pg_bindir() / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast",
             "-w", "-t", str(timeout)],
            "stopping PostgreSQL",
            timeout=timeout + 10,
        )
        return True

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"PostgreSQL on port {self.port} is not ready: {exc}"
                    ) from exc
                time.sleep(0.1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def scratch_cluster(
    *, throwaway: bool, say: Callable[[str], None] | None = None
) -> Iterator[LocalCluster]:
    """A new cluster in a temp folder on a free port, bootstrapped and migrated like the
    embedded one; stopped and deleted on the way out, however the block ends. `throwaway`
    trades durability for speed (tests); benchmarks keep PostgreSQL's durable defaults."""
    from tools.local.migrations import apply_bootstrap, migrate
    from tools.settings import migrations_dir

    parent = Path(tempfile.mkdtemp(prefix="intent-pg-"))
    parent.chmod(0o755)  # the `postgres` OS user runs the server when we are root
    cluster = LocalCluster(data_dir=parent / "pg", port=free_port(), throwaway=throwaway)
    try:
        if say:
            say(f"starting PostgreSQL on 127.0.0.1:{cluster.port}")
        cluster.init()
        cluster.start()
        cluster.wait_ready()
        apply_bootstrap(cluster.admin_url)
        migrate(cluster.url, migrations_dir())
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(parent, ignore_errors=True)
            if say:
                say("PostgreSQL stopped and removed")
