#!/usr/bin/env python3
"""test_fs_posix_ops.py: POSIX operations on a real oboxfs mount of a
file:// store, and what they do to the store.

Mounts build/fs/oboxfs in the foreground on OBOXFS_TEST_DIR/fs_posix_ops/mnt
(cache and store next to it) and checks: user-name rules at the root,
O_EXCL create, read/write/truncate, rename onto an existing name,
RENAME_NOREPLACE and RENAME_EXCHANGE (renameat2 through ctypes), a link()
dot-lock as Dovecot makes it, unlink, mkdir/rmdir, readdir, chmod/chown/
utimens, ownership of files created by another uid, fsync, statfs,
flock/fcntl locks, mmap of an index file; then the mail side: a mail written
in tmp/ and renamed into new/ is exactly one object with the right name and
metadata, tmp/ files are never stored, flag-change renames and hard-link
copies cost no request, the object goes only with the last name, rename onto
a stub and rewriting a stub release it, sdbox u.N files, mails written in
place and fsynced, over-long paths refused; finally unmount + remount with
the same cache dir keeps everything and a cache miss is fetched from the
store; with cache_size=1M, mails totalling several MB (and one larger
than the cap) are stored and read back byte-exact after a remount while the
mail cache's bytes on disk stay within the cap (+5%), the misses being
fetched from the store; last, special files (char and block devices, a
fifo, a socket, symlinks) made on the mount come back after an upload on a
mount with an empty cache dir (takeover) with their type, rdev, target,
mode and owner, the mount is nodev,nosuid (a device node does not open) and
-o dev is refused.  The mount is always taken down, even on failure.
"""
import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import traceback

BUILD = os.environ.get("OBOXFS_BUILD_DIR")
TEST_DIR = os.environ.get("OBOXFS_TEST_DIR")
if not BUILD or not TEST_DIR:
    sys.exit("OBOXFS_BUILD_DIR and OBOXFS_TEST_DIR must be set")
OBOXFS = os.path.join(BUILD, "fs", "oboxfs")
STORE_CLI = os.path.join(BUILD, "tools", "oboxfs-store")
WORK = os.path.join(TEST_DIR, "fs_posix_ops")
STORE = os.path.join(WORK, "store")
CACHE = os.path.join(WORK, "cache")
MNT = os.path.join(WORK, "mnt")
URL = "file://" + STORE
USER = "user@example.com"
OTHER_UID = 54321

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def renameat2(old, new, flags):
    ret = libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD,
                         os.fsencode(new), ctypes.c_uint(flags))
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


MOUNT = None  # the Mount of main(), for upload_now()


class Mount:
    def __init__(self):
        self.proc = None
        self.options = ""  # extra -o options, e.g. ",cache_size=1M"
        self.cache = CACHE

    def mounted(self):
        with open("/proc/mounts") as f:
            return any(line.split()[1] == MNT for line in f)

    def start(self):
        self.proc = subprocess.Popen(
            [OBOXFS, "-f", "-o",
             # index uploads only when upload_now() asks: the request
             # counts below are of mail objects
             "allow_other,no_fsync,delete_grace=0,upload_interval=604800,"
             "upload_deliveries=1000000,cache_dir=" + self.cache +
             self.options,
             URL, MNT], stderr=subprocess.PIPE, text=True)
        for _ in range(100):
            if self.mounted():
                return
            if self.proc.poll() is not None:
                raise AssertionError("oboxfs exited %d: %s" %
                                     (self.proc.returncode,
                                      self.proc.stderr.read()))
            time.sleep(0.05)
        raise AssertionError("mount did not appear")

    def stop(self, check=True):
        if self.proc is None:
            return
        if self.mounted():
            subprocess.run(["fusermount3", "-u", MNT], check=False)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            subprocess.run(["fusermount3", "-u", "-z", MNT], check=False)
            rc = -1
        err = self.proc.stderr.read()
        self.proc = None
        if not check and (rc != 0 or err):
            # a failing run: show what the daemon said (sanitizer reports...)
            print("oboxfs exit status %d, stderr:\n%s" % (rc, err),
                  file=sys.stderr)
        if check:
            assert rc == 0, "oboxfs exit status %d, stderr: %s" % (rc, err)
            assert "ERROR" not in err and "runtime error" not in err, err

    def emergency_stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.stop(check=False)
        if self.mounted():
            subprocess.run(["fusermount3", "-u", "-z", MNT], check=False)


def stats():
    with open(os.path.join(MNT, ".oboxfs-stats")) as f:
        out = {}
        for line in f:
            name, value = line.split()
            out[name] = int(value)
        # PUTs of mail objects (index bundles are PUT too)
        out["mail_puts"] = (out["requests_put"] - out["index_bases_stored"] -
                            out["index_diffs_stored"])
        return out


def upload_now():
    """Ask the daemon for an index upload (SIGUSR1) and wait until it has
    stored every change and deleted what became garbage: released mail
    objects are deleted only then (CONTRACT section 5)."""
    passes = stats()["index_upload_passes"]
    MOUNT.proc.send_signal(signal.SIGUSR1)
    for _ in range(400):
        s = stats()
        if (s["index_upload_passes"] > passes and
                s["index_dirty_users"] == 0 and
                s["objects_condemned"] == 0):
            return s
        time.sleep(0.05)
    raise AssertionError("the requested upload did not finish: %s" % s)


def requests(s):
    return {k: v for k, v in s.items() if k.startswith("requests_")}


