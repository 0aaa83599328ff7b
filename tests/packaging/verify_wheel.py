"""
Install a built edgeproxy wheel into a fresh virtualenv and check what a user sees.

Run by the ``packaging`` tox environment:
``python verify_wheel.py DIST_DIR PROJECT_DIR``.
Exits non-zero, saying why, when the installed package does not work.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path


def fail(message: str) -> None:
    """Stop with ``message``."""
    sys.stderr.write(f"verify_wheel: FAILED: {message}\n")
    raise SystemExit(1)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command``, capturing its output as text."""
    return subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=300
    )


def check_contents(wheel: Path) -> None:
    """The wheel ships the twistd plugins without a twisted/plugins/__init__.py."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "twisted/plugins/edgeproxy_plugin.py",
        "twisted/plugins/edgeproxy_builtins.py",
        "edgeproxy/py.typed",
    ):
        if required not in names:
            fail(f"{wheel.name} lacks {required}")
    for forbidden in ("twisted/__init__.py", "twisted/plugins/__init__.py"):
        if forbidden in names:
            fail(f"{wheel.name} ships {forbidden}, which would shadow Twisted")


def check_editable(project: str, scratch: Path) -> None:
    """``pip install -e`` works too: twistd finds the plugins in the checkout."""
    env = scratch / "editable"
    venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")
    installed = run(python, "-m", "pip", "install", "-q", "-e", project)
    if installed.returncode:
        fail(f"pip install -e failed:\n{installed.stderr}")
    listing = run(str(env / "bin" / "twistd"), "edgeproxy", "--list-plugins")
    if listing.returncode or "round_robin" not in listing.stdout:
        fail(
            "an editable install does not list the built-ins:\n"
            f"{listing.stdout}{listing.stderr}"
        )


def main(dist: str, project: str) -> None:
    """Check the one wheel in ``dist``, and an editable install of ``project``."""
    [wheel] = Path(dist).glob("edgeproxy-*.whl")
    check_contents(wheel)
    with tempfile.TemporaryDirectory() as scratch:
        env = Path(scratch) / "venv"
        venv.create(env, with_pip=True)
        python = str(env / "bin" / "python")
        twistd = str(env / "bin" / "twistd")
        installed = run(python, "-m", "pip", "install", "-q", str(wheel))
        if installed.returncode:
            fail(f"pip install failed:\n{installed.stderr}")
        usage = run(twistd, "--help")
        if "edgeproxy" not in usage.stdout:
            fail("twistd --help does not list edgeproxy")
        listing = run(twistd, "edgeproxy", "--list-plugins")
        if listing.returncode or "headers" not in listing.stdout:
            fail(
                "--list-plugins did not list the built-ins:\n"
                f"{listing.stdout}{listing.stderr}"
            )
        again = run(twistd, "edgeproxy", "--list-plugins")
        noise = again.stdout + again.stderr
        if "Unable to write to plugin cache" in noise or "Traceback" in noise:
            fail(f"a second run is noisy:\n{noise}")
        check_editable(project, Path(scratch))
    sys.stdout.write(f"verify_wheel: {wheel.name} installs and runs\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
