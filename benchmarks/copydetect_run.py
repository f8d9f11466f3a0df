"""copydetect (default options) on one provenance-benchmark corpus.

usage: python copydetect_run.py CORPUS OUT.json

Runs in the benchmark's peers venv, where copydetect is installed. ``CopyDetector`` gets the
corpus's ``scanned/`` folder as test directory and ``indexed/`` as reference directory and its
defaults otherwise; no HTML report is written. OUT gets every test/reference pair with copied
code: both similarities and the copied slices as 1-based inclusive line ranges. copydetect
shows a pair when the test file's similarity is above ``display_t`` (0.33 by default); OUT
records that threshold so the benchmark can score the pairs shown and, apart, all pairs.
"""

from __future__ import annotations

import bisect
import json
import sys
from pathlib import Path
from typing import Any


def line_ranges(code: str, starts: Any, ends: Any) -> list[tuple[int, int]]:
    """1-based inclusive line ranges of character slices ``[start, end)`` of ``code``."""
    newlines = [i for i, ch in enumerate(code) if ch == "\n"]
    ranges = []
    for start, end in zip(starts, ends, strict=True):
        first = bisect.bisect_right(newlines, int(start) - 1) + 1
        last = bisect.bisect_right(newlines, max(int(start), int(end) - 1) - 1) + 1
        ranges.append((first, last))
    return ranges


def main() -> int:
    from copydetect import CopyDetector

    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    detector = CopyDetector(
        test_dirs=[str(corpus / "scanned")],
        ref_dirs=[str(corpus / "indexed")],
        autoopen=False,
        silent=True,
    )
    detector.run()
    pairs = []
    for i, test in enumerate(detector.test_files):
        for j, ref in enumerate(detector.ref_files):
            slices = detector.slice_matrix.get((test, ref))
            if slices is None or len(slices[0]) == 0 or len(slices[0][0]) == 0:
                continue
            test_sim, ref_sim = detector.similarity_matrix[i, j]
            test_code = detector.file_data[test].raw_code
            ref_code = detector.file_data[ref].raw_code
            pairs.append(
                {
                    "scanned": Path(test).relative_to(corpus).as_posix(),
                    "indexed": Path(ref).relative_to(corpus).as_posix(),
                    "similarity": float(test_sim),
                    "ref_similarity": float(ref_sim),
                    "scanned_lines": line_ranges(test_code, *slices[0]),
                    "indexed_lines": line_ranges(ref_code, *slices[1]),
                }
            )
    result = {
        "files": len(detector.file_data),
        "display_t": detector.conf.display_t,
        "pairs": pairs,
    }
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
