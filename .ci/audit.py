"""Known vulnerabilities in the installed dependencies (pip-audit), for .ci/run.

Fails when an installed package has a known vulnerability with a fixed version to move
to. pip-audit asks a vulnerability service (PyPI's JSON API, else OSV); where neither
answers (a box that reaches only a package index), a probe with a package known to be
vulnerable finds nothing, and this says so and passes rather than report a clean bill it
could not check.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

AUDIT = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"]
KNOWN_BAD = "requests==2.19.0"  # CVE-2018-18074, fixed in 2.20.0


def run(args: list[str]) -> dict[str, object]:
    done = subprocess.run(AUDIT + args, capture_output=True, text=True, timeout=600)
    try:
        return dict(json.loads(done.stdout or "{}"))
    except json.JSONDecodeError:
        return {}


def vulns(report: dict[str, object]) -> list[tuple[str, str, str, list[str]]]:
    found = []
    for dep in report.get("dependencies", []) or []:  # type: ignore[union-attr]
        for v in dep.get("vulns", []):
            found.append((dep["name"], dep.get("version", "?"), v["id"], v.get("fix_versions", [])))
    return found


def reachable_service() -> str | None:
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.txt"
        probe.write_text(KNOWN_BAD + "\n")
        for service in ("pypi", "osv"):
            args = [
                "-r",
                str(probe),
                "--no-deps",
                "--disable-pip",
                "-s",
                service,
                "--timeout",
                "20",
            ]
            if vulns(run(args)):
                return service
    return None


def main() -> int:
    service = reachable_service()
    if service is None:
        print(
            "audit: no vulnerability service answers from here (PyPI's JSON API and OSV "
            f"found nothing for {KNOWN_BAD}, which is known vulnerable): not audited"
        )
        return 0
    found = vulns(run(["--skip-editable", "-s", service, "--timeout", "20"]))
    fixable = [f for f in found if f[3]]
    for name, version, ident, fixes in found:
        fix = ", ".join(fixes) if fixes else "no fix yet"
        print(f"audit: {name} {version}: {ident} (fixed in: {fix})")
    if fixable:
        print(f"audit: {len(fixable)} known vulnerabilities with a fix available")
        return 1
    print(f"audit ({service}): no known vulnerability with a fix available")
    return 0


if __name__ == "__main__":
    sys.exit(main())
