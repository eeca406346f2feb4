"""Exits 0 when every requirement of a pip requirements file (and of the extras it names) is
installed at a version it allows, else 1: the scripts then run pip once, and not at every start."""

import sys
from importlib.metadata import PackageNotFoundError, requires, version

from pip._vendor.packaging.requirements import Requirement


def met(requirement: Requirement, seen: set[str]) -> bool:
    if requirement.name.lower() in seen:
        return True
    seen.add(requirement.name.lower())
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        return False
    if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
        return False
    # What the named extras pull in (moto[server] needs flask and the rest to serve).
    for extra in requirement.extras:
        for line in requires(requirement.name) or []:
            needed = Requirement(line)
            if needed.marker and needed.marker.evaluate({"extra": extra}) and not met(needed, seen):
                return False
    return True


lines = (line.split("#")[0].strip() for line in open(sys.argv[1]))
seen: set[str] = set()
sys.exit(0 if all(met(Requirement(line), seen) for line in lines if line) else 1)
