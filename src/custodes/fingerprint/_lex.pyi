# The C accelerator of custodes.fingerprint.tokenize (see _lex.c).
def symbols(
    table: tuple[object, ...], text: str, position: int, line: int, symbols: list[str],
    lines: list[int], last_lines: dict[int, int], /,
) -> int: ...
