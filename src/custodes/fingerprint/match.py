"""Matching: which parts of scanned files come from which indexed files.

Scanned files are queried against the inverted index, never compared with every indexed file
(the approach of SCANOSS and SourcererCC; all-pairs tools run out of memory at scale):

1. **Drop boilerplate.** A fingerprint found in more than ``max_files`` files of a collection
   proves nothing there; the document-frequency table names those once, so that their postings
   are never read.
2. **Look up a batch at once.** The distinct fingerprints of a batch of scanned files are
   joined with the index inside SQLite: one query for the batch, one B-tree seek per
   fingerprint, and only fingerprints the index holds come back.
3. **Rank candidates, rare evidence first.** Each indexed file sharing at least
   ``min_matches`` fingerprints with a scanned file is weighed by the rarity of what it shares
   (a fingerprint found in one indexed file counts fully, one found in ten a tenth); only the
   best ``max_candidates`` files are aligned.
4. **Align.** For a candidate, the (scanned position, indexed position) pairs of each layer are
   chained into regions that move forward in both files, allowing gaps of up to
   ``max_gap_lines`` lines on either side, so that lines inserted, deleted or changed (a Type-3
   clone) do not split a region. Regions of one alignment (the two layers, the pieces an edit
   split) are merged; code repeated further back in the indexed file is not.
5. **Score by containment**: of the scanned region's fingerprints (boilerplate excluded), the
   share found in the indexed region. Symmetric similarity would punish a small fragment copied
   into a large file, which is exactly the case that matters. A layer scores on its own, and a
   region takes the better one: the raw layer for verbatim copies, the token layer once
   identifiers are renamed.
6. **Report** regions of at least ``min_lines`` lines and ``min_tokens`` tokens sharing
   ``min_matches`` fingerprints at ``min_similarity`` (``weak_similarity`` when they share fewer
   than ``strong_matches``). *Plain* code — few distinct symbols, or one short pattern repeated
   (runs of exception classes, keyword-default parameter lists) — looks alike once names are
   abstracted without being copied. A plain region that the raw layer does not support needs
   ``plain_weight`` of rare evidence: each shared fingerprint counts one over the number of the
   collection's files holding it, so the idioms every such run shares count for little (in a
   collection of a few files, where every fingerprint looks rare, that is ``plain_weight``
   fingerprints). Where regions of one collection overlap on the scanned side, the one with
   the most evidence wins.

The defaults were tuned on real code by ``tests/fingerprint/test_recall.py`` and the
provenance benchmark (``benchmarks/provenance_bench.py``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from custodes.fingerprint.index import Collection, Found, Index, SourceFile
from custodes.fingerprint.winnow import (
    K_TOKENS,
    LAYER_CODES,
    LAYERS_BY_CODE,
    FileFingerprints,
    Layer,
    Winnowed,
)

try:  # the C accelerator of chaining (src/custodes/fingerprint/_match.c): the same regions
    from custodes.fingerprint import _match as _c
except ImportError:  # pragma: no cover - built wherever a C compiler is found
    _c = None  # type: ignore[assignment]

__all__ = ["Match", "MatchOptions", "Matcher"]

# Plain tuples, because a scan handles millions of them:
# a scanned fingerprint: (hash, layer code, start line, end line, position);
_Print = tuple[int, int, int, int, int]
# an indexed one: (hash, layer code, position, start line, end line);
_Hit = tuple[int, int, int, int, int]
# a pair of the two: (scanned position, indexed position, scanned start, scanned end,
# indexed start, indexed end).
_Pair = tuple[int, int, int, int, int, int]

_RAW: Final = LAYER_CODES[Layer.RAW]
_TOKENS: Final = LAYER_CODES[Layer.TOKENS]
_LOOKBACK = 48  # earlier pairs considered as a chain's predecessor
_OVERLAP = 3  # lines two consecutive k-grams' spans may share
_GRAM = 6  # symbols per n-gram when judging whether a region repeats one pattern


@dataclass(frozen=True)
class MatchOptions:
    """What counts as a match (see the module's docstring for how each is used)."""

    min_lines: int = 6
    # The tokens on the region's lines (or those its k-grams span, if more). Winnowing can
    # leave the first and last few tokens of a copy outside every fingerprint, so a 50-token
    # copy (the size clone benchmarks start at) can show as 45.
    min_tokens: int = 45
    min_matches: int = 7  # distinct fingerprints a region shares with its source, both layers
    min_similarity: float = 0.4
    # Short idioms (a getter, a test's tear-down) chain into regions of 50 tokens that share
    # 40% of their fingerprints by chance; true Type-3 copies that share that little share
    # more fingerprints. So below ``strong_matches`` shared fingerprints a region needs
    # ``weak_similarity``.
    strong_matches: int = 8
    weak_similarity: float = 0.5
    # Plain code: fewer distinct symbols than ``plain_symbols``, or fewer distinct runs of six
    # symbols than ``plain_variety`` times their number. Without support from the raw layer it
    # needs ``plain_weight`` of rare evidence (see the module's docstring). Measured on the
    # provenance benchmark's corpus: look-alikes had 1-7, true copies mostly 6-30.
    plain_symbols: int = 13
    plain_variety: float = 0.5
    plain_weight: float = 7.5
    max_gap_lines: int = 8
    max_files: int = 20  # in more files of a collection, a fingerprint is boilerplate there
    max_candidates: int = 32
    max_repeats: int = 64  # occurrences here times there, beyond which a hash is not aligned

    def __post_init__(self) -> None:
        for name in ("min_similarity", "weak_similarity", "plain_variety"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        names = ("min_lines", "min_matches", "strong_matches", "max_files", "max_candidates")
        for name in (*names, "max_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if min(self.min_tokens, self.max_gap_lines, self.plain_symbols, self.plain_weight) < 0:
            raise ValueError(
                "min_tokens, max_gap_lines, plain_symbols and plain_weight must not be negative"
            )


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
    """Fingerprints of one layer of one file, by start line: (hash, start, end, position)."""

    __slots__ = ("ends", "hashes", "positions", "starts")

    def __init__(
        self,
        hashes: Sequence[int],
        starts: Sequence[int],
        ends: Sequence[int],
        positions: Sequence[int],
    ) -> None:
        starts = list(starts)
        if starts != sorted(starts):  # a winnowed layer is in line order already
            order = sorted(range(len(starts)), key=starts.__getitem__)
            hashes = [hashes[i] for i in order]
            ends = [ends[i] for i in order]
            positions = [positions[i] for i in order]
            starts = [starts[i] for i in order]
        self.hashes = list(hashes)
        self.starts = starts
        self.ends = list(ends)
        self.positions = list(positions)

    def starting(self, first: int, last: int) -> tuple[int, int]:
        """The index range of the fingerprints whose k-gram starts on lines ``first``..``last``."""
        return bisect_left(self.starts, first), bisect_right(self.starts, last)

    def within(self, first: int, last: int) -> list[int]:
        """The hashes of the fingerprints lying wholly on lines ``first``..``last``."""
        i, j = self.starting(first, last)
        return [h for h, end in zip(self.hashes[i:j], self.ends[i:j], strict=True) if end <= last]

    def spanned(self, first: int, last: int) -> int:
        """How many tokens the k-grams starting on lines ``first``..``last`` span (token layer).

        A token fingerprint's position is the index of its k-gram's first token, so the
        k-grams starting in a region span ``last - first + K_TOKENS`` tokens.
        """
        i, j = self.starting(first, last)
        if i == j:
            return 0
        inside = self.positions[i:j]
        return max(inside) - min(inside) + K_TOKENS


_EMPTY: Final = _Layer((), (), (), ())


def _layers(winnowed: Winnowed) -> dict[int, _Layer]:
    """A scanned text's fingerprints, by layer."""
    c = winnowed.columns
    codes = c.layers.tobytes()
    out: dict[int, _Layer] = {}
    for code in LAYERS_BY_CODE:
        first = codes.find(bytes([code]))
        if first < 0:
            continue
        end = first + len(codes[first:]) - len(codes[first:].lstrip(bytes([code])))
        if codes.find(bytes([code]), end) < 0:  # one run: slice the columns (the usual case)
            out[code] = _Layer(
                c.hashes[first:end],
                c.start_lines[first:end],
                c.end_lines[first:end],
                c.positions[first:end],
            )
            continue
        pick = [i for i, layer in enumerate(codes) if layer == code]
        out[code] = _Layer(
            [c.hashes[i] for i in pick],
            [c.start_lines[i] for i in pick],
            [c.end_lines[i] for i in pick],
            [c.positions[i] for i in pick],
        )
    return out


@dataclass
class _Candidate:
    """An indexed file that shares fingerprints with the scanned one."""

    collection: Collection
    source: SourceFile
    neutral: frozenset[int]  # boilerplate of its collection
    rarity: dict[int, float]  # shared hash -> one over the files of the collection holding it
    layers: dict[int, _Layer] = field(default_factory=dict)  # what it shares, by layer


class _Scanned:
    """One scanned text during matching: its fingerprints by layer (built when first needed)
    and the facts about its tokens that scoring uses."""

    def __init__(self, winnowed: Winnowed) -> None:
        self.winnowed = winnowed
        self._layers: dict[int, _Layer] | None = None

    @property
    def layers(self) -> dict[int, _Layer]:
        if self._layers is None:
            self._layers = _layers(self.winnowed)
        return self._layers

    def tokens(self, first: int, last: int) -> int:
        """The tokens of lines ``first``..``last``: those on the lines when known, and at
        least those the k-grams starting there span."""
        spanned = self.layers.get(_TOKENS, _EMPTY).spanned(first, last)
        lines = self.winnowed.token_lines
        if not lines:
            return spanned
        return max(spanned, bisect_right(lines, last) - bisect_left(lines, first))

    def plain(self, first: int, last: int, options: MatchOptions) -> bool:
        """Whether lines ``first``..``last`` are plain code: few distinct symbols, or one
        short pattern repeated. Unknown symbols (fingerprints read back) are never plain."""
        w = self.winnowed
        if not w.token_symbols:
            return False
        part = w.token_symbols[bisect_left(w.token_lines, first) : bisect_right(w.token_lines, last)]
        if len(set(part)) < options.plain_symbols:
            return True
        grams = len(part) - _GRAM + 1
        if grams <= 0:
            return False
        distinct = len(set(zip(*(part[k:] for k in range(_GRAM)), strict=False)))
        return distinct < options.plain_variety * grams


class Matcher:
    """Matches scanned files against an open :class:`Index`."""

    def __init__(self, index: Index, options: MatchOptions | None = None) -> None:
        self.index = index
        self.options = options or MatchOptions()

    def match(self, prints: FileFingerprints | Winnowed) -> list[Match]:
        """The regions of a scanned file (given as its fingerprints) found in the index."""
        return self.match_many([prints])[0]

    def match_many(self, texts: Sequence[FileFingerprints | Winnowed]) -> list[list[Match]]:
        """:meth:`match` for each of a batch of scanned files, with one lookup for the batch."""
        batch = [t if isinstance(t, Winnowed) else Winnowed.of(t) for t in texts]
        wanted: set[int] = set()
        for w in batch:
            wanted.update(w.columns.hashes)
        if not wanted:
            return [[] for _ in batch]
        postings = self.index.postings_for(wanted, max_files=self.options.max_files)
        if not postings:
            return [[] for _ in batch]
        return [self._match(w, postings) for w in batch]

    def _match(self, winnowed: Winnowed, postings: dict[int, list[Found]]) -> list[Match]:
        opts = self.options
        hashes = winnowed.columns.hashes
        found = postings.keys() & set(hashes)
        if len(found) < opts.min_matches:
            return []
        # Rank the indexed files by the rarity of what they share.
        shared: dict[int, int] = defaultdict(int)
        weight: dict[int, float] = defaultdict(float)
        for h in found:
            rows = postings[h]
            if len(rows) == 1:  # the usual case: a fingerprint of one indexed file, once
                row = rows[0]
                shared[row[2]] += 1
                weight[row[2]] += 1.0 / row[7]
                continue
            for file, files in {row[2]: row[7] for row in rows}.items():
                shared[file] += 1
                weight[file] += 1.0 / files
        ranked = sorted(
            (file for file, count in shared.items() if count >= opts.min_matches),
            key=lambda file: (-weight[file], file),
        )[: opts.max_candidates]
        if not ranked:
            return []
        # What the candidates share, and how rare it is: only for them, since most files that
        # share a fingerprint or two are never aligned (same order as ``found``, so that the
        # alignment sees the same lists whichever files were ranked).
        chosen = set(ranked)
        hits: dict[int, list[_Hit]] = defaultdict(list)
        rarity: dict[int, dict[int, float]] = defaultdict(dict)  # collection -> hash -> 1 / files
        for h in found:
            for row in postings[h]:
                if row[2] in chosen:
                    _h, coll, file, layer, position, start, end, files = row
                    hits[file].append((h, layer, position, start, end))
                    rarity[coll][h] = 1.0 / files
        # The scanned fingerprints that the index holds, by hash.
        c = winnowed.columns
        mine: dict[int, list[_Print]] = defaultdict(list)
        for i, h in enumerate(hashes):
            if h in found:
                mine[h].append((h, c.layers[i], c.start_lines[i], c.end_lines[i], c.positions[i]))
        scanned = _Scanned(winnowed)
        collections = self.index.collections_by_id()
        sources = self.index.files(ranked)
        common = self.index.boilerplate(opts.max_files)
        found_in: dict[int, list[_Found]] = defaultdict(list)
        for file in ranked:
            source = sources.get(file)
            if source is None:  # pragma: no cover - removed between the two reads
                continue
            candidate = _Candidate(
                collections[source.collection],
                source,
                common.get(source.collection, frozenset()),
                rarity[source.collection],
            )
            found_in[source.collection].extend(self._align(mine, hits[file], candidate, scanned))
        out: list[Match] = []
        for coll in sorted(found_in):
            out.extend(_best(found_in[coll]))
        out.sort(key=lambda m: (m.start_line, m.collection.name, m.source.path, m.source_start))
        return out

    def _align(
        self,
        mine: dict[int, list[_Print]],
        hits: list[_Hit],
        candidate: _Candidate,
        scanned: _Scanned,
    ) -> list[_Found]:
        opts = self.options
        # Most candidates share a few fingerprints by chance, scattered over both files:
        # unless enough of them lie close together on both sides, no region can hold them.
        theirs_spans = [(start, end, h) for h, _layer, _position, start, end in hits]
        if not _clustered(theirs_spans, opts.max_gap_lines, opts.min_matches):
            return []
        here_spans = [(p[2], p[3], h) for h in {hit[0] for hit in hits} for p in mine[h]]
        if not _clustered(here_spans, opts.max_gap_lines, opts.min_matches):
            return []
        # A hash repeated in both files (runs of ``self.x = x`` lines) pairs every occurrence
        # with every other: beyond ``max_repeats`` pairs it is left out of the alignment (it
        # still counts when a region is scored). Below that, chaining picks the pairs on one
        # diagonal.
        repeats: dict[int, int] = defaultdict(int)
        for hit in hits:
            repeats[hit[0]] += 1
        pairs: dict[int, list[_Pair]] = defaultdict(list)
        for hash_, layer, position, start, end in hits:
            here = mine[hash_]
            if repeats[hash_] * len(here) > opts.max_repeats:
                continue
            add = pairs[layer].append
            for p in here:
                if p[1] == layer:
                    add((p[4], position, p[2], p[3], start, end))
        regions: list[_Region] = []
        for layer_pairs in pairs.values():
            regions.extend(_chain(layer_pairs, opts.max_gap_lines))
        if not regions:
            return []
        regions = _merge(regions, opts.max_gap_lines)
        by_layer: dict[int, list[_Hit]] = defaultdict(list)
        for hit in hits:
            by_layer[hit[1]].append(hit)
        candidate.layers = {
            code: _Layer(
                [h[0] for h in layer_hits],
                [h[3] for h in layer_hits],
                [h[4] for h in layer_hits],
                [h[2] for h in layer_hits],
            )
            for code, layer_hits in by_layer.items()
        }
        out: list[_Found] = []
        for region in regions:
            item = self._score(region, candidate, scanned)
            if item is not None:
                out.append(item)
        return out

    def _score(self, region: _Region, candidate: _Candidate, scanned: _Scanned) -> _Found | None:
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
        raw_support = 0
        neutral = candidate.neutral
        for code, layer in scanned.layers.items():
            inside = [h for h in layer.within(region.s0, region.s1) if h not in neutral]
            if not inside:
                continue
            present = set(candidate.layers.get(code, _EMPTY).within(region.t0, region.t1))
            matched = [h for h in inside if h in present]
            matched_all.update(matched)
            if code == _RAW:
                raw_support = len(matched)
            similarity = len(matched) / len(inside)
            if best is None or (similarity, len(matched)) > (best[0], best[1]):
                best = (similarity, len(matched), code)
        evidence = len(matched_all)
        if best is None or evidence < opts.min_matches:
            return None
        needed = opts.min_similarity if evidence >= opts.strong_matches else opts.weak_similarity
        if best[0] < needed or scanned.tokens(region.s0, region.s1) < opts.min_tokens:
            return None
        if not raw_support and scanned.plain(region.s0, region.s1, opts):
            rarity = candidate.rarity
            if sum(rarity.get(h, 1.0) for h in matched_all) < opts.plain_weight:
                return None
        match = Match(
            candidate.collection,
            candidate.source,
            region.s0,
            region.s1,
            region.t0,
            region.t1,
            best[0],
            LAYERS_BY_CODE[best[2]],
            tuple(sorted(matched_all)),
        )
        return _Found(match, evidence)


def _clustered(spans: list[tuple[int, int, int]], gap: int, need: int) -> bool:
    """Whether ``need`` distinct hashes lie in one cluster of ``spans`` (first line, last line,
    hash): spans joined when one starts at most ``gap`` lines after those before it end.

    Every region a chain or a merge can make lies in one cluster, so a file whose shared
    fingerprints form no cluster that large cannot match.
    """
    if len({h for _s, _e, h in spans}) < need:
        return False
    spans.sort()
    reach = spans[0][1]
    cluster: set[int] = set()
    for start, end, h in spans:
        if start - reach > gap:
            cluster = set()
        cluster.add(h)
        if len(cluster) >= need:
            return True
        reach = max(reach, end)
    return False


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
    if _c is not None:
        try:
            return [_Region(*r) for r in _c.chain(pairs, gap, _LOOKBACK)]
        except OverflowError:  # a line or position beyond 64 bits: Python's integers take it
            pass
    return _py_chain(pairs, gap)


def _py_chain(pairs: list[_Pair], gap: int) -> list[_Region]:
    """:func:`_chain` of sorted ``pairs`` in Python: the path without the C accelerator."""
    n = len(pairs)
    # Columns, so that the inner loop indexes lists instead of unpacking tuples.
    s_pos, t_pos, s_start, s_end, t_start, t_end = (list(c) for c in zip(*pairs, strict=True))
    score = [1] * n
    prev = [-1] * n
    for i in range(n):
        s_i, t_i, ss_i, ts_i = s_pos[i], t_pos[i], s_start[i], t_start[i]
        diagonal = t_i - s_i
        best, best_j, best_d = 1, -1, 0
        for j in range(i - 1, max(-1, i - _LOOKBACK - 1), -1):
            if ss_i - s_end[j] > gap:
                break  # sorted by scanned position: earlier pairs are further away still
            s_j, t_j = s_pos[j], t_pos[j]
            if s_j >= s_i or t_j >= t_i or ts_i - t_end[j] > gap:
                continue
            cand = score[j] + 1
            if cand < best:
                continue
            d = abs(diagonal - (t_j - s_j))
            if cand > best or (best_j >= 0 and d < best_d):
                best, best_j, best_d = cand, j, d
        score[i] = best
        prev[i] = best_j
    used = [False] * n
    regions: list[_Region] = []
    for i in sorted(range(n), key=score.__getitem__, reverse=True):
        if used[i] or score[i] < 2:
            continue
        members: list[int] = []
        k = i
        while k != -1 and not used[k]:
            used[k] = True
            members.append(k)
            k = prev[k]
        if len(members) >= 2:
            regions.append(
                _Region(
                    min([s_start[k] for k in members]),
                    max([s_end[k] for k in members]),
                    min([t_start[k] for k in members]),
                    max([t_end[k] for k in members]),
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
