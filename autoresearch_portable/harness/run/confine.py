"""Confines train.py's process (Linux Landlock) and makes sure nothing it starts outlives it.

The launcher, `python -m autoresearch_portable.harness.run.confine POLICY.json STATUS_FD -- PROGRAM ARGS`,
runs between the runner and train.py: it moves into an empty network namespace where it may (root
or CAP_SYS_ADMIN), restricts itself with Landlock (unprivileged, inherited across exec and by every
process it starts), writes one status line to STATUS_FD and execs PROGRAM. Where confinement is
unavailable it still execs, and says so: the parent marks such a run `confined: no`, it never fails
it for that. Landlock's parts depend on the kernel's ABI: 1 (5.13) files, 2 cross-folder renames,
3 truncate, 4 TCP bind/connect, 5 device ioctls, 6 abstract Unix sockets and signals.

What it does not cover (Landlock ABI <= 7): connecting to a *pathname* Unix socket (e.g. D-Bus under
/run), UDP without the network namespace, shared memory made without files (memfd), and names of
files in a folder that lies on the way to a readable one (listing is allowed there, reading not).

`Reaper` is the parent's side: whatever train.py started is killed when it ends."""

from __future__ import annotations

import ctypes
import glob
import json
import os
import platform
import stat
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Syscalls added since Linux 5.1 have one number on every architecture: x86_64's table and the
# generic one (aarch64, riscv64, ...) both give 444-446 (asm/unistd_64.h, asm-generic/unistd.h).
CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446
_ARCHES = {"x86_64", "amd64", "aarch64", "arm64", "riscv64", "ppc64le", "ppc64", "s390x", "i686", "armv7l"}
PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 38, 36, 37
CLONE_NEWNET = 0x40000000

# include/uapi/linux/landlock.h
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ABI1 = (1 << 13) - 1  # the 13 rights of ABI 1: the four above, remove and make-anything
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
RULE_PATH_BENEATH = 1
READ = EXECUTE | READ_FILE | READ_DIR
FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the rights a rule on a file may hold
DEVICE = READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV | READ_DIR

SYSTEM_READ = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/opt", "/nix/store")
# /dev as a whole is only listable: as root, reading it would read raw disks (and with them the ledger)
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/nvidia*", "/dev/dri",
           "/dev/kfd")


@dataclass
class Policy:
    """What train.py may touch. `read`: files and folders it may read and execute; `write`: folders
    it may do anything in; `devices`: device files (or folders of them) it may read, write and
    ioctl; `listable`: folders whose entries it may list without reading them (the way to a package
    that sits beside a hidden workspace)."""
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    listable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Policy:
        d = json.loads(Path(path).read_text())
        return cls(**{k: [str(p) for p in d.get(k, [])] for k in ("read", "write", "devices", "listable")})


def policy_for_run(train_py: str | os.PathLike, scratch: str | os.PathLike, extra_read=()) -> Policy:
    """The default policy of a run: read the Python environment, the harness, system folders, the
    dataset (`extra_read`: pass the dataset's folder, not the whole cache) and train.py itself, never
    the rest of its folder (the workspace holds the ledger and results) nor the ledger's key; write
    only `scratch`.

    Nothing else is writable (/tmp, /dev/shm, the user cache, site-packages, the workspace), so the
    runner must point TMPDIR, XDG_CACHE_HOME, TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR and
    CUDA_CACHE_PATH into scratch (`scratch_env`), and put there every file train.py writes (result,
    handover). Python's .pyc writes into read-only folders fail silently, as they should."""
    import site

    from autoresearch_portable import paths

    train_py = Path(train_py).resolve()
    hidden = [train_py.parent, paths.keys_dir().resolve()]
    harness = Path(__file__).resolve().parents[2]  # the package; its parent is the checkout or site-packages
    env = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path, *site.getsitepackages(),
           site.getusersitepackages()]
    read, listable = [], ["/dev"]
    for folder in [*env, harness, harness.parent, *SYSTEM_READ, *extra_read]:
        # '' and relative entries mean the parent's working folder: not the environment
        if folder and os.path.isabs(folder) and os.path.exists(folder):
            r, l = _carve(Path(folder).resolve(), hidden)
            read += r
            listable += l
    devices = [p for pattern in DEVICES for p in sorted(glob.glob(pattern))]
    return Policy(read=_unique(read + [str(train_py)]), write=[str(Path(scratch).resolve())],
                  devices=_unique(devices), listable=_unique(listable))


def scratch_env(scratch: str | os.PathLike) -> dict[str, str]:
    """The environment variables that send temporary files and compiler caches (torch inductor's
    C++ builds, Triton's kernels, the CUDA driver's JIT) into scratch, the only writable folder.
    Makes the folders: a TMPDIR that does not exist sends Python's tempfile looking elsewhere."""
    scratch = Path(scratch)
    env = {"TMPDIR": scratch, "XDG_CACHE_HOME": scratch / "cache", "TORCHINDUCTOR_CACHE_DIR": scratch / "inductor",
           "TRITON_CACHE_DIR": scratch / "triton", "CUDA_CACHE_PATH": scratch / "cuda"}
    for folder in env.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {k: str(v) for k, v in env.items()}


