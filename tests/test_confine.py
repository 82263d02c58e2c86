"""train.py's confinement (harness/run/confine.py): the policy, the launcher's status line, and on a
kernel with Landlock, a confined Python + torch program that works in its scratch folder and can
do nothing else; and that nothing it starts outlives it."""

from __future__ import annotations

import json
import os
import site
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from autoresearch_portable.harness.run import confine
from autoresearch_portable.harness.run.confine import Policy, Reaper, launch_argv, parse_status, policy_for_run

LINUX = sys.platform.startswith("linux")
ABI, WHY = confine._probe()
needs_landlock = pytest.mark.skipif(ABI == 0, reason=f"Landlock is unavailable here: {WHY}")


def _workspace(tmp_path: Path, program: str) -> tuple[Path, Path]:
    ws, scratch = tmp_path / "ws", tmp_path / "scratch"
    ws.mkdir()
    scratch.mkdir()
    (ws / "ledger.jsonl").write_text("the results\n")
    train = ws / "train.py"
    train.write_text(textwrap.dedent(program))
    return train, scratch


def _launch(policy: Policy, tmp_path: Path, argv: list[str], env: dict | None = None, **kw):
    """Runs argv under the launcher; returns (status line, completed process)."""
    path = tmp_path / "policy.json"
    policy.save(path)
    r, w = os.pipe()
    try:
        proc = subprocess.run(launch_argv(path, w, argv), pass_fds=(w,), env=env, capture_output=True, text=True,
                              timeout=300, **kw)
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        return f.read(), proc


# -- everywhere ----------------------------------------------------------------------------------

def test_parse_status():
    line = "confined landlock-abi7 fs net-tcp scopes netns\n"
    assert parse_status(line) == (True, "landlock-abi7 fs net-tcp scopes netns")
    assert parse_status("confined no landlock unavailable: ENOSYS") == (False, "landlock unavailable: ENOSYS")
    assert parse_status("confined no macOS: Seatbelt not implemented") == (False, "macOS: Seatbelt not implemented")
    assert parse_status("")[0] is False  # the launcher died before it said anything
    assert parse_status("Traceback (most recent call last):")[0] is False


def test_launch_argv():
    argv = launch_argv("/x/policy.json", 7, ["/usr/bin/python3", "train.py"])
    assert argv[0] == sys.executable and "-I" in argv  # isolated: nothing from the workspace runs unconfined
    assert Path(argv[argv.index("-I") + 1]) == Path(confine.__file__).resolve()
    assert argv[-5:] == ["/x/policy.json", "7", "--", "/usr/bin/python3", "train.py"]


def test_rights_per_abi():
    fs1, net1, sc1 = confine.handled(1)
    assert fs1 == (1 << 13) - 1 and net1 == 0 and sc1 == 0
    assert confine.handled(2)[0] == fs1 | confine.REFER
    assert confine.handled(3)[0] == fs1 | confine.REFER | confine.TRUNCATE
    assert confine.handled(4)[1] == confine.NET_BIND_TCP | confine.NET_CONNECT_TCP
    assert confine.handled(5)[0] & confine.IOCTL_DEV and not confine.handled(4)[0] & confine.IOCTL_DEV
    assert confine.handled(5)[2] == 0
    assert confine.handled(6)[2] == confine.SCOPE_SIGNAL | confine.SCOPE_ABSTRACT_UNIX_SOCKET
    assert confine.handled(7) == confine.handled(6)


