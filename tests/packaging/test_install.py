"""The SDK installs on its own (issue 14, "Done when"): a wheel of this tree goes into clean
virtual environments, and

(a) ``pip install tessera`` imports every public SDK module and has no database driver;
(b) ``pip install 'tessera[verifier]'`` runs the example service's own tests
    (examples/orders_service/test_app.py) and still has no database driver;
(c) without the ``server`` extra the ``tessera`` command says so in one line, and a server
    package fails to import with that line as its error.

Offline and fast: the third-party wheels come from a wheelhouse built once per
pyproject.toml ``[project]`` table (``pip wheel`` out of pip's cache, the index only for
what it lacks), kept in the dev virtualenv keyed by that table's hash; the Tessera wheel
is rebuilt every run; installs use ``--no-index``. Venvs are made without pip (the dev
venv's pip installs into them with ``--python``), the two side by side.
"""

from __future__ import annotations

import hashlib
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]

PUBLIC_MODULES = [
    "tessera",
    "tessera.verifier",
    "tessera.verifier.errors",
    "tessera.verifier.revocation",
    "tessera.verifier.revocation.state",
    "tessera.verifier.revocation.history",
    "tessera.verifier.revocation.follower",
    "tessera.verifier.revocation.sources",
    "tessera.verifier.revocation.acks",
    "tessera.verifier.service",
    "tessera.verifier.settings",
    "tessera.verifier.metrics",
    "tessera.verifier.decisions",
    "tessera.verifier.asgi",
    "tessera.verifier.fastapi",
    "tessera.verifier.dpop",
    "tessera.verifier.replay",
    "tessera.verifier.jwks",
    "tessera.verifier.driver",
    "tessera.verifier.envelope",
    "tessera.verifier.envelope.claims",
    "tessera.verifier.envelope.verify",
    "tessera.verifier.envelope.consumer",
    "tessera.verifier.envelope.seen_redis",
]
"""Every public module of the SDK (no ``_private`` part in its name); the first test
checks this list against the source tree, so a new module cannot be left out."""

DATABASE_DISTRIBUTIONS = ["SQLAlchemy", "asyncpg", "aiosqlite", "alembic", "argon2-cffi"]
"""What a service embedding the SDK must never pull in."""

SERVER_PACKAGES = {
    "tessera.identity": "the identity service",
    "tessera.gateway": "the edge gateway",
    "tessera.bff": "the backend-for-frontend",
    "tessera.console": "the admin console",
    "tessera.store.sql": "the SQL store",
    "tessera.store.migrations": "the database migrations",
}

REDIS_USES = {
    "from tessera.verifier.replay import RedisReplayCache as C; C.from_url(URL)":
        "RedisReplayCache",
    "from tessera.verifier.envelope.seen_redis import RedisSeenEnvelopes as C; "
    "C.from_url(URL)": "RedisSeenEnvelopes",
    "from tessera.verifier.revocation.sources import HttpFeedSource, RedisStreamSource; "
    "RedisStreamSource(URL, snapshot_from=HttpFeedSource('http://id', client_id='c', "
    "client_secret='s'))": "the Redis revocation source",
}
"""SDK code that needs redis-py (the verifier extra): it imports without it, and says so
in one line when used."""

# pip options for installs into the clean venvs: this machine's pip configuration (extra
# indexes, find-links) is left out, so only the wheelhouse counts
OFFLINE_ENV = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
for _name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_CONSTRAINT"):
    OFFLINE_ENV.pop(_name, None)


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=540, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {done.returncode}\n"
                             f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def pip(*args: str | Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "pip", "--quiet", *args, env=env)


def source_copy(dest: Path) -> Path:
    """What the wheel is built from (the tree itself stays free of build/ and egg-info)."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "src", dest / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheelhouse of every third-party wheel, directory holding this tree's wheel)."""
    source = source_copy(tmp_path_factory.mktemp("source") / "tessera")
    # keyed by the [project] table (dependencies, extras): other edits keep the wheels
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    key = hashlib.sha256(json.dumps(project, sort_keys=True).encode()).hexdigest()[:16]
    python = f"{sys.version_info[0]}{sys.version_info[1]}"
    house = Path(sys.prefix) / "tessera-wheelhouse" / f"{python}-{key}"
    if not house.is_dir():
        building = house.with_name(f"{house.name}.{uuid.uuid4().hex[:8]}")
        # the project's own wheel is built here too, then dropped: it changes every run
        pip("wheel", "--wheel-dir", building, f"{source}[verifier]", "pytest",
            "setuptools>=68")
        for own in building.glob("tessera-*.whl"):
            own.unlink()
        # a build environment kept with the wheels, so each run builds without pip
        run(sys.executable, "-m", "venv", "--without-pip", building / "build-env")
        pip("--python", building / "build-env" / "bin" / "python", "install", "--no-index",
            "--find-links", building, "setuptools>=68", env=OFFLINE_ENV)
        try:
            building.rename(house)
        except OSError:  # another run finished first: use its wheelhouse
            shutil.rmtree(building, ignore_errors=True)
        for stale in house.parent.glob(f"{python}-*"):  # earlier [project] tables
            if stale != house and "." not in stale.name:
                shutil.rmtree(stale, ignore_errors=True)
    dist = tmp_path_factory.mktemp("dist")
    build = "import sys, setuptools.build_meta as backend; backend.build_wheel(sys.argv[1])"
    run(house / "build-env" / "bin" / "python", "-c", build, dist, cwd=source)
    assert len(list(dist.glob("tessera-*.whl"))) == 1
    return house, dist


