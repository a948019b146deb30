"""Writing model files: temporary files, leftovers of killed saves, fsync, permission modes,
symbolic links and clear errors for full disks and bad targets."""

import errno
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import zipfile

import numpy as np
import pytest

import npnet
from npnet.saving import SavedModelError

posix_only = pytest.mark.skipif(os.name != "posix", reason="modes, links, pipes and signals of POSIX systems")

# No process ever has this id on Linux (pid_max is at most 2**22) nor on macOS (99999).
DEAD_PID = 99_999_999


def _model(seed=0, units=8):
    m = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(units, activation="relu"), npnet.Dense(3)], seed=seed)
    m.compile(npnet.Adam(0.01), "mse")
    return m


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _leftover(name, pid, token="0123abcd"):
    return f".{name}.npnet-tmp-{pid}-{token}"


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


# ------------------------------------------------------------------ temporary files
def test_temporary_file_is_named_for_its_target_in_the_same_folder(tmp_path, monkeypatch):
    renames = []
    real = os.replace

    def record(src, dst, *a, **k):
        renames.append((os.fspath(src), os.fspath(dst)))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", record)
    _model().save(tmp_path / "m.npnet")
    _model().save_weights(tmp_path / "w.npnet")
    assert [os.path.dirname(s) for s, _ in renames] == [str(tmp_path)] * 2
    assert [d for _, d in renames] == [str(tmp_path / "m.npnet"), str(tmp_path / "w.npnet")]
    names = [os.path.basename(s) for s, _ in renames]
    assert re.fullmatch(rf"\.m\.npnet\.npnet-tmp-{os.getpid()}-[0-9a-f]{{8}}", names[0]), names
    assert re.fullmatch(rf"\.w\.npnet\.npnet-tmp-{os.getpid()}-[0-9a-f]{{8}}", names[1]), names


def test_a_long_file_name_still_saves_and_leaves_nothing_behind(tmp_path):
    name = "m" * 240 + ".npnet"  # 246 bytes: the temporary name must not exceed 255
    model = _model()
    model.save(tmp_path / name)
    assert os.listdir(tmp_path) == [name]
    assert _same(npnet.load_model(tmp_path / name).get_weights(), model.get_weights())


_CHILD = textwrap.dedent("""
    import os, sys, zipfile
    import npnet

    path, stage = sys.argv[1], sys.argv[2]

    def pause():
        print("paused", flush=True)
        sys.stdin.readline()  # blocks until the parent kills this process
        raise SystemExit("not killed")

    written = [0]
    real_writestr = zipfile.ZipFile.writestr

    def writestr(self, name, data, *args, **kwargs):
        if stage == "midway" and written[0] == 3:
            pause()
        written[0] += 1
        return real_writestr(self, name, data, *args, **kwargs)

    real_fsync = os.fsync

    def fsync(fd):
        if stage == "before-rename":
            pause()
        return real_fsync(fd)

    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        if stage == "created":
            pause()
        return real_fdopen(fd, *args, **kwargs)

    zipfile.ZipFile.writestr, os.fsync, os.fdopen = writestr, fsync, fdopen
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(256), npnet.Dense(256), npnet.Dense(3)], seed=7)
    model.save(path)
    print("finished", flush=True)
""")


