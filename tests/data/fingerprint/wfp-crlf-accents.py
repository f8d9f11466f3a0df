# -*- coding: utf-8 -*-
"""Café résumé: windows line endings and accents, for the .wfp golden vector."""


def histogram(words, width=40):
    """Return one bar per distinct word, longest first."""
    counts = {}
    for word in words:
        key = word.strip().lower()
        if not key:
            continue
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return []
    top = max(counts.values())
    bars = []
    for key, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        size = max(1, round(width * count / top))
        bars.append(f"{key:>12} {█ * size} {count}")
    return bars


def naïve_mean(values):
    total = 0.0
    for value in values:
        total += value
    return total / len(values) if values else 0.0