def store_objects():
    res = subprocess.run([STORE_CLI, "--no-fsync", URL, "ls"],
                         capture_output=True, text=True, check=True)
    out = {}
    for line in res.stdout.splitlines():
        size, key = line.split("\t", 1)
        out[key] = int(size)
    return out


def store_head(key, with_mtime=False):
    """The object's metadata; the mtime (decimal seconds, checked here)
    only if with_mtime."""
    res = subprocess.run([STORE_CLI, "--no-fsync", URL, "head", key],
                         capture_output=True, text=True, check=True)
    meta = {}
    for line in res.stdout.splitlines():
        if line.startswith("meta: "):
            name, value = line[6:].split("=", 1)
            meta[name] = value
    assert re.fullmatch(r"-?[0-9]+", meta.get("mtime", "")), meta
    if not with_mtime:
        del meta["mtime"]
    return meta


def store_get(key):
    return subprocess.run([STORE_CLI, "--no-fsync", URL, "get", key],
                          capture_output=True, check=True).stdout


def user_prefix(user):
    h = hashlib.sha256(user.encode()).hexdigest()
    return "%s/%s/%s/mailboxes/" % (h[:2], h[2:5], user)


KEY_RE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{3}/(.+)/mailboxes/"
                    r"([0-9a-f]{32})/([0-9a-f]{32})$")


def stub_key(path):
    """The object key of the metacache stub at path, from either encoding
    of its xattrs (bundles/stubattr.h): compact (user.oboxfs.stub: version
    1, guid and oid as 16 bytes each, size; user.oboxfs.kp: the key's
    prefix) or legacy (user.oboxfs.key)."""
    try:
        v = os.getxattr(path, "user.oboxfs.stub")
    except OSError as e:
        if e.errno != errno.ENODATA:
            raise
        return os.getxattr(path, "user.oboxfs.key").decode()
    assert len(v) == 41 and v[0] == 1, f"{path}: bad stub xattr {v!r}"
    kp = os.getxattr(path, "user.oboxfs.kp").decode()
    return f"{kp}/{v[1:17].hex()}/{v[17:33].hex()}"