@posix_only
def test_a_save_killed_midway_keeps_the_previous_file_and_the_next_save_removes_its_leftover(tmp_path):
    """SIGKILL a save in a subprocess at three points of the write: right after the
    temporary file is created, halfway through the arrays, and after the last byte but
    before the rename."""
    path = tmp_path / "m.npnet"
    model = _model()
    model.save(path)
    weights = model.get_weights()
    script = tmp_path.parent / f"{tmp_path.name}-child.py"
    script.write_text(_CHILD)
    sizes = {}
    for stage in ("created", "midway", "before-rename"):
        child = subprocess.Popen([sys.executable, str(script), str(path), stage], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        try:
            line = child.stdout.readline()
            assert line == "paused\n", (stage, line, child.poll())
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.communicate()
        assert child.returncode == -signal.SIGKILL
        # The previous file is untouched and loads. The killed save left its temporary
        # file; the one of the trial before was removed by this trial's save.
        assert _same(npnet.load_model(path).get_weights(), weights), stage
        left = sorted(n for n in os.listdir(tmp_path) if n != "m.npnet")
        assert len(left) == 1 and re.fullmatch(rf"\.m\.npnet\.npnet-tmp-{child.pid}-[0-9a-f]{{8}}", left[0]), left
        sizes[stage] = os.path.getsize(tmp_path / left[0])
    assert sizes["created"] == 0 and 0 < sizes["midway"] < 256 * 256 * 4 < sizes["before-rename"], sizes
    newer = _model(seed=3)
    newer.save(path)  # removes the leftover of the dead process
    assert os.listdir(tmp_path) == ["m.npnet"]
    assert _same(npnet.load_model(path).get_weights(), newer.get_weights())


@posix_only
def test_cleanup_removes_only_dead_leftovers_of_this_target(tmp_path):
    path = tmp_path / "m.npnet"
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    dead = tmp_path / _leftover("m.npnet", DEAD_PID)
    dead.write_bytes(b"half a zip")
    # This process's id, but not a file it is writing: left by an earlier process with the
    # same id (a restarted container's training process is often process 1 again).
    (tmp_path / _leftover("m.npnet", os.getpid())).write_bytes(b"half a zip")
    kept = {
        _leftover("m.npnet", os.getppid(), "ffffffff"),  # a live process, running since before
        _leftover("other.npnet", DEAD_PID),  # another target's
        _leftover("m.npnet", DEAD_PID, "0123abc"),  # not the exact pattern
        _leftover("m.npnet", DEAD_PID, "0123ABCD"),
        ".m.npnet.npnet-tmp-x-0123abcd",
        "m.npnet.npnet-tmp-1-0123abcd",
        _leftover("m.npnet", DEAD_PID) + ".bak",
    }
    for name in kept:
        (tmp_path / name).write_bytes(b"x")
    link = _leftover("m.npnet", DEAD_PID, "11111111")
    os.symlink(precious, tmp_path / link)  # a link is never followed nor removed
    folder = _leftover("m.npnet", DEAD_PID, "22222222")
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "inside").write_text("x")
    _model().save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(kept | {"m.npnet", "precious.txt", link, folder})
    assert precious.read_text() == "keep me" and os.readlink(tmp_path / link) == str(precious)
    assert (tmp_path / folder / "inside").read_text() == "x"


def test_a_failed_write_removes_its_temporary_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "m.npnet"
    model = _model()
    model.save(path)
    before = path.read_bytes()

    def fail(self, *a, **k):
        raise RuntimeError("bug in a writer")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail)
    with pytest.raises(RuntimeError, match="bug in a writer"):
        _model(seed=1).save(path)
    assert os.listdir(tmp_path) == ["m.npnet"] and path.read_bytes() == before


def test_a_save_keeps_the_temporary_file_another_thread_is_writing(tmp_path, monkeypatch):
    path = tmp_path / "m.npnet"
    writing, release = threading.Event(), threading.Event()
    real = zipfile.ZipFile.writestr

    def writestr(self, *a, **k):
        if threading.current_thread().name == "slow-saver" and not writing.is_set():
            writing.set()
            assert release.wait(30)
        return real(self, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)
    slow, fast = _model(seed=1), _model(seed=2)
    errors = []

    def save_slowly():
        try:
            slow.save(path)
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=save_slowly, name="slow-saver")
    thread.start()
    try:
        assert writing.wait(30)
        (temp,) = [n for n in os.listdir(tmp_path) if n.startswith(".m.npnet.npnet-tmp-")]
        fast.save(path)
        assert os.path.exists(tmp_path / temp)  # another thread's file is left alone
        assert _same(npnet.load_model(path).get_weights(), fast.get_weights())
    finally:
        release.set()
        thread.join(30)
    assert errors == [] and os.listdir(tmp_path) == ["m.npnet"]
    assert _same(npnet.load_model(path).get_weights(), slow.get_weights())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process start times from /proc")
def test_a_leftover_whose_process_id_was_reused_by_a_later_process_is_removed(tmp_path):
    waiting = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        older = tmp_path / _leftover("m.npnet", waiting.pid, "0000aaaa")
        older.write_bytes(b"written before that process started")
        an_hour_ago = time.time() - 3600
        os.utime(older, (an_hour_ago, an_hour_ago))
        fresh = tmp_path / _leftover("m.npnet", waiting.pid, "0000bbbb")
        fresh.write_bytes(b"may be that process's")
        _model().save(tmp_path / "m.npnet")
        assert sorted(os.listdir(tmp_path)) == sorted(["m.npnet", fresh.name])
    finally:
        waiting.kill()
        waiting.communicate()


