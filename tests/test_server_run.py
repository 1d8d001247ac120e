"""server/run.py's start-up checks: a port, host, checkpoint folder or Redis the relay cannot use is one
UserError naming it (the CLI's one line, exit 2) before anything listens."""

import socket
import subprocess
import sys

import pytest

from _relay_process import REPO, free_port
from pyscript_app.errors import UserError
from server.run import check_redis, check_state_dir, listening_sockets


def test_the_sockets_are_bound_where_asked():
    port = free_port()
    sockets = listening_sockets("127.0.0.1", port)
    try:
        assert [s.getsockname() for s in sockets] == [("127.0.0.1", port)]
    finally:
        for s in sockets:
            s.close()


def test_a_taken_port_or_a_foreign_address_is_a_user_error_naming_it():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            listening_sockets("127.0.0.1", port)
    with pytest.raises(UserError, match="cannot listen on 192.0.2.1:"):  # TEST-NET-1: no machine's address
        listening_sockets("192.0.2.1", free_port())


def test_the_checkpoint_folder_is_made_or_refused(tmp_path):
    check_state_dir(str(tmp_path / "state"))
    assert (tmp_path / "state" / "sessions").is_dir() and not list((tmp_path / "state" / "sessions").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot keep checkpoints in .*file/state: Not a directory"):
        check_state_dir(str(tmp_path / "file" / "state"))


def test_a_bad_or_silent_redis_is_refused_without_its_password():
    with pytest.raises(UserError, match="bad Redis URL 'notaurl'"):
        check_redis("notaurl")
    with pytest.raises(UserError, match=r"cannot reach Redis at redis://:\*\*\*@127.0.0.1:") as e:
        check_redis(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert "hunter2" not in str(e.value)


def test_tabgpt_relay_on_a_taken_port_exits_2_with_one_line():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "pyscript_app.cli", "relay", "--port", str(port)],
                           capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == f"tabgpt: error: cannot listen on 127.0.0.1:{port}: Address already in use"
