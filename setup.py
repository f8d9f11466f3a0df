"""Optional C accelerators: each ``src/custodes/<package>/_<name>.c`` builds ``custodes.<package>._<name>``.

They are optional: where no C compiler is found the build goes on and custodes runs its
pure-Python path, which computes the same bytes (the tests pin the two against each other).
"""

from pathlib import Path

from setuptools import Extension, setup

_SRC = Path("src")


def _extensions() -> list[Extension]:
    found = []
    for c_file in sorted(_SRC.glob("custodes/**/_*.c")):
        module = ".".join(c_file.relative_to(_SRC).with_suffix("").parts)
        found.append(
            Extension(
                module,
                [c_file.as_posix()],
                optional=True,
                extra_compile_args=["-O2", "-std=c11"],
                libraries=["crypto"] if "ledger" in c_file.parts else [],
            )
        )
    return found


setup(ext_modules=_extensions())
