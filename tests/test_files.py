"""vertex_env.system.files: the one atomic write and the one lock with a deadline, used by every file vertex-env owns."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vertex_env.errors import LockTimeoutError, SinkError
from vertex_env.system import files


def test_atomic_write_replaces_the_file_with_the_mode_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data.json"
    path.write_text("old")
    files.atomic_write(path, b"new", 0o640)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from vertex_env.system import files
    def die(*args, **kwargs):
        os._exit(3)  # killed between fsync and rename
    os.replace = die
    files.atomic_write(Path(sys.argv[1]), b"OPENAI_API_KEY=secret\\n", 0o644)
    """
)


def test_a_writer_killed_before_the_rename_leaves_a_0600_temp_file_that_a_sweep_removes(
    tmp_path: Path,
) -> None:
    target = tmp_path / ".env"
    target.write_text("A=1\n")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(target)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    (leftover,) = [p for p in tmp_path.iterdir() if p.name != ".env"]
    assert leftover.name.startswith("..env.vertex-env-") and leftover.name.endswith(".tmp")
    assert stat.S_IMODE(leftover.stat().st_mode) == 0o600, (
        "the token never sits in a readable temp file"
    )
    assert files.sweep_temp(tmp_path, name=".env") == 0, "a fresh temp file may be a live writer's"
    old = time.time() - 120
    os.utime(leftover, (old, old))
    unrelated = tmp_path / ".other.abc.tmp"
    unrelated.write_text("")
    os.utime(unrelated, (old, old))
    assert files.sweep_temp(tmp_path, name=".env") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", ".other.abc.tmp"]


def test_a_lock_held_past_the_deadline_is_one_clear_error(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with files.locked(lock, 1, what="the thing"):
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as caught, files.locked(lock, 0.3, what="the thing"):
            pass  # pragma: no cover
        assert time.monotonic() - started >= 0.3
    assert isinstance(caught.value, SinkError) and caught.value.exit_code == 9
    assert str(caught.value).startswith(
        f"the thing is locked by another process (waited 0.3 s for {lock})"
    )
    assert "\n" not in str(caught.value)
    with files.locked(lock, 0.1, what="the thing"):
        assert files.is_locked(lock)
    assert not files.is_locked(lock)


def test_a_lock_path_that_is_a_symlink_or_a_fifo_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    link = tmp_path / "link.lock"
    link.symlink_to(victim)
    with pytest.raises(OSError), files.locked(link, 0.1, what="x"):
        pass  # pragma: no cover
    assert not victim.exists(), "no file is created through a planted symlink"
    fifo = tmp_path / "fifo.lock"
    os.mkfifo(fifo)
    with pytest.raises(OSError), files.locked(fifo, 0.1, what="x"):
        pass  # pragma: no cover


def test_a_profile_edit_leaves_no_lock_file_beside_a_linked_config(isolated_machine: Path) -> None:
    """config.toml is often a link into a dotfiles repository: its writers' lock is kept in the private
    directory, like a dotenv file's."""
    from vertex_env.config import editing as profiles
    from vertex_env.system.files import cache_dir

    dotfiles = isolated_machine / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "config.toml").write_text("# mine\n")
    config = isolated_machine / ".config" / "vertex-env" / "config.toml"
    config.parent.mkdir(parents=True)
    config.symlink_to(dotfiles / "config.toml")
    profiles.set_values("dev", ["project=dev-project"], config)
    assert (dotfiles / "config.toml").read_text().startswith("# mine\n")
    assert sorted(p.name for p in dotfiles.iterdir()) == ["config.toml"]
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.toml"]
    assert files.writers_lock_path(config, cache_dir()).exists()


