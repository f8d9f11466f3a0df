"""Provenance ahead of a scan: subjects fingerprinted and matched in worker processes.

A scan reads subjects one by one and hands each to its detectors. Provenance is most of the
work of a scan (lexing, winnowing, index lookups, alignment), and all of it depends on the
subject alone, so :func:`check_ahead` does it in a pool of worker processes, in batches, a few
batches ahead of the consumer: each worker opens the index itself, classifies, fingerprints
and matches a batch of subjects with one index lookup for the batch
(:meth:`~custodes.fingerprint.match.Matcher.match_many`), and sends back only the matches. The
consumer (the engine, running the other detectors) gets every item in order with its
:class:`Checked`.

A small scan (a pre-commit hook, a few files) never starts the pool: below
``_POOL_AFTER_CHARS`` of text everything is done in this process, once the text is read.
Above it, the pool's fork server is started and this process checks the text it held while
the server imports custodes, so that the workers do not wait for it. When ``custodes scan``
was given folders and an index, it has already started the server (:func:`~custodes.fingerprint
.index.prestart`, on the other core while the policy loads): then the pool starts with the
first full batch and takes every batch, and this process only reads.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from custodes.fingerprint.boilerplate import classify
from custodes.fingerprint.index import Index, _broken_pool, _context, _warm, prestarted
from custodes.fingerprint.match import Match, Matcher, MatchOptions
from custodes.fingerprint.winnow import Winnowed, winnowed
from custodes.subject import Skipped, SkipReason, Subject

__all__ = ["Checked", "check", "check_ahead"]

_BATCH_CHARS = 256 * 1024  # text per batch: a scan yields items as they are ready
_POOL_AFTER_CHARS = 512 * 1024  # less text than this is checked in this process
_AHEAD = 2  # batches queued per worker


@dataclass(frozen=True)
class Checked:
    """What provenance made of one subject: why it was passed by, or what it matched."""

    skip: SkipReason | None
    matches: tuple[Match, ...] = ()


@dataclass(frozen=True)
class _Text:
    path: str
    text: str
    language: str | None


def _check_texts(matcher: Matcher, texts: list[_Text]) -> list[Checked]:
    """Classify, fingerprint and match a batch of texts, with one index lookup."""
    out: list[Checked | None] = []
    prints: list[Winnowed] = []
    for t in texts:
        reason = classify(t.path, t.text)
        if reason is not None:
            out.append(Checked(reason))
        else:
            out.append(None)
            prints.append(winnowed(t.text, t.language))
    found = iter(matcher.match_many(prints))
    return [c if c is not None else Checked(None, tuple(next(found))) for c in out]


def check(matcher: Matcher, subject: Subject) -> Checked:
    """:class:`Checked` for one subject, in this process."""
    return _check_texts(matcher, [_Text(subject.path, subject.text, subject.language)])[0]


# -- in a worker process ------------------------------------------------------------------------

_matcher: Matcher | None = None


def _start_worker(index: str, options: MatchOptions) -> None:
    global _matcher
    _matcher = Matcher(Index.open(index), options)


def _work(texts: list[_Text]) -> list[Checked]:
    assert _matcher is not None, "the worker was started without an index"
    return _check_texts(_matcher, texts)


# -- in the scanning process --------------------------------------------------------------------

Item = Subject | Skipped


def check_ahead(
    items: Iterable[Item], matcher: Matcher, *, jobs: int = 1
) -> Iterator[tuple[Item, Checked | None]]:
    """Each item, in order, with its :class:`Checked` (None for a skipped item).

    Once more than a little text has gone by and ``jobs`` > 1, batches of subjects are checked
    by ``jobs`` worker processes (each with its own connection to ``matcher``'s index and the
    same options) a few batches ahead of the consumer, so that the consumer's own work runs
    beside them. A worker that dies (killed, or a program that cannot be re-imported by one)
    is said once on the log, and the rest is checked in this process.
    """
    pool: ProcessPoolExecutor | None = None
    waiting: deque[tuple[list[Item], Future[list[Checked]]]] = deque()
    held: list[list[Item]] = []  # full batches kept until the pool is worth starting
    held_chars = 0
    batch: list[Item] = []
    chars = 0

    def inline(chunk: list[Item]) -> Iterator[tuple[Item, Checked | None]]:
        subjects = [i for i in chunk if isinstance(i, Subject)]
        done = iter(
            _check_texts(matcher, [_Text(s.path, s.text, s.language) for s in subjects])
            if subjects
            else []
        )
        for item in chunk:
            yield item, next(done) if isinstance(item, Subject) else None

    def submit(chunk: list[Item]) -> None:
        assert pool is not None
        texts = [_Text(i.path, i.text, i.language) for i in chunk if isinstance(i, Subject)]
        waiting.append((chunk, pool.submit(_work, texts)))

    def settle(
        chunk: list[Item], future: Future[list[Checked]]
    ) -> Iterator[tuple[Item, Checked | None]]:
        nonlocal jobs
        try:
            results = future.result()
        except BrokenProcessPool:
            if jobs > 1:
                _broken_pool()
                jobs = 1
            yield from inline(chunk)
            return
        done = iter(results)
        for item in chunk:
            yield item, next(done) if isinstance(item, Subject) else None

    try:
        for item in items:
            batch.append(item)
            if isinstance(item, Subject):
                chars += len(item.text)
            if chars < _BATCH_CHARS:
                continue
            full, size = batch, chars
            batch, chars = [], 0
            if pool is None and jobs > 1:
                held.append(full)
                held_chars += size
                if held_chars < (0 if prestarted() else _POOL_AFTER_CHARS):
                    continue
                context = _context()
                if prestarted():  # the server is (nearly) ready: the pool takes every batch
                    pool = _pool(matcher, jobs, context)
                    for chunk in held:
                        submit(chunk)
                    held = []
                    continue
                # The fork server imports custodes while this process checks what it held
                # (first, in order); the workers then start without waiting for it.
                _warm(context)
                first = [result for chunk in held for result in inline(chunk)]
                held = []
                pool = _pool(matcher, jobs, context)
                yield from first
                continue
            elif pool is None or jobs == 1:  # no pool, or it broke: in order, here
                while waiting:
                    yield from settle(*waiting.popleft())
                yield from inline(full)
                continue
            else:
                submit(full)
            while len(waiting) > jobs * _AHEAD or (waiting and waiting[0][1].done()):
                yield from settle(*waiting.popleft())
        if pool is not None and jobs > 1 and batch:
            submit(batch)
            batch = []
        while waiting:
            yield from settle(*waiting.popleft())
        for chunk in [*held, batch]:  # too little for the pool, or what is left
            yield from inline(chunk)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _pool(
    matcher: Matcher, jobs: int, context: multiprocessing.context.BaseContext
) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        jobs,
        mp_context=context,
        initializer=_start_worker,
        initargs=(str(Path(matcher.index.path)), matcher.options),
    )
