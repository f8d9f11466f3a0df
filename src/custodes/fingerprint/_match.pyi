# The C accelerator of custodes.fingerprint.match (see _match.c).
def chain(
    pairs: list[tuple[int, int, int, int, int, int]], gap: int, lookback: int, /
) -> list[tuple[int, int, int, int]]: ...