def _carve(folder: Path, hidden: list[Path]) -> tuple[list[str], list[str]]:
    """`folder` as (readable, listable) paths, minus the hidden folders in it. Landlock only grants,
    so a folder that holds a hidden one (a checkout that holds the workspace, a cache that holds the
    key) is replaced by its entries except the way to the hidden one, and itself is only listable."""
    if not any(h == folder or folder in h.parents for h in hidden):
        return [str(folder)], []
    read, listable = [], [str(folder)]
    if folder in hidden:
        return read, listable
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return read, listable
    for entry in entries:
        r, l = _carve(entry.resolve(), hidden)  # resolved: a link to the workspace leads to the workspace
        read += r
        listable += l
    return read, listable


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- Landlock ------------------------------------------------------------------------------------

class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the kernel's header: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _call(name: str, *args) -> int:
    """libc's `name`(args); OSError on failure. Every int goes as a full machine word: syscall()
    and prctl() are variadic, and the kernel reads whole 64-bit registers."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), name)
    fn.restype = ctypes.c_long if name == "syscall" else ctypes.c_int
    r = fn(*(ctypes.c_ulong(a) if isinstance(a, int) else a for a in args))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def _probe() -> tuple[int, str]:
    """(Landlock ABI version, why 0 when it is 0)."""
    if not sys.platform.startswith("linux"):
        return 0, "not Linux"
    if platform.machine().lower() not in _ARCHES:
        return 0, f"syscall numbers unknown on {platform.machine()}"
    try:
        return _call("syscall", CREATE_RULESET, None, 0, 1), ""  # LANDLOCK_CREATE_RULESET_VERSION
    except OSError as e:  # ENOSYS: no Landlock in the kernel (or seccomp); EOPNOTSUPP: disabled at boot
        return 0, f"{os.strerror(e.errno)} (errno {e.errno})"
    except (AttributeError, TypeError) as e:  # no syscall() in this libc
        return 0, str(e)


def landlock_abi() -> int:
    """The running kernel's Landlock ABI version; 0 when unavailable. Cheap: one syscall."""
    return _probe()[0]