def test_policy_for_run(tmp_path, monkeypatch, arp_cache_dir):
    train, scratch = _workspace(tmp_path, "pass\n")
    data = arp_cache_dir / "data" / "bundled"
    data.mkdir(parents=True, exist_ok=True)
    (arp_cache_dir / "keys").mkdir(exist_ok=True)
    # the harness started from inside the workspace: its folder, and the one above, are on sys.path
    monkeypatch.setattr(sys, "path", [str(train.parent), str(tmp_path), "", *sys.path])
    policy = policy_for_run(train, scratch, [str(arp_cache_dir)])
    ws = train.parent.resolve()

    def reaches(path: Path) -> bool:
        return any(p == str(path) or str(path).startswith(p.rstrip("/") + "/") for p in policy.read + policy.write)

    assert str(train.resolve()) in policy.read
    assert not reaches(ws / "ledger.jsonl") and not reaches(ws)
    assert not reaches(arp_cache_dir.resolve() / "keys" / "ledger.key")  # the ledger's signing key
    assert reaches(data.resolve())
    assert policy.write == [str(scratch.resolve())]
    assert str(ws) in policy.listable  # names only: the way to what is readable
    for must in [sys.prefix, site.getsitepackages()[0], Path(confine.__file__).resolve().parents[1], "/usr"]:
        assert reaches(Path(must).resolve()), must
    for never in ["/tmp", "/dev/shm", "/dev/sda", "/dev"]:
        assert not reaches(Path(never)), never
    assert "/dev/null" in policy.devices
    assert Policy.load(_save(policy, tmp_path)) == policy == Policy(**policy.to_dict())


def test_scratch_env(tmp_path):
    env = confine.scratch_env(tmp_path)
    assert {"TMPDIR", "XDG_CACHE_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "CUDA_CACHE_PATH"} <= set(env)
    for folder in env.values():
        assert Path(folder).is_dir() and (Path(folder) == tmp_path or tmp_path in Path(folder).parents)


def _save(policy: Policy, tmp_path: Path) -> Path:
    policy.save(tmp_path / "p.json")
    return tmp_path / "p.json"


def test_unusable_policy_still_runs(tmp_path):
    """A policy the launcher cannot use never fails the run: it runs, marked unconfined, and says why."""
    bad = tmp_path / "policy.json"
    bad.write_text("{not json")
    r, w = os.pipe()
    proc = subprocess.run(launch_argv(bad, w, [sys.executable, "-c", "print('ran')"]), pass_fds=(w,),
                          capture_output=True, text=True, timeout=60)
    os.close(w)
    with os.fdopen(r) as f:
        confined, why = parse_status(f.read())
    assert proc.stdout == "ran\n" and not confined and why


@pytest.mark.skipif(not LINUX, reason="orphans are re-parented to a subreaper only on Linux")
def test_reaper_kills_daemons_and_spares_older_children(tmp_path):
    older = subprocess.Popen(["sleep", "600"])
    reaper = Reaper()
    try:
        busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                                 "while time.process_time() - t < 0.3: pass\ntime.sleep(60)"])
        deadline = time.monotonic() + 30
        while reaper.cpu_seconds() < 0.3 and time.monotonic() < deadline:  # its CPU time, not older's
            time.sleep(0.05)
        assert 0.3 <= reaper.cpu_seconds() < 5
        busy.kill()
        busy.wait()
        child = subprocess.run([sys.executable, "-c", DAEMON.format(pidfile=str(tmp_path / "daemon.pid"))], timeout=60)
        assert child.returncode == 0
        daemon = int((tmp_path / "daemon.pid").read_text())
        assert psutil.pid_exists(daemon)
        assert reaper.end() == 1
        assert not psutil.pid_exists(daemon)  # killed and reaped: no zombie left
        assert older.poll() is None
    finally:
        older.kill()
        older.wait()


# a double fork + setsid: the daemon's parent exits, and the daemon is nobody's child but ours
DAEMON = """
import os, time
pidfile = {pidfile!r}
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open("/dev/null", os.O_RDWR)  # lets go of the caller's pipes, as daemons do
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)  # whole, or not there yet
        time.sleep(60)
    os._exit(0)
os.wait()
while not os.path.exists(pidfile):
    time.sleep(0.01)
"""


# -- with Landlock ------------------------------------------------------------------------------