def test_cache_clear_removes_the_writers_lock_files_no_one_holds_and_keeps_a_held_one(
    isolated_machine: Path,
) -> None:
    from vertex_env.cli.group import main
    from vertex_env.system.files import cache_dir

    targets = [isolated_machine / f"p{i}" / ".env" for i in range(3)]
    for target in targets:
        with files.writers_locked(target, cache_dir(), 1.0, what=str(target)):
            pass
    locks = [files.writers_lock_path(target, cache_dir()) for target in targets]
    assert all(lock.exists() for lock in locks)
    (cache_dir() / "writers-not-ours.lock").write_text("")  # not one of our names: never touched
    with files.writers_locked(targets[0], cache_dir(), 1.0, what="held"):
        assert main(["cache", "clear"]) == 0
        assert locks[0].exists() and files.is_locked(locks[0]), "a held lock is never removed"
    assert not locks[1].exists() and not locks[2].exists()
    assert (cache_dir() / "writers-not-ours.lock").exists()
    assert main(["cache", "clear"]) == 0
    assert not locks[0].exists()
    # re-created on the next write
    with files.writers_locked(targets[1], cache_dir(), 1.0, what="again"):
        assert files.is_locked(locks[1])


def test_a_writer_whose_lock_file_was_swept_between_open_and_lock_locks_the_new_one(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving `cache clear` can cause: the writer opened the lock file, the sweep unlinked it, then the
    writer locked the unlinked file — which excludes no one. The writer must notice and lock the file at the path."""
    from vertex_env.system.files import cache_dir

    target = isolated_machine / ".env"
    lock = files.writers_lock_path(target, cache_dir())
    with files.writers_locked(target, cache_dir(), 1.0, what="first"):
        pass
    opened = files.open_lock_file
    swept: list[int] = []

    def open_then_sweep(path: Path) -> int:
        fd = opened(path)
        if not swept:
            swept.append(files.sweep_writers_locks(cache_dir()))
        return fd

    monkeypatch.setattr(files, "open_lock_file", open_then_sweep)
    with files.writers_locked(target, cache_dir(), 1.0, what="racing"):
        assert swept == [1]
        assert lock.exists() and files.is_locked(lock), "the lock held is the one at the path"


# --- resolve_safely: the kernel's protected_symlinks rule in user space (issue 22) ---------------------------


@pytest.mark.parametrize(
    "folder_mode,link_owner,followed",
    [
        (0o1777, "other", False),  # another user's link in a sticky world-writable folder (/tmp)
        (0o0777, "other", False),  # ... in a world-writable one
        (0o1777, "me", True),  # our own link there
        (0o1777, "folder owner", True),  # the folder owner's link
        (0o0755, "other", True),  # a folder only its owner writes: the owner vouches for its links
    ],
)
def test_resolve_safely_follows_a_link_as_protected_symlinks_would(
    tmp_path: Path,
    second_user: tuple[int, int],
    folder_mode: int,
    link_owner: str,
    followed: bool,
) -> None:
    from vertex_env.errors import UnsafeFileError
    from vertex_env.system.files import resolve_safely

    target = tmp_path / "target"
    target.write_text("x")
    folder = tmp_path / "shared"
    folder.mkdir()
    link = folder / "link"
    os.symlink(target, link)
    other_uid = second_user[0] + 1 if link_owner == "folder owner" else second_user[0]
    folder_uid = other_uid if link_owner == "folder owner" else 0
    os.chown(folder, folder_uid, 0)
    folder.chmod(folder_mode)
    if link_owner != "me":
        os.lchown(link, other_uid, 0)
    if followed:
        assert resolve_safely(folder / "link") == target
    else:
        with pytest.raises(UnsafeFileError, match="symbolic link of another user"):
            resolve_safely(folder / "link")


def test_resolve_safely_resolves_as_realpath_does(tmp_path: Path) -> None:
    from vertex_env.system.files import resolve_safely

    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink("a/b", tmp_path / "ab")
    os.symlink("../a", tmp_path / "a" / "b" / "up")
    for path in ("ab/up/b/missing/../x.env", "ab/../a/./b", "nowhere/x", "ab/up/b/up"):
        assert resolve_safely(tmp_path / path) == Path(os.path.realpath(tmp_path / path))
