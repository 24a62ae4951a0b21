"""A terminated ``ovr`` command stops the servers it started instead of orphaning them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx


def test_sigterm_unwinds_and_stops_child_servers(tmp_path):
    script = tmp_path / "hold.py"
    port_file = tmp_path / "port"
    script.write_text(
        "import sys, time\n"
        "from ovr.cli import app, main\n"
        "from ovr.serving import ManagedServer\n"
        "@app.command('hold-server')\n"
        "def hold():\n"
        "    cmd = [sys.executable, '-m', 'http.server', '{port}', '--bind', '127.0.0.1']\n"
        "    with ManagedServer(cmd, health_path='/') as s:\n"
        f"        open({str(port_file)!r}, 'w').write(str(s.port))\n"
        "        time.sleep(600)\n"
        "sys.argv = ['ovr', 'hold-server']\n"
        "main()\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 60
    while not port_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    port = int(port_file.read_text())
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        alive = True
    except httpx.HTTPError:
        alive = False
    assert not alive, "the child server outlived the terminated command"
