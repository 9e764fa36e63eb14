"""The pins in constraints.txt cover every dependency the README commands install, inside pyproject's ranges.

A new release of a dependency cannot reach a fresh machine through the README commands (both install with
``-c constraints.txt``); this test catches the other direction of drift: a range widened or a dependency added in
pyproject.toml without a verified pin, or a pin that the range no longer admits.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"constraints.txt: {line!r} is not NAME==VERSION"
        pins[canonicalize_name(m[1])] = m[2]
    return pins


def _requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def test_every_installed_dependency_is_pinned_inside_its_range() -> None:
    pins = _pins()
    problems = []
    for req in _requirements(("ui", "test")):
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name} has no pin in constraints.txt")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} is outside pyproject's {req.specifier}")
    assert not problems, "; ".join(problems)


def test_the_llama_cpp_pin_is_the_version_verified_on_this_cpu() -> None:
    # 0.3.36 segfaults in decode on its first request on AVX-512/AMX CPUs (issue 28); 0.3.16 serves both models.
    assert _pins()["llama-cpp-python"] == "0.3.16"


def test_both_readme_commands_install_with_the_constraints() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "pip install -c constraints.txt -e ." in readme
    run_all = (REPO / "tests" / "run-all.sh").read_text(encoding="utf-8")
    assert "-c constraints.txt" in run_all and "PIP_CONSTRAINT=" in run_all
