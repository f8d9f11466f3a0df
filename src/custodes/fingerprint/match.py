"""Matching: which parts of one scanned file come from which indexed files.

One scanned file is queried against the inverted index, never compared with every indexed file
(the approach of SCANOSS and SourcererCC; all-pairs tools run out of memory at scale):

1. **Drop boilerplate.** A fingerprint found in more than ``max_files`` files of a collection
   proves nothing there; the small document-frequency table names those first, so that their
   postings are never read.
2. **Rank candidates, rare evidence first.** Inside SQLite, each indexed file sharing at least
   ``min_matches`` of the scanned fingerprints is weighed by the rarity of what it shares (a
   fingerprint found in one indexed file counts fully, one found in ten a tenth); the postings
   of only the best ``max_candidates`` files are read.
3. **Align.** For a candidate, the (scanned position, indexed position) pairs of each layer are
   chained into regions that move forward in both files, allowing gaps of up to
   ``max_gap_lines`` lines on either side, so that lines inserted, deleted or changed (a Type-3
   clone) do not split a region. Regions of one alignment (the two layers, the pieces an edit
   split) are merged; code repeated further back in the indexed file is not.
4. **Score by containment**: of the scanned region's fingerprints (boilerplate excluded), the
   share found in the indexed region. Symmetric similarity would punish a small fragment copied
   into a large file, which is exactly the case that matters. A layer scores on its own, and a
   region takes the better one: the raw layer for verbatim copies, the token layer once
   identifiers are renamed.
5. **Report** regions of at least ``min_lines`` lines and ``min_tokens`` tokens sharing
   ``min_matches`` fingerprints at ``min_similarity`` (``weak_similarity`` when they share fewer
   than ``strong_matches``); where regions of one collection overlap on the scanned side, the
   one with the most evidence wins.

The defaults were tuned on real code by ``tests/fingerprint/test_recall.py``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from operator import itemgetter

from custodes.fingerprint.index import (
    LAYER_CODES,
    LAYERS_BY_CODE,
    Collection,
    Columns,
    Index,
    SourceFile,
    columns_of,
)
from custodes.fingerprint.winnow import K_TOKENS, FileFingerprints, Layer

__all__ = ["Match", "MatchOptions", "Matcher"]

# Plain tuples, because a scan handles millions of them:
# a scanned fingerprint: (hash, layer code, start line, end line, position);
_Print = tuple[int, int, int, int, int]
# an indexed one: (hash, layer code, position, start line, end line);
_Hit = tuple[int, int, int, int, int]
# a pair of the two: (scanned position, indexed position, scanned start, scanned end,
# indexed start, indexed end).
_Pair = tuple[int, int, int, int, int, int]

_RAW, _TOKENS = LAYER_CODES[Layer.RAW], LAYER_CODES[Layer.TOKENS]
_LOOKBACK = 48  # earlier pairs considered as a chain's predecessor
_OVERLAP = 3  # lines two consecutive k-grams' spans may share


@dataclass(frozen=True)
class MatchOptions:
    """What counts as a match (see the module's docstring for how each is used)."""

    min_lines: int = 6
    min_tokens: int = 50
    min_matches: int = 7  # distinct fingerprints a region shares with its source, both layers
    min_similarity: float = 0.4
    # Short idioms (a getter, a test's tear-down) chain into regions of 50 tokens that share
    # 40% of their fingerprints by chance; true Type-3 copies that share that little share
    # more fingerprints. So below ``strong_matches`` shared fingerprints a region needs
    # ``weak_similarity``.
    strong_matches: int = 8
    weak_similarity: float = 0.5
    max_gap_lines: int = 8
    max_files: int = 20  # in more files of a collection, a fingerprint is boilerplate there
    max_candidates: int = 32
    max_repeats: int = 64  # occurrences here times there, beyond which a hash is not aligned

    def __post_init__(self) -> None:
        for name in ("min_similarity", "weak_similarity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        names = ("min_lines", "min_matches", "strong_matches", "max_files", "max_candidates")
        for name in (*names, "max_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.min_tokens < 0 or self.max_gap_lines < 0:
            raise ValueError("min_tokens and max_gap_lines must not be negative")


@dataclass(frozen=True)
class Match:
    """A region of the scanned text found in a region of an indexed file.

    Lines are those of the scanned text (1-based); map them through
    :meth:`~custodes.subject.Subject.original_line` for a hunk.
    """

    collection: Collection
    source: SourceFile
    start_line: int
    end_line: int
    source_start: int
    source_end: int
    similarity: float  # containment, in [0, 1]
    layer: Layer  # the layer that scored best
    hashes: tuple[int, ...]  # the matched fingerprint hashes, distinct and sorted

    @property
    def lines(self) -> int:
        return self.end_line - self.start_line + 1


@dataclass
class _Region:
    s0: int
    s1: int
    t0: int
    t1: int

    def joins(self, other: _Region, gap: int) -> bool:
        """Whether ``other`` (starting no earlier in the scanned file) is the same alignment:
        overlapping on both sides along the same diagonal, or continuing this region on both
        sides after a gap of at most ``gap`` lines.

        Order matters: code repeated in the indexed file (runs of ``self.x = x``) also lies
        near a region, but behind it in the indexed file, and must not stretch it.
        """
        if other.s0 <= self.s1:
            same_diagonal = abs((other.t0 - other.s0) - (self.t0 - self.s0)) <= gap
            return same_diagonal and other.t0 <= self.t1 + gap and other.t1 >= self.t0 - gap
        return other.s0 - self.s1 <= gap and -_OVERLAP <= other.t0 - self.t1 <= gap

    def merge(self, other: _Region) -> None:
        self.s0, self.s1 = min(self.s0, other.s0), max(self.s1, other.s1)
        self.t0, self.t1 = min(self.t0, other.t0), max(self.t1, other.t1)


@dataclass(frozen=True)
class _Found:
    match: Match
    evidence: int  # distinct matched fingerprints


class _Layer:
    """The scanned file's fingerprints of one layer, by start line."""

    def __init__(self, prints: list[_Print]) -> None:
        self.prints = sorted(prints, key=itemgetter(2, 4))
        self.starts = [p[2] for p in self.prints]

    def starting(self, first: int, last: int) -> list[_Print]:
        """The fingerprints whose k-gram starts on lines ``first``..``last``."""
        return self.prints[bisect_left(self.starts, first) : bisect_right(self.starts, last)]

    def within(self, first: int, last: int) -> list[_Print]:
        """The fingerprints whose k-gram lies wholly on lines ``first``..``last``."""
        return [p for p in self.starting(first, last) if p[3] <= last]

    def tokens(self, first: int, last: int) -> int:
        """How many code tokens lines ``first``..``last`` hold (token layer only).

        A token fingerprint's position is the index of its k-gram's first token, so the
        k-grams starting in a region span ``last - first + K_TOKENS`` tokens (the last one may
        run on past the region by a few tokens; a first one starting late makes up for it).
        """
        inside = self.starting(first, last)
        if not inside:
            return 0
        positions = [p[4] for p in inside]
        return max(positions) - min(positions) + K_TOKENS


class Matcher:
    """Matches scanned files against an open :class:`Index`."""

    def __init__(self, index: Index, options: MatchOptions | None = None) -> None:
        self.index = index
        self.options = options or MatchOptions()

    def match(self, prints: FileFingerprints) -> list[Match]:
        """The regions of a scanned file (given as its fingerprints) found in the index."""
        return self.match_columns(columns_of(prints))

    def match_columns(self, columns: Columns) -> list[Match]:
        """:meth:`match`, for fingerprints packed as columns (as worker processes send them)."""
        c = columns
        prints: list[_Print] = list(
            zip(c.hashes, c.layers, c.start_lines, c.end_lines, c.positions, strict=True)
        )
        if not prints:
            return []
        opts = self.options
        by_hash: dict[int, list[_Print]] = defaultdict(list)
        for p in prints:
            by_hash[p[0]].append(p)
        collections = self.index.collections_by_id()
        common = self.index.common(by_hash.keys(), max_files=opts.max_files)
        common_in: dict[int, set[int]] = defaultdict(set)  # collection -> its boilerplate
        blocked: dict[int, int] = defaultdict(int)  # hash -> collections it is boilerplate in
        for hash_, coll in common:
            common_in[coll].add(hash_)
            blocked[hash_] += 1
        wanted = [h for h in by_hash if blocked.get(h, 0) < len(collections)]
        candidates = self.index.candidates(
            wanted,
            max_files=opts.max_files,
            min_shared=opts.min_matches,
            limit=opts.max_candidates,
        )
        if not candidates:
            return []
        files = [c[1] for c in candidates]
        hits: dict[int, list[_Hit]] = defaultdict(list)
        for hash_, _coll, file, layer, position, start, end in self.index.postings(
            wanted, files, max_files=opts.max_files
        ):
            hits[file].append((hash_, layer, position, start, end))
        sources = self.index.files(files)
        layers = {
            code: _Layer([p for p in prints if p[1] == code]) for code in LAYERS_BY_CODE
        }
        found: dict[int, list[_Found]] = defaultdict(list)
        for file in files:
            source = sources.get(file)
            if source is None:  # pragma: no cover - removed between the two reads
                continue
            collection = collections[source.collection]
            for item in self._align(
                by_hash, hits[file], collection, source, common_in[source.collection], layers
            ):
                found[source.collection].append(item)
        out: list[Match] = []
        for coll in sorted(found):
            out.extend(_best(found[coll]))
        out.sort(key=lambda m: (m.start_line, m.collection.name, m.source.path, m.source_start))
        return out

    def _align(
        self,
        by_hash: dict[int, list[_Print]],
        hits: list[_Hit],
        collection: Collection,
        source: SourceFile,
        neutral: set[int],
        layers: dict[int, _Layer],
    ) -> list[_Found]:
        opts = self.options
        # A hash repeated in both files (runs of ``self.x = x`` lines) pairs every occurrence
        # with every other: beyond ``max_repeats`` pairs it is left out of the alignment (it
        # still counts when a region is scored). Below that, chaining picks the pairs on one
        # diagonal.
        repeats: dict[int, int] = defaultdict(int)
        for hit in hits:
            repeats[hit[0]] += 1
        pairs: dict[int, list[_Pair]] = defaultdict(list)
        for hash_, layer, position, start, end in hits:
            mine = by_hash[hash_]
            if repeats[hash_] * len(mine) > opts.max_repeats:
                continue
            add = pairs[layer].append
            for p in mine:
                if p[1] == layer:
                    add((p[4], position, p[2], p[3], start, end))
        regions: list[_Region] = []
        for layer_pairs in pairs.values():
            regions.extend(_chain(layer_pairs, opts.max_gap_lines))
        regions = _merge(regions, opts.max_gap_lines)
        by_layer: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for hash_, layer, _position, start, end in hits:
            by_layer[layer].append((hash_, start, end))
        out: list[_Found] = []
        for region in regions:
            item = self._score(region, by_layer, collection, source, neutral, layers)
            if item is not None:
                out.append(item)
        return out

    def _score(
        self,
        region: _Region,
        hits: dict[int, list[tuple[int, int, int]]],
        collection: Collection,
        source: SourceFile,
        neutral: set[int],
        layers: dict[int, _Layer],
    ) -> _Found | None:
        opts = self.options
        lines = region.s1 - region.s0 + 1
        if lines < opts.min_lines:
            return None
        # A copy keeps its length, give or take the lines a Type-3 edit adds or drops; a
        # chain that drifts step by step until one side is twice the other is no copy.
        there = region.t1 - region.t0 + 1
        if there > 2 * lines + opts.max_gap_lines or lines > 2 * there + opts.max_gap_lines:
            return None
        best: tuple[float, int, int] | None = None  # similarity, matched, layer
        matched_all: set[int] = set()
        for code, layer in layers.items():
            inside = [p[0] for p in layer.within(region.s0, region.s1) if p[0] not in neutral]
            if not inside:
                continue
            present = {
                h for h, start, end in hits.get(code, ()) if start >= region.t0 and end <= region.t1
            }
            matched = [h for h in inside if h in present]
            matched_all.update(matched)
            similarity = len(matched) / len(inside)
            if best is None or (similarity, len(matched)) > (best[0], best[1]):
                best = (similarity, len(matched), code)
        evidence = len(matched_all)
        if best is None or evidence < opts.min_matches:
            return None
        needed = opts.min_similarity if evidence >= opts.strong_matches else opts.weak_similarity
        if best[0] < needed or layers[_TOKENS].tokens(region.s0, region.s1) < opts.min_tokens:
            return None
        match = Match(
            collection,
            source,
            region.s0,
            region.s1,
            region.t0,
            region.t1,
            best[0],
            LAYERS_BY_CODE[best[2]],
            tuple(sorted(matched_all)),
        )
        return _Found(match, evidence)


def _chain(pairs: list[_Pair], gap: int) -> list[_Region]:
    """Chain pairs into regions moving forward in both files, with gaps of at most ``gap`` lines.

    A longest-chain dynamic programme over pairs sorted by scanned position, each looking back
    at a bounded number of predecessors (ties go to the predecessor on the closest diagonal,
    which keeps a chain on one alignment when code repeats); chains are then taken best first,
    each pair in one chain only.
    """
    if len(pairs) < 2:
        return []
    pairs.sort()
    n = len(pairs)
    score = [1] * n
    prev = [-1] * n
    for i in range(n):
        s_i, t_i, ss_i, _, ts_i, _ = pairs[i]
        best, best_j, best_d = 1, -1, 0
        for j in range(i - 1, max(-1, i - _LOOKBACK - 1), -1):
            s_j, t_j, _, se_j, _, te_j = pairs[j]
            if ss_i - se_j > gap:
                break  # sorted by scanned position: earlier pairs are further away still
            if s_j >= s_i or t_j >= t_i or ts_i - te_j > gap:
                continue
            cand = score[j] + 1
            d = abs((t_i - s_i) - (t_j - s_j))
            if cand > best or (cand == best and best_j >= 0 and d < best_d):
                best, best_j, best_d = cand, j, d
        score[i] = best
        prev[i] = best_j
    used = [False] * n
    regions: list[_Region] = []
    for i in sorted(range(n), key=score.__getitem__, reverse=True):
        if used[i] or score[i] < 2:
            continue
        members: list[_Pair] = []
        k = i
        while k != -1 and not used[k]:
            used[k] = True
            members.append(pairs[k])
            k = prev[k]
        if len(members) >= 2:
            regions.append(
                _Region(
                    min(p[2] for p in members),
                    max(p[3] for p in members),
                    min(p[4] for p in members),
                    max(p[5] for p in members),
                )
            )
    return regions


def _merge(regions: list[_Region], gap: int) -> list[_Region]:
    """Merge the regions of one alignment: chains of both layers, and chains a Type-3 edit
    split, until no two join.

    A sweep in scanned order, comparing each region only with the merged ones that still reach
    it; repeated while a merge made a region reach one it had passed.
    """
    pending = sorted(regions, key=lambda r: (r.s0, r.t0))
    while True:
        merged: list[_Region] = []
        reaching: list[_Region] = []
        changed = False
        for region in pending:
            reaching = [m for m in reaching if m.s1 + gap >= region.s0]
            for kept in reaching:
                if kept.joins(region, gap):
                    kept.merge(region)
                    changed = True
                    break
            else:
                merged.append(region)
                reaching.append(region)
        if not changed:
            return merged
        pending = sorted(merged, key=lambda r: (r.s0, r.t0))


def _best(found: list[_Found]) -> list[Match]:
    """Of regions overlapping on the scanned side, keep the one with the most evidence."""
    kept: list[Match] = []
    ordered = sorted(
        found,
        key=lambda f: (-f.evidence, -f.match.similarity, f.match.start_line, f.match.source.path),
    )
    for item in ordered:
        m = item.match
        overlap = sum(
            max(0, min(m.end_line, k.end_line) - max(m.start_line, k.start_line) + 1) for k in kept
        )
        if overlap * 2 < m.lines:
            kept.append(m)
    return kept