def venv(path: Path, wheels: tuple[Path, Path], *requirements: str) -> Path:
    """A clean venv holding ``requirements`` from the wheelhouse only; its python."""
    house, dist = wheels
    run(sys.executable, "-m", "venv", "--without-pip", path)
    python = path / "bin" / "python"
    pip("--python", python, "install", "--no-compile", "--no-index", "--find-links", house,
        "--find-links", dist, *requirements, env=OFFLINE_ENV)
    return python


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory, wheels: tuple[Path, Path]
          ) -> dict[str, Path]:
    """Both clean venvs, installed side by side: ``base`` (``tessera``) and ``verifier``
    (``tessera[verifier]`` and pytest, to run the example's tests)."""
    wanted = {"base": ("tessera",), "verifier": ("tessera[verifier]", "pytest")}
    with ThreadPoolExecutor(len(wanted)) as pool:
        futures = {name: pool.submit(venv, tmp_path_factory.mktemp(name) / "venv", wheels,
                                     *requirements)
                   for name, requirements in wanted.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def base(venvs: dict[str, Path]) -> Path:
    return venvs["base"]


@pytest.fixture(scope="module")
def verifier(venvs: dict[str, Path]) -> Path:
    return venvs["verifier"]


def installed(python: Path, distributions: list[str]) -> list[str]:
    script = ("import importlib.metadata as m, sys\n"
              "for name in sys.argv[1:]:\n"
              "    try: m.distribution(name)\n"
              "    except m.PackageNotFoundError: continue\n"
              "    print(name)\n")
    return run(python, "-c", script, *distributions).stdout.split()


def test_the_list_of_public_modules_is_the_source_tree() -> None:
    package = REPO / "src" / "tessera" / "verifier"
    found = {"tessera", "tessera.verifier"} | {
        info.name for info in pkgutil.walk_packages([str(package)], "tessera.verifier.")
        if not any(part.startswith("_") for part in info.name.split("."))}
    assert found == set(PUBLIC_MODULES)


def test_the_base_install_imports_every_public_module_and_no_database(base: Path) -> None:
    script = ("import importlib, sys\n"
              "for name in sys.argv[1:]:\n"
              "    module = importlib.import_module(name)\n"
              "print(importlib.import_module('tessera').__file__)\n")
    done = run(base, "-c", script, *PUBLIC_MODULES, cwd=base.parent)
    assert done.stdout.strip().startswith(str(base.parents[1])), done.stdout  # the wheel's
    assert installed(base, DATABASE_DISTRIBUTIONS) == []
    sqlalchemy = run(base, "-c", "import sqlalchemy", check=False)
    assert sqlalchemy.returncode != 0
    assert "No module named 'sqlalchemy'" in sqlalchemy.stderr


def test_the_verifier_install_runs_the_example_services_tests(
        verifier: Path, tmp_path: Path) -> None:
    assert installed(verifier, DATABASE_DISTRIBUTIONS) == []
    assert installed(verifier, ["redis", "fastapi", "httpx-sse"]) == \
        ["redis", "fastapi", "httpx-sse"]
    app = tmp_path / "app"
    (app / "examples").mkdir(parents=True)
    shutil.copy2(REPO / "examples" / "__init__.py", app / "examples" / "__init__.py")
    shutil.copytree(REPO / "examples" / "orders_service", app / "examples" / "orders_service",
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = run(verifier, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
               "examples/orders_service", cwd=app, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = re.search(r"(\d+) passed", done.stdout)
    assert summary and int(summary[1]) >= 4, done.stdout[-2000:]


def test_without_the_server_extra_the_cli_says_which_extra_in_one_line(base: Path) -> None:
    expected = "error: the tessera command needs the 'server' extra: " \
               "pip install 'tessera[server]'"
    for args in (["serve"], ["--help"], []):
        done = run(base.parent / "tessera", *args, check=False)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stderr.strip() == expected, (args, done.stderr)
        assert done.stdout == ""
    module = run(base, "-m", "tessera", "serve", check=False)
    assert (module.returncode, module.stderr.strip()) == (1, expected)


@pytest.mark.parametrize("package", sorted(SERVER_PACKAGES))
def test_without_the_server_extra_a_server_package_names_the_extra(
        base: Path, package: str) -> None:
    done = run(base, "-c", f"import {package}", check=False)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"tessera._extras.MissingExtra: {SERVER_PACKAGES[package]} needs the "
                    "'server' extra: pip install 'tessera[server]'"), done.stderr


def test_without_redis_the_servers_redis_bus_names_the_redis_extra(base: Path) -> None:
    done = run(base, "-c", "import tessera.bus.redis_streams", check=False)
    assert done.stderr.strip().splitlines()[-1] == (
        "tessera._extras.MissingExtra: the Redis event bus needs the 'redis' extra: "
        "pip install 'tessera[redis]'"), done.stderr


@pytest.mark.parametrize("use", sorted(REDIS_USES))
def test_without_redis_the_sdk_names_the_verifier_extra(base: Path, use: str) -> None:
    done = run(base, "-c", f"URL = 'redis://127.0.0.1:9/0'\n{use}", check=False)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"tessera._extras.MissingExtra: {REDIS_USES[use]} needs the "
                    "'verifier' extra: pip install 'tessera[verifier]'"), done.stderr


def test_the_dev_install_has_the_server_extra_too() -> None:
    from tessera._extras import missing

    assert missing("server") == ()
    assert missing("verifier") == ()
    assert missing("dev") == ()