def handled(abi: int) -> tuple[int, int, int]:
    """(fs rights, net rights, scopes) that Landlock controls at this ABI: everything it knows."""
    fs = FS_ABI1 | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0) | (IOCTL_DEV if abi >= 5 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    return fs, net, scoped


def apply(policy: Policy, abi: int) -> list[str]:
    """Restricts the calling process, and all it will start, to `policy`; returns the parts that
    apply ("fs", "refer", ...). Raises OSError when the kernel rejects it: then nothing applied.
    Every handled right is denied except where a rule grants it; with no net rules, all TCP binds
    and connects are denied."""
    fs, net, scoped = handled(abi)
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # older kernels reject fields they do not know
    ruleset = _call("syscall", CREATE_RULESET, ctypes.byref(attr), size, 0)
    try:
        for paths, rights in ((policy.listable, READ_DIR), (policy.read, READ), (policy.devices, DEVICE),
                              (policy.write, fs)):
            for path in paths:
                _add_rule(ruleset, path, rights & fs)
        _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # required to restrict oneself without privileges
        _call("syscall", RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    names = [("fs", True), ("refer", abi >= 2), ("truncate", abi >= 3), ("net-tcp", net),
             ("ioctl-dev", abi >= 5), ("scopes", scoped)]
    return [name for name, on in names if on]


def _add_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # gone since the policy was made: nothing to grant
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_ONLY  # the kernel rejects folder rights on a file
        if rights:
            _call("syscall", ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(_PathBeneath(rights, fd)), 0)
    finally:
        os.close(fd)


# -- the launcher --------------------------------------------------------------------------------

def launch_argv(policy_path: str | os.PathLike, status_fd: int, argv: list[str]) -> list[str]:
    """The command that runs `argv` confined. Isolated mode (-I) and the file's own path: the
    launcher runs before confinement, so nothing in the working folder (the workspace) or in
    PYTHON* variables may be imported into it."""
    return [sys.executable, "-I", str(Path(__file__).resolve()), str(policy_path), str(status_fd), "--", *argv]


def parse_status(line: str) -> tuple[bool, str]:
    """(confined, detail) from the launcher's status line; no line at all means not confined."""
    words = line.strip().split(None, 2)
    if len(words) < 2 or words[0] != "confined":
        return False, f"no status from the launcher: {line.strip()!r}"
    if words[1] == "no":
        return False, words[2] if len(words) > 2 else ""
    return True, " ".join(words[1:])


def confine_self(policy_path: str | os.PathLike) -> str:
    """Confines the calling process as far as this system allows; returns the status line."""
    if sys.platform == "darwin":
        return "confined no macOS: Seatbelt not implemented"
    if not sys.platform.startswith("linux"):
        return "confined no not supported on this OS"
    try:  # an empty network namespace (a loopback that is down: no UDP either); root or CAP_SYS_ADMIN
        netns = ["netns"] if _call("unshare", CLONE_NEWNET) == 0 else []
    except (OSError, AttributeError):  # EPERM: Landlock's TCP rules are what is left
        netns = []
    abi, why = _probe()
    if not abi:
        return " ".join(["confined no landlock unavailable:", why, *netns])
    try:
        parts = apply(Policy.load(policy_path), abi)
    except Exception as e:  # a policy file or rule we got wrong is our bug: run anyway, and say why
        return " ".join(["confined no landlock failed:", f"{type(e).__name__}: {e}", *netns])
    if "net-tcp" not in parts and not netns:
        return f"confined no landlock-abi{abi} {' '.join(parts)}: network open (ABI < 4 and no network namespace)"
    return " ".join(["confined", f"landlock-abi{abi}", *parts, *netns])


def main(args: list[str]) -> None:
    if len(args) < 4 or args[2] != "--":
        sys.exit("usage: python -m autoresearch_portable.harness.run.confine POLICY.json STATUS_FD -- PROGRAM ARGS...")
    line = confine_self(args[0]).replace("\n", " ")
    try:
        os.write(int(args[1]), (line + "\n").encode())
        os.close(int(args[1]))  # train.py does not inherit the parent's pipe
    except (OSError, ValueError):
        pass  # the parent stopped listening: without a line it counts the run as unconfined
    try:
        os.execvp(args[3], args[3:])
    except OSError as e:
        print(f"confine: cannot run {args[3]}: {e}", file=sys.stderr)
        os._exit(127)


# -- nothing outlives the run --------------------------------------------------------------------

class Reaper:
    """Kills whatever a run started once it ends: made just before the child is launched, `end()`
    after the child has been waited for (end() reaps what it kills, so a child not yet waited for
    would lose its exit status).

    On Linux the caller becomes a child subreaper for the run: an orphan (a double-forked, setsid
    daemon) is re-parented to it instead of to init, so it is still one of its descendants. On macOS
    such an orphan goes to launchd and escapes: only descendants still linked to us are killed.
    Processes that existed before are left alone, with all they start. One Reaper per
    process at a time: end() kills every new descendant, so the caller's own helper subprocesses
    must have finished."""

    def __init__(self) -> None:
        import psutil

        self._was_subreaper = 1
        if sys.platform.startswith("linux"):
            try:
                flag = ctypes.c_int(1)
                _call("prctl", PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
                _call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
                self._was_subreaper = flag.value
            except (OSError, AttributeError):
                pass  # orphans then go to init, as on macOS
        self._before = {_key(p) for p in psutil.Process().children(recursive=True)} - {None}

    def cpu_seconds(self) -> float:
        """CPU-seconds (user + system) used so far by the processes started since the Reaper was
        made that are still running, with their children that have ended and been waited for."""
        import psutil

        total = 0.0
        for p in self._new():
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return total

    def end(self, timeout: float = 10.0) -> int:
        """SIGKILLs every process started since the Reaper was made and waits for them; returns how many."""
        import psutil

        seen: dict[tuple[int, float], int] = {}  # killed, or found dead: they need reaping
        killed = 0
        for _ in range(100):  # a process may fork while we kill: look again until nothing is new
            new = [p for p in self._new() if _key(p) not in seen]
            if not new:
                break
            for p in new:
                seen[_key(p)] = p.pid
                try:
                    if p.status() != psutil.STATUS_ZOMBIE:
                        p.kill()
                        killed += 1
                except psutil.Error:
                    pass
        _reap(set(seen.values()), time.monotonic() + timeout)
        if not self._was_subreaper:  # as before: orphans of later, unrelated children go to init
            try:
                _call("prctl", PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
            except OSError:
                pass
        return killed

    def _new(self) -> list:
        """Our descendants started since the Reaper was made, not those below an older process."""
        import psutil

        children: dict[int, list] = {}
        for p in psutil.process_iter(["ppid"]):
            children.setdefault(p.info["ppid"], []).append(p)
        out, todo = [], [os.getpid()]
        while todo:
            for child in children.get(todo.pop(), []):
                key = _key(child)
                if key is not None and key not in self._before:
                    out.append(child)
                    todo.append(child.pid)
        return out


def _reap(pids: set[int], deadline: float) -> None:
    """Waits for the killed processes. A grandchild is not ours to wait for until its parent has
    died and it has been re-parented to us (a zombie until then): keep trying until it is gone."""
    import psutil

    while pids and time.monotonic() < deadline:
        for pid in list(pids):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    pids.discard(pid)
            except ChildProcessError:
                if not psutil.pid_exists(pid):
                    pids.discard(pid)
        if pids:
            time.sleep(0.01)


def _key(p) -> tuple[int, float] | None:
    """A process's identity: pid and start time (pids are reused)."""
    try:
        return p.pid, p.create_time()
    except Exception:  # psutil.Error: gone
        return None


if __name__ == "__main__":
    main(sys.argv[1:])
