"""The release-artifact rule on real archives built here: npm tarballs, a zip, source maps."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import zipfile
from pathlib import Path

from policytools import rule

from custodes.detectors.rules import PolicyDetector
from custodes.engine import Decision, Gate, run
from custodes.findings import Severity
from custodes.sources import walk

LEAK = rule("enterprise.artifact-source-leak")

AGENT_TS = (
    "import { readFile } from 'node:fs/promises';\n\n"
    "export async function plan(task: string): Promise<string[]> {\n"
    "  const notes = await readFile('notes.md', 'utf8');\n"
    "  return notes.split('\\n').filter((line) => line.includes(task));\n}\n"
)
MAIN_TS = "import { plan } from './tools/agent';\n\nplan(process.argv[2]).then(console.log);\n"
BUNDLE = 'import{readFile as e}from"node:fs/promises";async function t(n){return(await e("notes.md","utf8")).split("\\n").filter(r=>r.includes(n))}t(process.argv[2]).then(console.log);'


def _source_map(*, with_sources: bool) -> bytes:
    document: dict[str, object] = {
        "version": 3,
        "file": "cli.js",
        "sources": ["../src/main.ts", "../src/tools/agent.ts"],
        "names": [],
        "mappings": "AAAA",
    }
    if with_sources:
        document["sourcesContent"] = [MAIN_TS, AGENT_TS]
    return json.dumps(document).encode()


def _npm_tarball(path: Path, members: dict[str, bytes]) -> Path:
    """An npm-style tarball: everything under package/, gzip-compressed, as `npm pack` makes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in {"package.json": b'{"name": "acme-cli", "version": "2.1.88"}', **members}.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


def _scan(root: Path) -> Decision:
    return run(walk(root), [PolicyDetector(LEAK)], Gate())


def test_a_tarball_whose_source_map_carries_sources_content_fires_once(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    _npm_tarball(
        release / "acme-cli-2.1.88.tgz",
        {
            "dist/cli.js": (BUNDLE + "\n//# sourceMappingURL=cli.js.map\n").encode(),
            "dist/cli.js.map": _source_map(with_sources=True),
        },
    )
    decision = _scan(release)
    (finding,) = decision.findings
    assert finding.kind == "policy"
    assert finding.rule == "enterprise.artifact-source-leak"
    assert finding.path == "acme-cli-2.1.88.tgz!package/dist/cli.js.map"
    assert finding.severity is Severity.CRITICAL
    assert finding.controls == ("eu-ai-act:art15", "nist-ai-rmf:MEASURE-2.7")
    assert not decision.passed
    # The sources were read (and scanned), but no finding quotes them.
    assert "readFile" not in repr(decision.findings)


def test_the_same_tarball_without_sources_content_does_not_fire(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    _npm_tarball(
        release / "acme-cli-2.1.89.tgz",
        {
            "dist/cli.js": (BUNDLE + "\n//# sourceMappingURL=cli.js.map\n").encode(),
            "dist/cli.js.map": _source_map(with_sources=False),
        },
    )
    decision = _scan(release)
    assert decision.findings == ()
    assert decision.passed


def test_an_inline_source_map_in_a_bundle_fires_on_the_bundle(tmp_path: Path) -> None:
    payload = base64.b64encode(_source_map(with_sources=True)).decode()
    bundle = f"{BUNDLE}\n//# sourceMappingURL=data:application/json;base64,{payload}\n"
    _npm_tarball(tmp_path / "pkg.tgz", {"dist/cli.js": bundle.encode()})
    (finding,) = _scan(tmp_path).findings
    assert finding.path == "pkg.tgz!package/dist/cli.js"


def test_unminified_proprietary_sources_fire_and_minified_or_other_paths_do_not(
    tmp_path: Path,
) -> None:
    _npm_tarball(
        tmp_path / "pkg.tgz",
        {
            "src/tools/agent.ts": AGENT_TS.encode(),
            "dist/cli.min.js": BUNDLE.encode(),
            "dist/cli.js": (BUNDLE * 4).encode(),  # one long line: minified
            "lib/helpers.js": b"export const twice = (x) => x * 2;\n",
            "README.md": b"# acme-cli\n",
        },
    )
    findings = _scan(tmp_path).findings
    assert [(f.path, f.start_line, f.end_line) for f in findings] == [
        ("pkg.tgz!package/src/tools/agent.ts", 1, 6)
    ]


def test_a_zip_of_proprietary_sources_fires(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as archive:
        archive.writestr("src/agent.ts", AGENT_TS)
        archive.writestr("docs/guide.md", "# guide\n")
    findings = _scan(tmp_path).findings
    assert [f.path for f in findings] == ["bundle.zip!src/agent.ts"]


def test_a_source_map_in_a_working_tree_is_not_a_release(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "cli.js.map").write_bytes(_source_map(with_sources=True))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "agent.ts").write_text(AGENT_TS)
    assert _scan(tmp_path).findings == ()