PROBE = """
import json, os, signal, socket, sys, time
here = os.path.dirname(os.path.abspath(__file__))
scratch, port, sleeper, site_packages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = {}

def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = f"denied: {e}"

def write(path):
    with open(path, "w") as f:
        f.write("x")

import numpy as np
import torch
from autoresearch_portable.harness.run import runtime  # the harness, beside the workspace's folder
a = torch.randn(128, 128)
out["matmul"] = bool(torch.allclose(a @ a, torch.from_numpy(a.numpy() @ a.numpy()), atol=1e-3))
attempt("write_scratch", lambda: write(os.path.join(scratch, "model.bin")))
attempt("write_beside", lambda: write(os.path.join(here, "notes.txt")))
attempt("read_sibling", lambda: open(os.path.join(here, "ledger.jsonl")).read())
attempt("write_tmp", lambda: write(f"/tmp/arp-confine-{os.getpid()}"))
attempt("write_shm", lambda: write(f"/dev/shm/arp-confine-{os.getpid()}"))
attempt("write_pth", lambda: write(os.path.join(site_packages, "arp_confine_test.pth")))
attempt("dev_null", lambda: write("/dev/null"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", port), timeout=5))
attempt("kill", lambda: os.kill(sleeper, signal.SIGTERM))
exec(DAEMON.format(pidfile=os.path.join(scratch, "daemon.pid")))  # a daemon, meant to outlive this process
print(json.dumps(out))
"""


@needs_landlock
def test_confined_run(tmp_path):
    pytest.importorskip("torch")
    train, scratch = _workspace(tmp_path, f"DAEMON = {DAEMON!r}\n" + PROBE)
    site_packages = next(p for p in site.getsitepackages() if os.path.isdir(p))
    server = socket.create_server(("127.0.0.1", 0))
    sleeper = subprocess.Popen(["sleep", "600"])
    reaper = Reaper()
    try:
        args = [str(scratch), str(server.getsockname()[1]), str(sleeper.pid), site_packages]
        line, proc = _launch(policy_for_run(train, scratch), tmp_path, [sys.executable, str(train), *args],
                             env=dict(os.environ, **confine.scratch_env(scratch)), cwd=train.parent)
        assert proc.returncode == 0, proc.stderr
        confined, detail = parse_status(line)
        assert confined and f"landlock-abi{ABI}" in detail, line
        out = json.loads(proc.stdout)
        assert proc.stderr == ""  # no complaint from failed .pyc writes or anything else
        assert out.pop("matmul") is True
        assert out.pop("write_scratch") == "ok" and out.pop("dev_null") == "ok"
        assert (scratch / "model.bin").exists()
        for name, result in out.items():
            assert result.startswith("denied"), (name, result)
        assert not (train.parent / "notes.txt").exists() and not (Path(site_packages) / "arp_confine_test.pth").exists()
        assert sleeper.poll() is None  # the SIGTERM never arrived
        daemon = int((scratch / "daemon.pid").read_text())
        assert psutil.pid_exists(daemon)
        assert reaper.end() == 1
        assert not psutil.pid_exists(daemon)
    finally:
        reaper.end()
        sleeper.kill()
        sleeper.wait()
        server.close()


@needs_landlock
def test_tcp_denied_without_network_namespace(tmp_path):
    """Landlock's own TCP rules (the ordinary user's case, where no namespace can be made)."""
    if ABI < 4:
        pytest.skip(f"Landlock ABI {ABI} has no network rules")
    server = socket.create_server(("127.0.0.1", 0))
    policy = _save(policy_for_run(Path(__file__), tmp_path), tmp_path)
    code = textwrap.dedent(f"""
        import socket, sys
        sys.path.insert(0, {str(Path(confine.__file__).parent)!r})
        import confine
        confine.apply(confine.Policy.load({str(policy)!r}), confine.landlock_abi())
        for what in ("connect", "bind"):
            try:
                s = socket.socket()
                s.connect(("127.0.0.1", {server.getsockname()[1]})) if what == "connect" else s.bind(("127.0.0.1", 0))
                print(what, "ok")
            except OSError as e:
                print(what, e.errno)
    """)
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    assert proc.stdout.split("\n")[:2] == ["connect 13", "bind 13"], proc.stderr  # EACCES
