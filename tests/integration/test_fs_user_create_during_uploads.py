#!/usr/bin/env python3
"""test_fs_user_create_during_uploads.py: creating users while upload passes
run never deadlocks (lock-order regression test).

The defect: a mkdir of a user directory that this machine does not have
asks the store for the user (a load, under the user's upload_lock); it did
so while holding the user's tree lock shared, while an upload pass held the
same user's upload_lock and waited for its tree lock exclusive.  Both
waited for ever and the mount hung (engine/obox-private.h has the lock
order: upload_lock before the tree lock).

Mounts build/fs/oboxfs in the foreground on OBOXFS_TEST_DIR/<this test>/mnt
(a file:// store and the cache next to it), then runs WORKERS processes,
each creating USERS new user directories with a file in each, removing
every user again and creating it anew (so that it is dirty, being uploaded,
and missing from the cache when it is created: the window of the
deadlock), while the test sends SIGUSR1 (an upload pass of every changed
user) to the daemon every few ms.  Everything must finish within
TIME_LIMIT seconds: a hang is a failure, and the daemon is then killed
and its mount taken down.  Afterwards every user has its file, the
passes really ran, and the daemon unmounts cleanly.  The mount and every
process started here are taken down even on failure.
"""
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

BUILD = os.environ.get("OBOXFS_BUILD_DIR")
TEST_DIR = os.environ.get("OBOXFS_TEST_DIR")
if not BUILD or not TEST_DIR:
    sys.exit("OBOXFS_BUILD_DIR and OBOXFS_TEST_DIR must be set")
OBOXFS = os.path.join(BUILD, "fs", "oboxfs")
WORK = os.path.join(TEST_DIR, "fs_user_create_during_uploads")
STORE = os.path.join(WORK, "store")
CACHE = os.path.join(WORK, "cache")
MNT = os.path.join(WORK, "mnt")

WORKERS = 8
USERS = 100         # per worker, each created, removed and created again
TIME_LIMIT = 60     # seconds for all workers: longer is a deadlock
SIGNAL_EVERY = 0.003


def mounted():
    with open("/proc/mounts") as f:
        return any(line.split()[1] == MNT for line in f)


def user_name(worker, i):
    return "w%d-u%d@example.com" % (worker, i)


def create_user(path, content):
    """mkdir a user and write a file in it; EEXIST is fine: a user removed
    here whose removal was not uploaded yet is found in the store again"""
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    with open(os.path.join(path, "f"), "w") as f:
        f.write(content)


def worker(w):
    """a child process: exit status 0 if every operation worked"""
    try:
        for i in range(USERS):
            path = os.path.join(MNT, user_name(w, i))
            create_user(path, "first %d %d\n" % (w, i))
            shutil.rmtree(path)
            create_user(path, "%d %d\n" % (w, i))
        return 0
    except BaseException:
        traceback.print_exc()
        return 1


def start_daemon():
    proc = subprocess.Popen(
        [OBOXFS, "-f", "-o",
         # uploads only when asked (SIGUSR1)
         "no_fsync,delete_grace=0,upload_interval=604800,upload_deliveries=1000000,"
         "cache_dir=" + CACHE, "file://" + STORE, MNT],
        stderr=subprocess.PIPE, text=True)
    for _ in range(200):
        if mounted():
            return proc
        if proc.poll() is not None:
            raise AssertionError("oboxfs exited %d: %s" %
                                 (proc.returncode, proc.stderr.read()))
        time.sleep(0.05)
    raise AssertionError("mount did not appear")


def stats():
    out = {}
    with open(os.path.join(MNT, ".oboxfs-stats")) as f:
        for line in f:
            name, value = line.split()
            out[name] = int(value)
    return out


def thread_states(pid):
    """the daemon's threads and what they wait in (for a hang's report)"""
    lines = []
    try:
        for tid in sorted(os.listdir("/proc/%d/task" % pid), key=int):
            try:
                with open("/proc/%d/task/%s/wchan" % (pid, tid)) as f:
                    wchan = f.read().strip()
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            lines.append("  thread %s: %s %s" % (tid, state, wchan))
    except OSError:
        pass
    return "\n".join(lines)


def run(daemon, children):
    """fork the workers and signal upload passes until they are done"""
    done = threading.Event()

    def signaller():
        while not done.is_set():
            try:
                daemon.send_signal(signal.SIGUSR1)
            except ProcessLookupError:
                return
            time.sleep(SIGNAL_EVERY)

    passes0 = stats()["index_upload_passes"]
    sig = threading.Thread(target=signaller, daemon=True)
    start = time.monotonic()
    for w in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = worker(w)
            finally:
                os._exit(code)
        children.append(pid)
    sig.start()
    failed = []
    while children:
        remaining = TIME_LIMIT - (time.monotonic() - start)
        if remaining <= 0:
            done.set()
            raise AssertionError(
                "%d of %d workers still busy after %d s: a deadlock "
                "(daemon threads:\n%s)" % (len(children), WORKERS,
                                          TIME_LIMIT,
                                          thread_states(daemon.pid)))
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.05)
            continue
        children.remove(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            failed.append(pid)
    done.set()
    sig.join()
    elapsed = time.monotonic() - start
    assert not failed, "%d workers failed (see above)" % len(failed)
    passes = stats()["index_upload_passes"] - passes0
    print("%d workers x %d users in %.1f s, %d upload passes meanwhile" %
          (WORKERS, USERS, elapsed, passes), flush=True)
    # the passes really ran alongside (not one pass for the whole run)
    assert passes >= 5, "only %d upload passes ran" % passes


def check_tree():
    for w in range(WORKERS):
        for i in range(USERS):
            path = os.path.join(MNT, user_name(w, i), "f")
            with open(path) as f:
                got = f.read()
            assert got == "%d %d\n" % (w, i), "%s: %r" % (path, got)


def stop_daemon(daemon):
    """clean unmount: exit status 0, no error logged"""
    subprocess.run(["fusermount3", "-u", MNT], check=False)
    try:
        rc = daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("oboxfs did not exit after the unmount")
    err = daemon.stderr.read()
    assert rc == 0, "oboxfs exit status %d, stderr: %s" % (rc, err)
    assert "ERROR" not in err and "runtime error" not in err, err


def emergency_stop(daemon, children):
    """a hung or failed run: kill the daemon (its requests then fail), take
    the mount down, reap the workers"""
    if daemon is not None and daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    if mounted():
        subprocess.run(["fusermount3", "-u", "-z", MNT], check=False)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    if daemon is not None and daemon.stderr is not None:
        err = daemon.stderr.read()
        if err:
            print("oboxfs stderr:\n%s" % err[-4000:], file=sys.stderr)


def main():
    if mounted():
        subprocess.run(["fusermount3", "-u", "-z", MNT], check=False)
    shutil.rmtree(WORK, ignore_errors=True)
    for d in (STORE, CACHE, MNT):
        os.makedirs(d)
    daemon = None
    children = []
    try:
        daemon = start_daemon()
        run(daemon, children)
        check_tree()
        stop_daemon(daemon)
        daemon = None
    except BaseException:
        traceback.print_exc()
        emergency_stop(daemon, children)
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    print("user creation during upload passes: no deadlock")


if __name__ == "__main__":
    main()