def expect_errno(code, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        assert e.errno == code, "%s%r: errno %s, expected %s" % (
            fn.__name__, args, errno.errorcode.get(e.errno),
            errno.errorcode[code])
        return
    raise AssertionError("%s%r succeeded, expected %s" %
                         (fn.__name__, args, errno.errorcode[code]))


def write_file(path, data, fsync=False):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def P(*parts):
    return os.path.join(MNT, *parts)


# --- the namespace -------------------------------------------------------

def test_root_rules():
    s0 = stats()
    os.mkdir(P(USER))
    assert os.path.isdir(P(USER))
    # the store is asked once whether it has the user (the lookup before
    # the mkdir and the mkdir share the answer)
    assert stats()["requests_list"] == s0["requests_list"] + 1
    expect_errno(errno.EINVAL, os.mkdir, P(".hidden"))
    expect_errno(errno.EINVAL, os.mkdir, P("bad\x01name"))
    expect_errno(errno.EPERM, write_file, P("file-at-root"), b"x")
    names = os.listdir(MNT)
    assert names == [USER], names
    # the stats file is readable but not listed and not writable
    assert "requests_put" in stats()
    expect_errno(errno.EACCES, os.open, P(".oboxfs-stats"), os.O_WRONLY)
    expect_errno(errno.EPERM, os.unlink, P(".oboxfs-stats"))
    expect_errno(errno.EPERM, os.rename, P(USER), P("renamed@example.com"))


def test_excl_create_rw_truncate():
    d = P(USER, "idx")
    os.mkdir(d)
    f = os.path.join(d, "dovecot.index")
    fd = os.open(f, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    expect_errno(errno.EEXIST, os.open, f,
                 os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"0123456789")
    os.fsync(fd)
    assert os.pread(fd, 4, 3) == b"3456"
    os.ftruncate(fd, 4)
    os.close(fd)
    assert read_file(f) == b"0123"
    os.truncate(f, 2)
    assert os.stat(f).st_size == 2
    with open(f, "ab") as fh:
        fh.write(b"XY")
    assert read_file(f) == b"01XY"
    fd = os.open(f, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert os.stat(f).st_size == 0


def test_renames():
    d = P(USER, "idx")
    a, b = os.path.join(d, "a"), os.path.join(d, "b")
    write_file(a, b"AAA")
    write_file(b, b"BBB")
    os.rename(a, b)
    assert read_file(b) == b"AAA" and not os.path.exists(a)
    write_file(a, b"A2")
    expect_errno(errno.EEXIST, renameat2, a, b, RENAME_NOREPLACE)
    assert read_file(a) == b"A2" and read_file(b) == b"AAA"
    c = os.path.join(d, "c")
    renameat2(a, c, RENAME_NOREPLACE)
    assert read_file(c) == b"A2" and not os.path.exists(a)
    renameat2(b, c, RENAME_EXCHANGE)
    assert read_file(c) == b"AAA" and read_file(b) == b"A2"
    os.unlink(b)
    os.unlink(c)
    # directories
    os.mkdir(os.path.join(d, "dir1"))
    write_file(os.path.join(d, "dir1", "f"), b"f")
    os.rename(os.path.join(d, "dir1"), os.path.join(d, "dir2"))
    assert read_file(os.path.join(d, "dir2", "f")) == b"f"


def test_dotlock():
    """Dovecot's file_dotlock: write a temp file, link() it to x.lock."""
    d = P(USER, "idx")
    tmp = os.path.join(d, ".temp.host.1234.lock")
    lock = os.path.join(d, "dovecot-uidlist.lock")
    write_file(tmp, b"1234:host\n")
    os.link(tmp, lock)
    assert os.stat(lock).st_nlink == 2
    assert os.stat(tmp).st_ino == os.stat(lock).st_ino
    tmp2 = os.path.join(d, ".temp.host.5678.lock")
    write_file(tmp2, b"5678:host\n")
    expect_errno(errno.EEXIST, os.link, tmp2, lock)
    os.unlink(tmp2)
    os.unlink(tmp)
    assert os.stat(lock).st_nlink == 1
    assert read_file(lock) == b"1234:host\n"
    os.unlink(lock)
    assert not os.path.exists(lock)


def test_names_of_files_the_daemon_holds_no_fd_for():
    """The daemon holds no descriptor for a file the kernel knows: it
    reaches it by name, so renames and unlinks must keep that right, and a
    new file that gets a deleted file's inode number (the kernel still
    knowing the old one) must not be taken for it."""
    d = P(USER, "reuse")
    os.mkdir(d)
    inos = set()
    for i in range(200):
        old = os.path.join(d, "old-%d" % i)
        write_file(old, b"old %d" % i)
        st = os.stat(old)  # the kernel knows it now
        inos.add(st.st_ino)
        os.unlink(old)
        new = os.path.join(d, "new-%d" % i)
        write_file(new, b"new file %d" % i)
        assert read_file(new) == b"new file %d" % i
        assert os.stat(new).st_size == len(b"new file %d" % i)
        os.rename(new, os.path.join(d, "moved-%d" % i))
    for i in range(200):
        moved = os.path.join(d, "moved-%d" % i)
        assert read_file(moved) == b"new file %d" % i, moved
        os.chmod(moved, 0o640)
        assert os.stat(moved).st_mode & 0o777 == 0o640
    # a hard link whose name the daemon knows goes; the other name works
    a, b = os.path.join(d, "a"), os.path.join(d, "b")
    write_file(a, b"linked")
    os.link(a, b)
    os.stat(b)
    os.unlink(b)
    assert os.stat(a).st_nlink == 1
    with open(a, "rb") as f:
        assert f.read() == b"linked"
    shutil.rmtree(d)


def test_dirs_and_readdir():
    d = P(USER, "tree")
    os.mkdir(d)
    names = set()
    for i in range(300):
        name = "file-%03d" % i
        write_file(os.path.join(d, name), b"x")
        names.add(name)
    os.mkdir(os.path.join(d, "sub"))
    names.add("sub")
    assert set(os.listdir(d)) == names
    with os.scandir(d) as it:
        for e in it:
            assert e.is_dir() == (e.name == "sub")
    expect_errno(errno.ENOTEMPTY, os.rmdir, d)
    expect_errno(errno.EEXIST, os.mkdir, os.path.join(d, "sub"))
    os.rmdir(os.path.join(d, "sub"))
    shutil.rmtree(d)
    assert not os.path.exists(d)


def test_attributes_and_owner():
    d = P(USER, "idx")
    f = os.path.join(d, "attrs")
    write_file(f, b"x")
    os.chmod(f, 0o640)
    assert os.stat(f).st_mode & 0o7777 == 0o640
    os.chown(f, OTHER_UID, OTHER_UID)
    st = os.stat(f)
    assert (st.st_uid, st.st_gid) == (OTHER_UID, OTHER_UID)
    os.utime(f, ns=(1_000_000_000_123, 1_500_000_000_456))
    st = os.stat(f)
    assert st.st_mtime_ns == 1_500_000_000_456, st.st_mtime_ns
    assert st.st_atime_ns == 1_000_000_000_123
    os.unlink(f)

    # files created by another uid belong to it; permissions are honoured
    own = os.path.join(d, "owned")
    os.mkdir(own, 0o755)
    os.chown(own, OTHER_UID, OTHER_UID)
    as_other = ["setpriv", "--reuid=%d" % OTHER_UID, "--regid=%d" % OTHER_UID,
                "--clear-groups"]
    subprocess.run(as_other + ["sh", "-c", "echo hi > %s/f && mkdir %s/sub"
                               % (own, own)], check=True)
    for name in ("f", "sub"):
        st = os.stat(os.path.join(own, name))
        assert (st.st_uid, st.st_gid) == (OTHER_UID, OTHER_UID), name
    res = subprocess.run(as_other + ["sh", "-c", "echo no > %s/denied" % d],
                         capture_output=True)
    assert res.returncode != 0, "write into root's 0755 dir was allowed"
    shutil.rmtree(own)


def test_fsync_statfs_no_requests():
    before = requests(stats())
    f = P(USER, "idx", "dovecot.index.log")
    write_file(f, b"log" * 100, fsync=True)
    fd = os.open(P(USER, "idx"), os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
    st = os.statvfs(MNT)
    assert st.f_bsize > 0 and st.f_blocks > 0 and st.f_namemax >= 255
    os.stat(f)
    os.listdir(P(USER, "idx"))
    assert requests(stats()) == before, "index files caused requests"


def test_locks():
    f = P(USER, "idx", "locked")
    write_file(f, b"x")
    fd1 = os.open(f, os.O_RDWR)
    fd2 = os.open(f, os.O_RDWR)
    fcntl.flock(fd1, fcntl.LOCK_EX)
    expect_errno(errno.EWOULDBLOCK, fcntl.flock, fd2,
                 fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.flock(fd1, fcntl.LOCK_UN)
    fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.flock(fd2, fcntl.LOCK_UN)
    # fcntl (POSIX) locks are per process: test from a child
    fcntl.lockf(fd1, fcntl.LOCK_EX)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            cfd = os.open(f, os.O_RDWR)
            try:
                fcntl.lockf(cfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                code = 0 if e.errno in (errno.EAGAIN, errno.EACCES) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "fcntl lock not exclusive"
    fcntl.lockf(fd1, fcntl.LOCK_UN)
    os.close(fd1)
    os.close(fd2)


def test_mmap_index():
    f = P(USER, "idx", "dovecot.index.mmap")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, 8192)
    m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[0:5] = b"HELLO"
    m[5000:5005] = b"WORLD"
    m.flush()
    m.close()
    os.close(fd)
    data = read_file(f)
    assert len(data) == 8192
    assert data[0:5] == b"HELLO" and data[5000:5005] == b"WORLD"
    with open(f, "rb") as fh:
        m = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
        assert m[5000:5005] == b"WORLD"
        m.close()


# --- mails ---------------------------------------------------------------

MAIL1 = b"From: a@example.com\r\nSubject: one\r\n\r\nbody one\r\n"
MAIL2 = b"From: b@example.com\r\nSubject: two\r\n\r\n" + b"x" * 100000


def maildir(*parts):
    return P(USER, "Maildir", *parts)


def new_objects(before):
    now = store_objects()
    return {k: v for k, v in now.items() if k not in before}


def test_maildir_delivery():
    """As Dovecot's maildir saves a mail: written in tmp/, its received date
    set as the mtime, fsynced (stored then: store_on_fsync), closed, renamed
    into new/ (no request).  A tmp/ file closed without an fsync is not
    stored until its rename."""
    for sub in ("", "tmp", "new", "cur"):
        os.mkdir(maildir(sub)) if sub else os.mkdir(maildir())
    s0 = stats()
    objs0 = store_objects()
    # no fsync: nothing stored before the rename, which stores it
    tmp = maildir("tmp", "1700000000.M0P1.host")
    write_file(tmp, MAIL2)
    assert requests(stats()) == requests(s0), "unsynced tmp/ file stored"
    os.rename(tmp, maildir("new", "1700000000.M0P1.host"))
    assert stats()["mail_puts"] == s0["mail_puts"] + 1
    added = new_objects(objs0)
    assert len(added) == 1, added
    assert store_head(next(iter(added))) == {
        "path": "Maildir/new", "name": "1700000000.M0P1.host"}
    os.unlink(maildir("new", "1700000000.M0P1.host"))
    s0 = stats()
    objs0 = store_objects()

    tmp = maildir("tmp", "1700000000.M1P1.host")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, MAIL1)
    # Dovecot keeps the received date in the mtime, set before the fsync
    os.utime(tmp, ns=(1600000000123456789, 1500000000987654321))
    assert requests(stats()) == requests(s0), "tmp/ file stored unsynced"
    os.fsync(fd)
    os.close(fd)
    s1 = stats()
    assert s1["mail_puts"] == s0["mail_puts"] + 1
    assert s1["mails_stored_at_fsync"] == s0["mails_stored_at_fsync"] + 1
    added = new_objects(objs0)
    assert len(added) == 1, added
    key, size = next(iter(added.items()))
    assert read_file(tmp) == MAIL1
    assert os.stat(tmp).st_size == len(MAIL1)
    os.rename(tmp, maildir("new", "1700000000.M1P1.host"))
    assert requests(stats()) == requests(s1), "the rename made requests"
    assert new_objects(objs0) == added
    m = KEY_RE.match(key)
    assert m and m.group(1) == USER, key
    assert key.startswith(user_prefix(USER)), key
    assert size == len(MAIL1)
    assert store_get(key) == MAIL1
    # where it was stored: tmp/, its base name (put back into new/)
    meta = store_head(key, with_mtime=True)
    assert meta == {"path": "Maildir/tmp", "name": "1700000000.M1P1.host",
                    "mtime": "1500000000"}, meta
    st = os.stat(maildir("new", "1700000000.M1P1.host"))
    assert st.st_size == len(MAIL1)
    assert st.st_mtime_ns == 1500000000987654321, "storing changed the mtime"
    assert read_file(maildir("new", "1700000000.M1P1.host")) == MAIL1
    # the metacache holds an empty stub
    stub = os.path.join(CACHE, "meta", USER, "Maildir", "new",
                        "1700000000.M1P1.host")
    assert os.stat(stub).st_size == 0
    assert stub_key(stub) == key
    return key


def test_flag_change_and_copy(key):
    s0 = stats()
    os.rename(maildir("new", "1700000000.M1P1.host"),
              maildir("cur", "1700000000.M1P1.host:2,S"))
    os.rename(maildir("cur", "1700000000.M1P1.host:2,S"),
              maildir("cur", "1700000000.M1P1.host:2,RS"))
    cur = maildir("cur", "1700000000.M1P1.host:2,RS")
    # a hard link in the same folder shares the inode and the object
    os.link(cur, maildir("cur", "1700000000.M1P1.host-link:2,S"))
    assert os.stat(cur).st_nlink == 2
    assert requests(stats()) == requests(s0), "renames/links made requests"
    os.unlink(maildir("cur", "1700000000.M1P1.host-link:2,S"))
    assert key in store_objects()
    assert stats()["requests_delete"] == s0["requests_delete"]

    # maildir_copy_with_hardlinks to another folder: link into its tmp/,
    # then rename into cur/: the copy is stored for its own folder
    for sub in ("", "tmp", "new", "cur"):
        os.mkdir(maildir(".Sent", sub))
    objs0 = store_objects()
    os.link(cur, maildir(".Sent", "tmp", "copy"))
    os.rename(maildir(".Sent", "tmp", "copy"),
              maildir(".Sent", "cur", "1700000001.M2P1.host:2,S"))
    copy = maildir(".Sent", "cur", "1700000001.M2P1.host:2,S")
    assert stats()["mail_puts"] == s0["mail_puts"] + 1
    added = new_objects(objs0)
    assert len(added) == 1, added
    ckey = next(iter(added))
    assert KEY_RE.match(ckey).group(2) != KEY_RE.match(key).group(2), \
        "the copy must belong to the other folder"
    assert store_head(ckey) == {"path": "Maildir/.Sent/cur",
                                "name": "1700000001.M2P1.host:2,S"}
    assert store_get(ckey) == MAIL1
    assert os.stat(copy).st_nlink == 1 and os.stat(cur).st_nlink == 1
    assert os.stat(copy).st_size == len(MAIL1)
    assert os.stat(copy).st_mtime_ns == os.stat(cur).st_mtime_ns
    assert read_file(copy) == MAIL1
    assert not os.path.exists(maildir(".Sent", "tmp", "copy"))
    # a hard link made straight into another folder's cur/ gets a stub
    # file and an object of its own too
    s1 = stats()
    direct = maildir(".Sent", "cur", "1700000002.M3P1.host:2,")
    os.link(cur, direct)
    assert stats()["mail_puts"] == s1["mail_puts"] + 1
    assert os.stat(direct).st_nlink == 1 and os.stat(cur).st_nlink == 1
    assert os.stat(direct).st_ino != os.stat(cur).st_ino
    assert read_file(direct) == MAIL1
    dkey = stub_key(os.path.join(CACHE, "meta", USER, "Maildir", ".Sent",
                                    "cur", "1700000002.M3P1.host:2,"))
    assert KEY_RE.match(dkey).group(2) == KEY_RE.match(ckey).group(2)
    s2 = stats()
    expect_errno(errno.EEXIST, os.link, cur, direct)
    assert requests(stats()) == requests(s2), "a failing link made requests"
    os.unlink(direct)
    upload_now()
    assert dkey not in store_objects()
    # expunge the original: its object goes, the copy stays
    os.unlink(cur)
    assert key in store_objects(), "deleted before an upload"
    upload_now()
    objs = store_objects()
    assert key not in objs and ckey in objs
    assert read_file(copy) == MAIL1
    # a MOVE by rename of a mail's only name: stored for the new folder,
    # the old object released
    os.rename(copy, maildir("cur", "1700000001.M2P1.host:2,S"))
    moved = maildir("cur", "1700000001.M2P1.host:2,S")
    assert ckey in store_objects(), "deleted before an upload"
    upload_now()
    objs = store_objects()
    assert ckey not in objs
    mkey = stub_key(os.path.join(CACHE, "meta", USER, "Maildir", "cur",
                                    "1700000001.M2P1.host:2,S"))
    assert mkey in objs and KEY_RE.match(mkey).group(2) == \
        KEY_RE.match(key).group(2)
    assert read_file(moved) == MAIL1
    os.unlink(moved)
    upload_now()
    assert mkey not in store_objects()


def deliver(name, data, folder=()):
    tmp = maildir(*folder, "tmp", name)
    write_file(tmp, data)
    os.rename(tmp, maildir(*folder, "new", name))
    return stub_key(os.path.join(CACHE, "meta", USER, "Maildir", *folder,
                                    "new", name))


def test_rename_onto_stub():
    k1 = deliver("m1", MAIL1)
    k2 = deliver("m2", MAIL2)
    # both in the same folder: same folder GUID
    assert KEY_RE.match(k1).group(2) == KEY_RE.match(k2).group(2)
    os.rename(maildir("new", "m2"), maildir("new", "m1"))
    upload_now()
    objs = store_objects()
    assert k1 not in objs and k2 in objs
    assert read_file(maildir("new", "m1")) == MAIL2
    # RENAME_NOREPLACE onto a stub: nothing changes
    k3 = deliver("m3", MAIL1)
    expect_errno(errno.EEXIST, renameat2, maildir("new", "m3"),
                 maildir("new", "m1"), RENAME_NOREPLACE)
    objs = store_objects()
    assert k2 in objs and k3 in objs
    os.unlink(maildir("new", "m3"))
    upload_now()
    assert k3 not in store_objects()


def test_rewrite_stub():
    key = deliver("rw", MAIL1)
    path = maildir("new", "rw")
    # reading (even through an O_RDWR fd, as sdbox does) changes nothing
    fd = os.open(path, os.O_RDWR)
    assert os.pread(fd, 4, 0) == b"From"
    os.close(fd)
    assert key in store_objects()
    # truncating a stub through one handle is seen by another one
    fd = os.open(path, os.O_RDONLY)
    assert os.pread(fd, 4, 0) == b"From"
    os.truncate(path, 2)
    assert os.pread(fd, 100, 0) == b"Fr"
    os.close(fd)
    # truncated without a handle: stored again at once, then the old
    # object goes
    upload_now()
    assert key not in store_objects(), "truncated stub kept its object"
    tkey = stub_key(os.path.join(CACHE, "meta", USER, "Maildir", "new",
                                    "rw"))
    assert store_get(tkey) == b"Fr"
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, MAIL1)
    os.fsync(fd)
    os.close(fd)
    key = stub_key(os.path.join(CACHE, "meta", USER, "Maildir", "new",
                                   "rw"))
    assert store_get(key) == MAIL1
    # writing turns it back into a file; fsync stores it as a new object
    s0 = stats()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"appended\r\n")
    # the old object stays the durable copy until the new one is stored
    assert key in store_objects(), "object released before new bytes stored"
    os.fsync(fd)
    upload_now()
    assert key not in store_objects(), "rewritten stub kept its object"
    os.close(fd)
    assert stats()["mail_puts"] == s0["mail_puts"] + 1
    key2 = stub_key(os.path.join(CACHE, "meta", USER, "Maildir", "new",
                                    "rw"))
    assert key2 != key
    assert store_get(key2) == MAIL1 + b"appended\r\n"
    assert read_file(path) == MAIL1 + b"appended\r\n"
    # O_TRUNC drops the bytes at once, the object once the new ones are
    # stored (at release)
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    assert key2 in store_objects()
    os.write(fd, b"new")
    os.close(fd)
    # written in place and closed: stored at release (asynchronously)
    for _ in range(100):
        if os.stat(os.path.join(CACHE, "meta", USER, "Maildir", "new",
                                "rw")).st_size == 0:
            break
        time.sleep(0.05)
    key3 = stub_key(os.path.join(CACHE, "meta", USER, "Maildir", "new",
                                    "rw"))
    assert store_get(key3) == b"new"
    assert key2 in store_objects(), "deleted before an upload"
    upload_now()
    assert key2 not in store_objects()
    os.unlink(path)
    upload_now()
    assert key3 not in store_objects()


def test_written_in_place_fsync():
    path = maildir("cur", "direct:2,")
    s0 = stats()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, MAIL2)
    os.fsync(fd)
    assert stats()["mail_puts"] == s0["mail_puts"] + 1
    os.close(fd)
    key = stub_key(os.path.join(CACHE, "meta", USER, "Maildir", "cur",
                                   "direct:2,"))
    assert store_get(key) == MAIL2
    assert store_head(key) == {"path": "Maildir/cur", "name": "direct:2,"}
    assert stats()["mail_puts"] == s0["mail_puts"] + 1, \
        "release stored the mail again"
    assert read_file(path) == MAIL2


def meta_key(*parts):
    try:
        return stub_key(os.path.join(CACHE, "meta", USER, "Maildir",
                                        *parts))
    except OSError:
        return None


def wait_stored(*parts):
    for _ in range(100):
        if os.stat(os.path.join(CACHE, "meta", USER, "Maildir",
                                *parts)).st_size == 0:
            break
        time.sleep(0.05)
    return meta_key(*parts)


def test_write_after_fsync():
    # a handle that already wrote, and another dirty handle, keep writing
    # after an fsync stored the file: the stub is seen on every write
    path = maildir("cur", "again:2,")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fd2 = os.open(path, os.O_RDWR)
    os.write(fd, b"Subject: a\r\n")
    os.pwrite(fd2, b"X", 12)
    os.fsync(fd)
    key = meta_key("cur", "again:2,")
    assert store_get(key) == b"Subject: a\r\nX"
    os.pwrite(fd, b"\r\nbody\r\n", 13)
    assert key in store_objects(), "object released before new bytes stored"
    os.fsync(fd2)
    key2 = meta_key("cur", "again:2,")
    assert key2 != key
    assert store_get(key2) == b"Subject: a\r\nX\r\nbody\r\n"
    upload_now()
    assert key not in store_objects()
    os.pwrite(fd2, b"!", 21)
    os.close(fd)
    os.close(fd2)
    key3 = wait_stored("cur", "again:2,")
    assert key3 not in (None, key2)
    assert read_file(path) == b"Subject: a\r\nX\r\nbody\r\n!"
    assert store_get(key3) == b"Subject: a\r\nX\r\nbody\r\n!"
    assert key2 in store_objects(), "deleted before an upload"
    upload_now()
    assert key2 not in store_objects()
    os.unlink(path)
    upload_now()
    assert key3 not in store_objects()


def test_sdbox():
    box = P(USER, "sdbox", "mailboxes", "INBOX", "dbox-Mails")
    os.makedirs(box)
    objs0 = store_objects()
    tmp = os.path.join(box, ".temp.host.1234.abcdef")
    write_file(tmp, MAIL2, fsync=True)
    write_file(os.path.join(box, "dovecot.index.log"), b"idx", fsync=True)
    assert store_objects() == objs0, "sdbox temp/index file stored"
    os.rename(tmp, os.path.join(box, "u.1"))
    added = new_objects(objs0)
    assert len(added) == 1
    key = next(iter(added))
    assert KEY_RE.match(key).group(1) == USER
    assert store_head(key) == {"path": "sdbox/mailboxes/INBOX/dbox-Mails",
                               "name": "u.1"}
    assert read_file(os.path.join(box, "u.1")) == MAIL2
    # the folder GUID lives on the folder directory (moves with renames)
    guid = os.getxattr(os.path.join(CACHE, "meta", USER, "sdbox", "mailboxes",
                                    "INBOX"), "user.oboxfs.guid").decode()
    assert KEY_RE.match(key).group(2) == guid


def test_long_path_refused():
    # the path relative to the user must fit a metadata value (255 bytes)
    parts = ["d" * 60] * 5
    folder = maildir(*parts)
    os.makedirs(os.path.join(folder, "tmp"))
    os.makedirs(os.path.join(folder, "new"))
    tmp = os.path.join(folder, "tmp", "m")
    write_file(tmp, MAIL1)
    objs0 = store_objects()
    expect_errno(errno.ENAMETOOLONG, os.rename, tmp,
                 os.path.join(folder, "new", "m"))
    assert store_objects() == objs0
    assert read_file(tmp) == MAIL1
    shutil.rmtree(maildir(parts[0]))


def snapshot_tree():
    out = {}
    for root, dirs, files in os.walk(P(USER)):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            data = read_file(path) if os.path.isfile(path) else None
            out[os.path.relpath(path, MNT)] = (st.st_mode, st.st_size, data)
    return out


def test_remount(mount):
    before = snapshot_tree()
    assert any(k.endswith("u.1") for k in before)
    mount.stop()
    assert not mount.mounted()
    mount.start()
    s0 = stats()
    assert s0["mail_puts"] == 0
    assert snapshot_tree() == before
    assert requests(stats()) == requests(s0), "reading cached tree made requests"
    # empty the mail cache: reads fetch from the store once
    shutil.rmtree(os.path.join(CACHE, "mail"))
    os.mkdir(os.path.join(CACHE, "mail"), 0o700)
    mount.stop()
    mount.start()
    # (a mount reads the root's owner and mode: one GET before this)
    gets = stats()["requests_get"]
    box = P(USER, "sdbox", "mailboxes", "INBOX", "dbox-Mails", "u.1")
    assert read_file(box) == MAIL2
    assert read_file(box) == MAIL2
    s1 = stats()
    assert s1["requests_get"] - gets == 1, s1
    assert s1["oboxfs_mailcache_misses_total"] == 1
    assert s1["oboxfs_mailcache_fetch_errors_total"] == 0


CAP = 1024 * 1024


def mail_cache_usage():
    """(bytes, allocated bytes) of the regular files in CACHE/mail"""
    size = blocks = 0
    for root, dirs, files in os.walk(os.path.join(CACHE, "mail")):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue  # evicted meanwhile
            size += st.st_size
            blocks += st.st_blocks * 512
    return size, blocks


def check_cache_cap(what):
    size, blocks = mail_cache_usage()
    assert size <= CAP * 1.05, "%s: mail cache holds %d bytes" % (what, size)
    assert blocks <= CAP * 1.05, \
        "%s: mail cache uses %d bytes of disk" % (what, blocks)


def test_cache_cap(mount):
    """cache_size=1M: ~5 MB of mails plus one over the cap, read back
    byte-exact after a remount (no page cache), the cache within its cap"""
    mount.stop()
    mount.options = ",cache_size=1M"
    mount.start()
    assert stats()["oboxfs_mailcache_cap_bytes"] == CAP
    check_cache_cap("after start")  # evicted down to the cap
    mails = {}
    for i in range(24):
        data = b"From: c@example.com\r\nSubject: %d\r\n\r\n" % i + \
            hashlib.sha256(b"%d" % i).digest() * (5000 + 500 * i)
        mails["cap.%d" % i] = data
    mails["cap.big"] = b"From: d@example.com\r\n\r\n" + os.urandom(CAP + 4096)
    total = 0
    for name, data in mails.items():
        deliver(name, data)
        total += len(data)
        check_cache_cap("after storing " + name)
    assert total > 5 * CAP
    s = stats()
    assert s["oboxfs_mailcache_evictions_total"] > 0, s
    assert s["oboxfs_mailcache_bytes"] <= CAP, s
    # a new mount: the kernel's page cache of the old one is gone
    mount.stop()
    mount.start()
    gets = stats()["requests_get"]  # the mount's own
    for name, data in mails.items():
        assert read_file(maildir("new", name)) == data, name
        check_cache_cap("after reading " + name)
    s = stats()
    fit = CAP // min(len(d) for d in mails.values())
    assert s["oboxfs_mailcache_misses_total"] >= len(mails) - fit, s
    assert s["oboxfs_mailcache_hits_total"] + \
        s["oboxfs_mailcache_misses_total"] >= len(mails), s
    assert s["requests_get"] - gets == \
        s["oboxfs_mailcache_misses_total"], s
    assert s["oboxfs_mailcache_fetch_errors_total"] == 0, s
    assert s["oboxfs_mailcache_evictions_total"] > 0, s
    assert 0 < s["oboxfs_mailcache_bytes"] <= CAP, s
    assert s["oboxfs_mailcache_entries"] < len(mails), s
    for name in mails:
        os.unlink(maildir("new", name))


def mount_options():
    """the per-mount options of MNT in /proc/self/mountinfo"""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == MNT:
                return set(fields[5].split(","))
    raise AssertionError("%s not in mountinfo" % MNT)


SPECIAL = {  # name below the user: (type, rdev, symlink target)
    "special/chr": (stat.S_IFCHR, os.makedev(1, 3), None),
    "special/blk": (stat.S_IFBLK, os.makedev(8, 17), None),
    "special/fifo": (stat.S_IFIFO, 0, None),
    "special/sock": (stat.S_IFSOCK, 0, None),
    "special/link": (stat.S_IFLNK, 0, "../idx/dovecot.index"),
    ".dovecot.sieve": (stat.S_IFLNK, 0, "sieve/main.sieve"),
}


def special_state():
    out = {}
    for name in SPECIAL:
        st = os.lstat(P(USER, name))
        target = os.readlink(P(USER, name)) if stat.S_ISLNK(st.st_mode) \
            else None
        out[name] = (stat.S_IFMT(st.st_mode), st.st_rdev, target,
                     st.st_mode & 0o7777, st.st_uid, st.st_gid,
                     st.st_mtime_ns)
    return out


def test_special_files(mount):
    """device nodes, a fifo, a socket and symlinks are inert entries of
    the index tree: uploaded, and back after a takeover on an empty cache
    dir; the mount is nodev,nosuid"""
    opts = mount_options()
    assert {"nodev", "nosuid"} <= opts, opts
    os.mkdir(P(USER, "special"))
    for name, (fmt, rdev, target) in SPECIAL.items():
        if target is None:
            os.mknod(P(USER, name), fmt | 0o640, rdev)
        else:
            os.symlink(target, P(USER, name))
        os.chown(P(USER, name), OTHER_UID, OTHER_UID, follow_symlinks=False)
        os.utime(P(USER, name), ns=(1, 1_500_000_000_000 + len(name)),
                 follow_symlinks=False)
    before = special_state()
    for name, (fmt, rdev, target) in SPECIAL.items():
        assert before[name][:3] == (fmt, rdev, target), (name, before[name])
    # nodev: a device node on the mount never opens the device
    expect_errno(errno.EACCES, os.open, P(USER, "special/chr"), os.O_RDONLY)
    expect_errno(errno.EACCES, os.open, P(USER, "special/blk"), os.O_RDONLY)
    upload_now()
    mount.stop()
    # another machine: an empty cache dir loads the user from the store
    mount.cache = os.path.join(WORK, "cache-takeover")
    os.mkdir(mount.cache)
    mount.start()
    assert special_state() == before
    assert {"nodev", "nosuid"} <= mount_options()
    shutil.rmtree(P(USER, "special"))
    os.unlink(P(USER, ".dovecot.sieve"))
    mount.stop()
    # dev and suid are not offered: a one-line error, no mount
    for opt in ("dev", "suid"):
        res = subprocess.run([OBOXFS, "-f", "-o", opt + ",cache_dir=" +
                              mount.cache, URL, MNT],
                             capture_output=True, text=True, timeout=20)
        assert res.returncode != 0 and not mount.mounted(), res
        assert "option %s is not supported" % opt in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1, res.stderr
    mount.start()


def root_attr():
    st = os.stat(MNT)
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def test_root_owner_and_mode(mount):
    """the mount root's owner and mode are kept in the store: after a
    chown/chmod, a mount on an empty cache dir (another machine) shows
    them, and the mail user can make a new user's directory there;
    root_uid/root_gid/root_mode override them"""
    os.chown(MNT, OTHER_UID, OTHER_UID)
    os.chmod(MNT, 0o750)
    want = (OTHER_UID, OTHER_UID, 0o750)
    assert root_attr() == want, root_attr()
    mount.stop()
    for n in (1, 2):
        mount.cache = os.path.join(WORK, "cache-root-%d" % n)
        os.mkdir(mount.cache)
        mount.start()
        assert root_attr() == want, (n, root_attr())
        mount.stop()
    # the mail user (here OTHER_UID) creates a user's directory
    mount.start()
    as_other = ["setpriv", "--reuid=%d" % OTHER_UID,
                "--regid=%d" % OTHER_UID, "--clear-groups"]
    subprocess.run(as_other + ["mkdir", P("new-user@example.com")],
                   check=True)
    assert os.stat(P("new-user@example.com")).st_uid == OTHER_UID
    os.rmdir(P("new-user@example.com"))
    mount.stop()
    # options override what is stored, without storing it
    mount.options = ",root_uid=0,root_gid=0,root_mode=0711"
    mount.start()
    assert root_attr() == (0, 0, 0o711), root_attr()
    mount.stop()
    mount.options = ""
    mount.cache = os.path.join(WORK, "cache-root-3")
    os.mkdir(mount.cache)
    mount.start()
    assert root_attr() == want, root_attr()
    # back as it was for the next steps
    os.chown(MNT, 0, 0)
    os.chmod(MNT, 0o755)


def main():
    if os.path.ismount(MNT):
        subprocess.run(["fusermount3", "-u", "-z", MNT], check=False)
    shutil.rmtree(WORK, ignore_errors=True)
    for d in (STORE, CACHE, MNT):
        os.makedirs(d)
    global MOUNT
    mount = MOUNT = Mount()
    failed = False
    try:
        mount.start()
        steps = [test_root_rules, test_excl_create_rw_truncate, test_renames,
                 test_dotlock,
                 test_names_of_files_the_daemon_holds_no_fd_for,
                 test_dirs_and_readdir, test_attributes_and_owner,
                 test_fsync_statfs_no_requests, test_locks, test_mmap_index]
        for step in steps:
            print("--", step.__name__, flush=True)
            step()
        print("-- test_maildir_delivery", flush=True)
        key = test_maildir_delivery()
        for step in (lambda: test_flag_change_and_copy(key),
                     test_rename_onto_stub, test_rewrite_stub,
                     test_written_in_place_fsync, test_write_after_fsync,
                     test_sdbox,
                     test_long_path_refused, lambda: test_remount(mount),
                     lambda: test_cache_cap(mount),
                     lambda: test_special_files(mount),
                     lambda: test_root_owner_and_mode(mount)):
            print("--", getattr(step, "__name__", "step"), flush=True)
            step()
        mount.stop()
    except BaseException:
        traceback.print_exc()
        failed = True
    finally:
        mount.emergency_stop()
    if failed:
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    print("all fs POSIX operation checks passed")


if __name__ == "__main__":
    main()