# ------------------------------------------------------------------ fsync
@posix_only
def test_the_file_is_synced_before_the_rename_and_the_folder_after_it(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync", "folder" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        return real_fsync(fd)

    def replace(src, dst, *a, **k):
        events.append(("replace", os.lstat(src).st_ino, os.fspath(dst)))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "m.npnet"
    for save in (lambda: _model().save(path), lambda: _model().save_weights(path)):
        events.clear()
        save()
        ino = os.stat(path).st_ino
        assert events == [("fsync", "file", ino), ("replace", ino, str(path)),
                          ("fsync", "folder", os.stat(tmp_path).st_ino)]


@posix_only
def test_a_folder_that_cannot_be_synced_is_not_an_error(tmp_path, monkeypatch):
    """Some file systems refuse fsync on a folder (EINVAL); the file is in place then."""
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    model = _model()
    model.save(tmp_path / "m.npnet")
    assert _same(npnet.load_model(tmp_path / "m.npnet").get_weights(), model.get_weights())


# ------------------------------------------------------------------ modes and links
@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o664])
def test_overwriting_keeps_the_files_permission_mode(tmp_path, umask, mode):
    umask(0o077)
    path = tmp_path / "m.npnet"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    _model().save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    _model().save_weights(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


@posix_only
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_a_new_file_gets_the_mode_open_would_give_it(tmp_path, umask, mask):
    umask(mask)
    _model().save(tmp_path / "m.npnet")
    with open(tmp_path / "by_open", "wb"):
        pass
    assert stat.S_IMODE(os.stat(tmp_path / "m.npnet").st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(os.stat(tmp_path / "m.npnet").st_mode) == stat.S_IMODE(os.stat(tmp_path / "by_open").st_mode)


@posix_only
def test_saving_through_a_symbolic_link_replaces_the_file_it_points_to(tmp_path):
    real_dir = tmp_path / "store"
    real_dir.mkdir()
    real = real_dir / "model.npnet"
    _model().save(real)
    os.chmod(real, 0o644)
    link_dir = tmp_path / "links"
    link_dir.mkdir()
    link = link_dir / "latest.npnet"
    os.symlink(os.path.join("..", "store", "model.npnet"), link)
    model = _model(seed=5)
    model.save(link)
    assert os.path.islink(link) and os.readlink(link) == os.path.join("..", "store", "model.npnet")
    assert _same(npnet.load_model(real).get_weights(), model.get_weights())
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o644
    assert os.listdir(link_dir) == ["latest.npnet"] and os.listdir(real_dir) == ["model.npnet"]
    model.save_weights(link)
    other = _model(seed=9)
    other.load_weights(real)
    assert os.path.islink(link) and _same(other.get_weights(), model.get_weights())


@posix_only
def test_a_dangling_link_creates_its_target_and_a_loop_is_refused(tmp_path):
    link = tmp_path / "link.npnet"
    os.symlink("target.npnet", link)
    model = _model()
    model.save(link)
    assert os.path.islink(link)
    assert _same(npnet.load_model(tmp_path / "target.npnet").get_weights(), model.get_weights())
    os.symlink("b.npnet", tmp_path / "a.npnet")
    os.symlink("a.npnet", tmp_path / "b.npnet")
    with pytest.raises(OSError, match=r"save: cannot write '.*a\.npnet': it is a symbolic link that loops") as info:
        model.save(tmp_path / "a.npnet")
    assert info.value.errno == errno.ELOOP and not isinstance(info.value, SavedModelError)
    assert os.path.islink(tmp_path / "a.npnet") and os.path.islink(tmp_path / "b.npnet")


@posix_only
def test_a_target_that_is_not_a_regular_file_is_refused_and_left_alone(tmp_path):
    fifo = tmp_path / "pipe.npnet"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"save_weights: cannot write '.*pipe\.npnet': it is a named pipe, not a regular "
                                      r"file") as info:
        _model().save_weights(fifo)
    assert info.value.errno == errno.EINVAL
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["pipe.npnet"]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
@pytest.mark.parametrize("saver", ["save", "save_weights"])
def test_a_full_disk_raises_a_clear_oserror_and_keeps_the_previous_file(tmp_path, monkeypatch, where, saver):
    path = tmp_path / "m.npnet"
    _model().save(path)
    before = path.read_bytes()
    calls = {"n": 0}
    real_writestr, real_fsync, real_replace = zipfile.ZipFile.writestr, os.fsync, os.replace

    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def writestr(self, *a, **k):
        calls["n"] += 1
        if where == "write" and calls["n"] == 3:
            full()
        return real_writestr(self, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)
    monkeypatch.setattr(os, "fsync", full if where == "fsync" else real_fsync)
    monkeypatch.setattr(os, "replace", full if where == "replace" else real_replace)
    with pytest.raises(OSError, match=rf"{saver}: cannot write '.*m\.npnet': No space left on device \(the disk is "
                                      r"full\) while .*; any previous file is unchanged and no temporary file is left") as info:
        getattr(_model(seed=1), saver)(path)
    assert type(info.value) is OSError and info.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == ["m.npnet"] and path.read_bytes() == before


def test_permission_denied_names_the_file(tmp_path, monkeypatch):
    real_open = os.open

    def deny(path, *a, **k):
        if ".npnet-tmp-" in os.fspath(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(PermissionError, match=r"save: cannot write '.*m\.npnet': Permission denied while "
                                              r"creating a temporary file in the folder '.*'; any previous file") as info:
        _model().save(tmp_path / "m.npnet")
    assert info.value.errno == errno.EACCES
    assert os.listdir(tmp_path) == []


def test_a_missing_folder_a_directory_or_a_file_as_folder_raise_oserrors_with_errno(tmp_path):
    model = _model()
    with pytest.raises(FileNotFoundError, match=r"save: folder '.*nope' does not exist") as info:
        model.save(tmp_path / "nope" / "m.npnet")
    assert info.value.errno == errno.ENOENT
    with pytest.raises(IsADirectoryError, match=r"save_weights: '.*' is a directory; give a file path") as info:
        model.save_weights(tmp_path)
    assert info.value.errno == errno.EISDIR
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"save: '.*file' is not a folder") as info:
        model.save(tmp_path / "file" / "m.npnet")
    assert info.value.errno == errno.ENOTDIR
    with pytest.raises(FileExistsError, match=r"save: '.*file' exists and overwrite=False") as info:
        model.save(tmp_path / "file", overwrite=False)
    assert info.value.errno == errno.EEXIST
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_the_file_path_is_checked(tmp_path):
    model = _model()
    with pytest.raises(TypeError, match=r"save: `filepath` must be a str or path, received None"):
        model.save(None)
    with pytest.raises(TypeError, match=r"save_weights: `filepath` must be a str or path, received 3"):
        model.save_weights(3)
    with pytest.raises(ValueError, match=r"save: `filepath` must be a file path such as 'model.npnet', received ''"):
        model.save("")
    model.save(os.fsencode(tmp_path / "bytes.npnet"))  # a bytes path names the same file
    assert os.listdir(tmp_path) == ["bytes.npnet"]
    assert _same(npnet.load_model(tmp_path / "bytes.npnet").get_weights(), model.get_weights())


# ------------------------------------------------------------------ callbacks
@posix_only
def test_backup_files_get_the_default_mode_and_leftovers_are_removed(tmp_path, umask):
    umask(0o022)
    backup = tmp_path / "backup"
    backup.mkdir()
    stale = backup / _leftover("training_state.json", DEAD_PID)
    stale.write_bytes(b"{")
    x, y = np.zeros((8, 4), "float32"), np.zeros((8, 3), "float32")
    model = _model()
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[npnet.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False)])
    names = sorted(os.listdir(backup))
    assert names == ["optimizer-2.npz", "training_state.json", "weights-2.npnet"]
    assert {n: stat.S_IMODE(os.stat(backup / n).st_mode) for n in names} == dict.fromkeys(names, 0o644)


def test_model_checkpoint_overwriting_one_file_keeps_its_mode_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "ckpt.npnet"
    x, y = np.zeros((8, 4), "float32"), np.zeros((8, 3), "float32")
    model = _model()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[npnet.callbacks.ModelCheckpoint(str(path))])
    if os.name == "posix":
        os.chmod(path, 0o604)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[npnet.callbacks.ModelCheckpoint(str(path))])
    assert os.listdir(tmp_path) == ["ckpt.npnet"]
    if os.name == "posix":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o604
    assert _same(npnet.load_model(path).get_weights(), model.get_weights())
