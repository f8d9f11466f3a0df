"""Tokens of source code, for fingerprints that survive renaming and reformatting.

One compiled master pattern per language: comments, strings (triple-quoted, raw, template,
verbatim, heredoc where cheap), character literals, numbers, words and operators, tried in that
order at each position. It is a lexer, not a parser: a file that does not parse still yields
tokens, and nothing here raises.

Snippets are the hard case. A diff hunk can begin inside a docstring, a block comment or a
template literal; a lexer that starts in the code state then pairs the stray closer with the
next opener and reads every string as code and every piece of code as a string (Dolos and
copydetect both do). :func:`tokenize` therefore decides first where the text starts: for each
construct whose opener and closer look alike (``\"\"\"``, a backtick) it weighs how code-like the
regions between the first delimiters are under either pairing, and for a block comment whose
closer comes before any opener it asks whether the text before the closer reads like prose.
An opener that is never closed (a snippet that ends inside a string or comment) is kept as an
ordinary token and lexing goes on, so it never swallows the rest of the text.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["LANGUAGES", "Token", "TokenKind", "abstract", "token_spans", "tokenize"]

try:  # the C accelerator of the hot loop (src/custodes/fingerprint/_lex.c): the same symbols
    from custodes.fingerprint import _lex as _c_lex
except ImportError:  # pragma: no cover - built wherever a C compiler is found
    _c_lex = None  # type: ignore[assignment]
try:  # the regex parser (sre_parse's home since 3.11), to read the patterns' first characters
    import re._constants as _sre  # type: ignore[import-not-found]
    import re._parser as _sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - a Python that moved it: every position is handed over
    _sre = _sre_parse = None


class TokenKind(enum.IntEnum):
    """What a token is; comments are dropped, whitespace never yields one."""

    KEYWORD = 1
    IDENTIFIER = 2
    NUMBER = 3
    STRING = 4
    OPERATOR = 5


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its text, and the 1-based line (within the text) where it starts.

    A keyword's text is its canonical spelling (PHP keywords lower-cased, a C preprocessor
    directive written ``#include`` whatever the spacing); every other token's text is verbatim.
    """

    kind: TokenKind
    text: str
    line: int


# -- roles of the master pattern's groups ------------------------------------------------------

_NL = 0  # a newline
_DROP = 1  # a comment on one line
_DROP_LINES = 2  # a comment that may span lines
_WORD = 3  # keyword or identifier
_IDENT = 4  # always an identifier (a Rust lifetime, a PHP variable)
_NUMBER = 5
_STRING = 6  # a string on one line
_STRING_LINES = 7  # a string that may span lines
_OPERATOR = 8
_DIRECTIVE = 9  # a C preprocessor directive: a keyword whose spacing is normalised

_NUMBER_RE = (
    r"(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+"
    r"|(?:\d[\d_]*(?:\.\d[\d_]*|\.(?![.\w]))?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?)\w*"
)
_IDENT_RE = r"[^\W\d]\w*"
_RUBY_IDENT = r"(?:@@?|\$)?[^\W\d]\w*(?:[?!](?![=~]))?"
# Longest first, so that `>>=` is one token and `a+=1` lexes like `a += 1`.
_OPERATORS = (
    ">>>=", "<<=", ">>=", "**=", "//=", "...", "..=", "..<", "===", "!==", "<=>", "->*", "?.", "??=",
    ">>>", "->", "=>", "::", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "+=", "-=", "*=", "/=",
    "%=", "&=", "|=", "^=", "<<", ">>", "**", "..", "??", ":=", "!!", "@=",
)  # fmt: skip
_OPERATOR_RE = "|".join(re.escape(op) for op in _OPERATORS) + r"|[^\w\s]"

# Strings that stay on one line (a backslash escapes anything, the newline too).
_DQ = r'"[^"\\\n]*+(?:\\[\s\S][^"\\\n]*+)*+"'
_SQ = r"'[^'\\\n]*+(?:\\[\s\S][^'\\\n]*+)*+'"
_CHAR = r"'(?:\\[^\n][^'\\\n]{0,8}?|[^'\\\n])'"
_BLOCK_COMMENT = r"/\*[^*]*+\*++(?:[^/*][^*]*+\*++)*+/"
_BACKTICK = r"`[^`\\]*+(?:\\[\s\S][^`\\]*+)*+`"
_TRIPLE_DQ = r'"""[^"\\]*+(?:(?:\\[\s\S]|"(?!""))[^"\\]*+)*+"""'
_TRIPLE_SQ = r"'''[^'\\]*+(?:(?:\\[\s\S]|'(?!''))[^'\\]*+)*+'''"
# A regular expression literal, told from division by what precedes it; a quote or backtick in
# it would otherwise open a string.
_JS_REGEX = (
    r"(?:(?<=[=(,:;!&|?{}\[])|(?<=[=(,:;!&|?{}\[] )|(?<=return ))"
    r"/(?![*/])(?:[^/\\\n\[]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[a-zA-Z]*"
)
_TRIPLE_RAW = r'"""[\s\S]*?"""'  # Kotlin, Swift, Java, C#, Scala: no escapes that matter here


@dataclass(frozen=True, slots=True)
class _Construct:
    """A construct that can span lines, so that a snippet may begin inside it."""

    opener: str
    closer: re.Pattern[str]  # finds the closer (the first one ends the construct)
    comment: bool  # a comment (dropped) rather than a string


@dataclass(frozen=True, slots=True)
class _Lexer:
    name: str
    pattern: re.Pattern[str]
    roles: tuple[int, ...]  # role of each group, by group index
    keywords: frozenset[str]
    fold_keywords: bool  # keywords are case-insensitive (PHP)
    constructs: tuple[_Construct, ...]
    word_symbols: Mapping[str, str]  # each keyword to itself: one lookup gives a word's symbol
    # ``pattern`` behind a run of blanks: a search no longer tries every alternative at each
    # blank of an indentation (half the time of lexing). A token anchored at a line start
    # (``^…``) still matches, the blanks given back.
    fast: re.Pattern[str]
    word_group: int  # the group of words, and of the catch-all operator: the common tokens
    operator_group: int
    newline_group: int
    # What the C accelerator needs to lex like ``fast`` (see :func:`_c_table`).
    c_table: tuple[object, ...]


@dataclass(frozen=True)
class _Spec:
    """A lexer not built yet: compiling every language's patterns costs more than a run that
    lexes one or two languages should pay (and each worker process pays it again)."""

    name: str
    args: tuple[object, ...]
    kwargs: dict[str, object]


def _lexer(name: str, *args: object, **kwargs: object) -> _Spec:
    return _Spec(name, args, kwargs)


class _Lexers(Mapping[str, _Lexer]):
    """Each language's lexer, built when first asked for."""

    def __init__(self, specs: dict[str, _Spec]) -> None:
        self._specs = specs
        self._built: dict[str, _Lexer] = {}

    def __getitem__(self, name: str) -> _Lexer:
        built = self._built.get(name)
        if built is None:
            spec = self._specs[name]
            built = self._built[name] = _build_lexer(spec.name, *spec.args, **spec.kwargs)  # type: ignore[arg-type]
        return built

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


def _build_lexer(
    name: str,
    keywords: str,
    parts: Sequence[tuple[int, str]],
    *,
    ident: str = _IDENT_RE,
    fold_keywords: bool = False,
    constructs: Sequence[tuple[str, str, bool]] = (),
) -> _Lexer:
    pieces = [
        (_NL, r"\n"),
        (_DROP, r"\\\r?(?=\n)"),  # a line continuation is layout, not a token
        *parts,
        (_NUMBER, _NUMBER_RE),
        (_WORD, ident),
        (_OPERATOR, _OPERATOR_RE),
    ]
    roles = [_NL]  # group 0 is the whole match and never the last group; keeps indices aligned
    alternatives = []
    for role, regex in pieces:
        alternatives.append(f"({regex})")
        roles.append(role)
        # Groups inside an alternative (back-references) shift the indices after it.
        inner = re.compile(regex).groups
        roles.extend([role] * inner)
    pattern = re.compile("|".join(alternatives), re.MULTILINE)
    directive = any(role == _DIRECTIVE for role, _ in parts)
    # ``pattern`` behind blanks; a directive is matched from its line's start, the blanks
    # before it its own.
    fast = re.compile(
        ("(?:[ \t\f\r]+(?!#))?(?:" if directive else "[ \t\f\r]*(?:") + pattern.pattern + ")",
        re.MULTILINE,
    )
    word_symbols = {word: word for word in keywords.split()}
    return _Lexer(
        name=name,
        pattern=pattern,
        roles=tuple(roles),
        keywords=frozenset(keywords.split()),
        fold_keywords=fold_keywords,
        constructs=tuple(
            _Construct(opener, re.compile(closer, re.MULTILINE), comment)
            for opener, closer, comment in constructs
        ),
        word_symbols=word_symbols,
        fast=fast,
        word_group=roles.index(_WORD),
        operator_group=len(roles) - 1,
        newline_group=1,
        c_table=_c_table(
            fast, tuple(roles), roles.index(_WORD), len(roles) - 1, word_symbols, fold_keywords,
            [regex for _role, regex in parts], ident, directive,
        ),
    )


# -- the C accelerator's tables -----------------------------------------------------------------
#
# The C lexer reads the common tokens itself (blanks, newlines, ASCII words and operators) and
# hands every other position to the compiled ``fast`` pattern, exactly where ``finditer`` would
# search next. It may only read a token itself where no other alternative of the pattern could
# begin: the first characters of those alternatives (strings, comments, directives…) are
# worked out from the parsed patterns below, and any construct this cannot follow counts as
# beginning anywhere (always handed over).

_ANY: Final = frozenset(range(128))
_BLANKS: Final = frozenset(map(ord, " \t\f\r"))
_LETTERS: Final = frozenset(map(ord, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))


def _first_chars(items: list[tuple[object, object]]) -> tuple[frozenset[int], bool]:
    """The ASCII characters a match of ``items`` can begin with, and whether it can be empty.

    Conservative: what it cannot follow (a back-reference, a negated class…) counts as any
    character."""
    out: set[int] = set()
    for op, av in items:
        first, nullable = _first_of(op, av)
        out |= first
        if not nullable:
            return frozenset(out), False
    return frozenset(out), True


def _first_of(op: object, av: object) -> tuple[frozenset[int], bool]:
    if op is _sre.LITERAL:
        assert isinstance(av, int)
        return frozenset({av} & _ANY), False
    if op is _sre.IN:
        assert isinstance(av, list)
        chars: set[int] = set()
        for kind, value in av:
            if kind is _sre.LITERAL:
                chars.add(value)
            elif kind is _sre.RANGE:
                chars.update(range(value[0], min(value[1], 127) + 1))
            else:  # a category or a negation: any character
                return _ANY, False
        return frozenset(chars & _ANY), False
    if op is _sre.SUBPATTERN:
        assert isinstance(av, tuple)
        return _first_chars(av[3])
    if op is _sre.ATOMIC_GROUP:
        return _first_chars(av)  # type: ignore[arg-type]
    if op is _sre.BRANCH:
        assert isinstance(av, tuple)
        firsts = [_first_chars(branch) for branch in av[1]]
        return frozenset().union(*(f for f, _ in firsts)), any(n for _, n in firsts)
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
        assert isinstance(av, tuple)
        first, nullable = _first_chars(av[2])
        return first, nullable or av[0] == 0
    if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
        return frozenset(), True  # zero-width: what follows begins the match
    return _ANY, False  # anything else (a back-reference, any character…)


# A word just before one of these may prefix a string (r"…", u8'…', br#"…").
_AFTER_WORD: Final = "\"'`#"


def _c_table(
    fast: re.Pattern[str],
    roles: tuple[int, ...],
    word_group: int,
    operator_group: int,
    word_symbols: dict[str, str],
    fold: bool,
    specials: list[str],
    ident: str,
    directive: bool,
) -> tuple[object, ...]:
    """What ``_lex.c`` needs: see ``symbols`` there."""
    special: set[int] = set(map(ord, "\\"))  # a line continuation
    for regex in specials:
        if _sre_parse is None:  # pragma: no cover
            special |= _ANY
            continue
        first, nullable = _first_chars(_sre_parse.parse(regex))
        special |= _ANY if nullable else first
    special -= _BLANKS  # only a directive begins with blanks, and its '#' is special
    # Letters begin string prefixes (r"…", u8'…', br#"…"), always letters and digits followed
    # by a quote or `#`: a word is handed over when one of those follows it (``after_word``),
    # not whenever it begins with such a letter.
    special -= _LETTERS
    after_word = _AFTER_WORD
    if ident == _IDENT_RE:
        dollar_word = False
    elif ident == r"(?:[^\W\d]|\$)[\w$]*":  # JavaScript's: `$` is a letter
        dollar_word = True
    elif ident == r"@?[^\W\d]\w*":  # C#'s: `@` is special (verbatim strings) anyway
        dollar_word = False
        special.add(ord("@"))
    elif ident == _RUBY_IDENT:  # a name may end in `?` or `!`, and begin with `@` or `$`
        dollar_word = False
        special |= {ord("@"), ord("$")}
        after_word += "?!"
    else:  # a name this does not know how to read: every position is handed over
        dollar_word = False
        special = set(_ANY)
    flags = bytes(c in special for c in range(128))
    return (
        fast.search, roles, word_group, operator_group, 1, word_symbols, fold, flags,
        after_word.encode(), dollar_word, _OPERATORS, directive,
    )  # fmt: skip


_C_COMMENTS = [(_DROP_LINES, _BLOCK_COMMENT), (_DROP, r"//[^\n]*")]
_C_CONSTRUCTS = [("/*", re.escape("*/"), True)]
_TRIPLE_CONSTRUCT = [('"""', '"""', False)]
_STRAY_TRIPLE = (_OPERATOR, r'"""')  # an unterminated opener is an ordinary token

_PY_KEYWORDS = """
False None True and as assert async await break class continue def del elif else except finally
for from global if import in is lambda nonlocal not or pass raise return try while with yield
"""
_JS_KEYWORDS = """
break case catch class const continue debugger default delete do else export extends false
finally for function if import in instanceof let new null return static super switch this throw
true try typeof var void while with yield async await
"""
_TS_KEYWORDS = (
    _JS_KEYWORDS
    + """
abstract any as asserts bigint boolean declare enum implements infer interface is keyof module
namespace never number object override private protected public readonly satisfies string
symbol type unique unknown
"""
)
_JAVA_KEYWORDS = """
abstract assert boolean break byte case catch char class const continue default do double else
enum extends final finally float for goto if implements import instanceof int interface long
native new package private protected public return short static strictfp super switch
synchronized this throw throws transient try void volatile while true false null var record
yield sealed permits
"""
_GO_KEYWORDS = """
break case chan const continue default defer else fallthrough for func go goto if import
interface map package range return select struct switch type var true false nil iota bool byte
rune string error any int int8 int16 int32 int64 uint uint8 uint16 uint32 uint64 uintptr float32
float64 complex64 complex128
"""
_C_KEYWORDS = """
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union
unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary
_Noreturn _Static_assert _Thread_local bool true false
"""
_CPP_KEYWORDS = (
    _C_KEYWORDS
    + """
alignas alignof and and_eq asm bitand bitor catch char8_t char16_t char32_t class compl concept
consteval constexpr constinit const_cast co_await co_return co_yield decltype delete
dynamic_cast explicit export friend mutable namespace new noexcept not not_eq nullptr operator
or or_eq private protected public reinterpret_cast requires static_assert static_cast template
this thread_local throw try typeid typename using virtual wchar_t xor xor_eq override final
"""
)
_CSHARP_KEYWORDS = """
abstract as base bool break byte case catch char checked class const continue decimal default
delegate do double else enum event explicit extern false finally fixed float for foreach goto if
implicit in int interface internal is lock long namespace new null object operator out override
params private protected public readonly ref return sbyte sealed short sizeof stackalloc static
string struct switch this throw true try typeof uint ulong unchecked unsafe ushort using virtual
void volatile while var async await dynamic yield partial record nameof when
"""
_RUST_KEYWORDS = """
as async await break const continue crate dyn else enum extern false fn for if impl in let loop
match mod move mut pub ref return self Self static struct super trait true type unsafe use where
while i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str
"""
_RUBY_KEYWORDS = """
BEGIN END alias and begin break case class def defined? do else elsif end ensure false for if in
module next nil not or redo rescue retry return self super then true undef unless until when
while yield __FILE__ __LINE__ __method__
"""
_PHP_KEYWORDS = """
abstract and array as break callable case catch class clone const continue declare default do
echo else elseif empty enddeclare endfor endforeach endif endswitch endwhile enum eval exit
extends final finally fn for foreach function global goto if implements include include_once
instanceof insteadof interface isset list match namespace new or print private protected public
readonly require require_once return static switch throw trait try unset use var while xor yield
true false null self parent
"""
_KOTLIN_KEYWORDS = """
as break class continue do else false for fun if in interface is null object package return
super this throw true try typealias typeof val var when while catch finally import init
constructor by where abstract annotation companion const crossinline data enum external final
infix inline inner internal lateinit noinline open operator out override private protected
public reified sealed suspend tailrec vararg
"""
_SWIFT_KEYWORDS = """
associatedtype class deinit enum extension fileprivate func import init inout internal let open
operator private precedencegroup protocol public rethrows static struct subscript typealias var
break case catch continue default defer do else fallthrough for guard if in repeat return throw
switch where while as await false is nil self Self super throws true try async some weak
unowned lazy mutating nonmutating override final required convenience dynamic optional indirect
"""
_SCALA_KEYWORDS = """
abstract case catch class def do else extends false final finally for forSome if implicit import
lazy match new null object override package private protected return sealed super this throw
trait try true type val var while with yield given using enum then export
"""
_DART_KEYWORDS = """
abstract as assert async await break case catch class const continue covariant default deferred
do dynamic else enum export extends extension external factory false final finally for Function
get hide if implements import in interface is late library mixin new null on operator part
required rethrow return set show static super switch sync this throw true try typedef var void
while with yield int double num bool String
"""
_GROOVY_KEYWORDS = """
abstract as assert boolean break byte case catch char class const continue def default do double
else enum extends false final finally float for goto if implements import in instanceof int
interface long native new null package private protected public return short static super
switch synchronized this throw throws trait true try var void volatile while
"""
_SHELL_KEYWORDS = """
if then else elif fi case esac for select while until do done in function time coproc local
export readonly declare return
"""

_C_STRINGS = [
    (_STRING_LINES, r'(?:u8|[uUL])?R"(?P<cd>[^()\\\s]{0,16})\([\s\S]*?\)(?P=cd)"'),
    (_STRING, r"(?:u8|[uUL])?" + _DQ),
    (_STRING, r"(?:u8|[uUL])?" + _CHAR),
    (_DIRECTIVE, r"^[ \t]*#[ \t]*[A-Za-z_]+"),
]

_LEXERS: Final[Mapping[str, _Lexer]] = _Lexers(
    {
        lexer.name: lexer
        for lexer in (
            _lexer(
                "python",
                _PY_KEYWORDS,
                [
                    (_DROP, r"#[^\n]*"),
                    (
                        _STRING_LINES,
                        r"(?:[rRbBuUfF]{1,2})?(?:" + _TRIPLE_DQ + "|" + _TRIPLE_SQ + ")",
                    ),
                    (_OPERATOR, r"[rRbBuUfF]{0,2}(?:\"\"\"|''')"),
                    (_STRING, r"(?:[rRbBuUfF]{1,2})?(?:" + _DQ + "|" + _SQ + ")"),
                ],
                constructs=[('"""', '"""', False), ("'''", "'''", False)],
            ),
            *(
                _lexer(
                    name,
                    keywords,
                    [
                        *_C_COMMENTS,
                        (_STRING, _JS_REGEX),
                        (_STRING_LINES, _BACKTICK),
                        (_STRING, _DQ),
                        (_STRING, _SQ),
                    ],
                    ident=r"(?:[^\W\d]|\$)[\w$]*",
                    constructs=[*_C_CONSTRUCTS, ("`", "`", False)],
                )
                for name, keywords in (
                    ("javascript", _JS_KEYWORDS),
                    ("typescript", _TS_KEYWORDS),
                    ("tsx", _TS_KEYWORDS),
                )
            ),
            _lexer(
                "java",
                _JAVA_KEYWORDS,
                [
                    *_C_COMMENTS,
                    (_STRING_LINES, _TRIPLE_DQ),
                    _STRAY_TRIPLE,
                    (_STRING, _DQ),
                    (_STRING, _CHAR),
                ],
                constructs=[*_C_CONSTRUCTS, *_TRIPLE_CONSTRUCT],
            ),
            _lexer(
                "go",
                _GO_KEYWORDS,
                [*_C_COMMENTS, (_STRING_LINES, r"`[^`]*`"), (_STRING, _DQ), (_STRING, _CHAR)],
                constructs=[*_C_CONSTRUCTS, ("`", "`", False)],
            ),
            _lexer("c", _C_KEYWORDS, [*_C_COMMENTS, *_C_STRINGS], constructs=_C_CONSTRUCTS),
            _lexer("cpp", _CPP_KEYWORDS, [*_C_COMMENTS, *_C_STRINGS], constructs=_C_CONSTRUCTS),
            _lexer(
                "csharp",
                _CSHARP_KEYWORDS,
                [
                    *_C_COMMENTS,
                    (_STRING_LINES, r'\$*"""[\s\S]*?"""'),
                    _STRAY_TRIPLE,
                    (_STRING_LINES, r'(?:\$@|@\$|@)"[^"]*+(?:""[^"]*+)*+"'),
                    (_STRING, r"\$?" + _DQ),
                    (_STRING, _CHAR),
                    (_DIRECTIVE, r"^[ \t]*#[ \t]*[A-Za-z_]+"),
                ],
                ident=r"@?[^\W\d]\w*",
                constructs=[*_C_CONSTRUCTS, *_TRIPLE_CONSTRUCT],
            ),
            _lexer(
                "rust",
                _RUST_KEYWORDS,
                [
                    *_C_COMMENTS,
                    (_STRING_LINES, r'b?r(?P<rh>#*)"[\s\S]*?"(?P=rh)'),
                    (_STRING, r"b?" + _DQ),
                    (_STRING, r"b?" + _CHAR),
                    (_IDENT, r"'[^\W\d]\w*(?!')"),  # a lifetime
                ],
                constructs=_C_CONSTRUCTS,
            ),
            _lexer(
                "ruby",
                _RUBY_KEYWORDS,
                [
                    (_DROP_LINES, r"^=begin\b[\s\S]*?^=end\b[^\n]*"),
                    (_DROP, r"#[^\n]*"),
                    (
                        _STRING_LINES,
                        r"<<[~-]?(?:(?P<rq>['\"])(?P<rl>[A-Za-z_]\w*)(?P=rq)|(?P<ru>[A-Z_][A-Z0-9_]*))[^\n]*\n"
                        r"(?:[^\n]*\n)*?[ \t]*(?:(?P=rl)|(?P=ru))\b",
                    ),
                    (_STRING, _DQ),
                    (_STRING, _SQ),
                ],
                ident=_RUBY_IDENT,
                constructs=[("=begin", r"^=end\b[^\n]*", True)],
            ),
            _lexer(
                "php",
                _PHP_KEYWORDS,
                [
                    *_C_COMMENTS,
                    (_DROP, r"#(?!\[)[^\n]*"),
                    (
                        _STRING_LINES,
                        r"<<<[ \t]*(?P<pq>['\"]?)(?P<pl>[A-Za-z_]\w*)(?P=pq)[^\n]*\n[\s\S]*?\n[ \t]*(?P=pl)\b",
                    ),
                    (_STRING, _DQ),
                    (_STRING, _SQ),
                    (_IDENT, r"\$+[^\W\d]\w*"),
                ],
                fold_keywords=True,
                constructs=_C_CONSTRUCTS,
            ),
            _lexer(
                "kotlin",
                _KOTLIN_KEYWORDS,
                [
                    *_C_COMMENTS,
                    (_STRING_LINES, _TRIPLE_RAW),
                    _STRAY_TRIPLE,
                    (_STRING, _DQ),
                    (_STRING, _CHAR),
                ],
                constructs=[*_C_CONSTRUCTS, *_TRIPLE_CONSTRUCT],
            ),
            _lexer(
                "swift",
                _SWIFT_KEYWORDS,
                [
                    *_C_COMMENTS,
                    (_STRING_LINES, r'(?P<sh>#*)"""[\s\S]*?"""(?P=sh)'),
                    _STRAY_TRIPLE,
                    (_STRING, r'(?P<sr>#+)"[^\n]*?"(?P=sr)'),
                    (_STRING, _DQ),
                ],
                constructs=[*_C_CONSTRUCTS, *_TRIPLE_CONSTRUCT],
            ),
            *(
                _lexer(
                    name,
                    keywords,
                    [
                        *_C_COMMENTS,
                        (_STRING_LINES, _TRIPLE_RAW),
                        (_STRING_LINES, r"'''[\s\S]*?'''"),
                        _STRAY_TRIPLE,
                        (_STRING, _DQ),
                        (_STRING, _SQ),
                    ],
                    constructs=[*_C_CONSTRUCTS, *_TRIPLE_CONSTRUCT],
                )
                for name, keywords in (
                    ("scala", _SCALA_KEYWORDS),
                    ("dart", _DART_KEYWORDS),
                    ("groovy", _GROOVY_KEYWORDS),
                )
            ),
            _lexer(
                "shell",
                _SHELL_KEYWORDS,
                [(_DROP, r"(?<![\w$#{])#[^\n]*"), (_STRING, _DQ), (_STRING, r"'[^'\n]*'")],
            ),
            _lexer("", "", [(_STRING, _DQ), (_STRING, _SQ)]),
        )
    }
)

LANGUAGES: Final[frozenset[str]] = frozenset(name for name in _LEXERS if name)
"""Languages with a dedicated lexer; any other language (or None) gets the generic one."""


def _lexer_for(language: str | None) -> _Lexer:
    return _LEXERS[language if language is not None and language in _LEXERS else ""]


# -- where lexing starts ------------------------------------------------------------------------

# Operators that code is full of and prose rarely has.
_CODE_OPERATORS: Final = frozenset(
    {
        "(", ")", "[", "]", "{", "}", "=", ";", "<", ">", "+", "/", "%", "&", "|", "^", "~",
        "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "->", "=>", "&&", "||", "::", ":=",
        "++", "--", "<<", ">>", "===", "!==", "?.", "??", "...", "%=", "&=", "|=", "^=", "<<=",
        ">>=", "**",
    }
)  # fmt: skip
_REGION = 400  # characters weighed on each side of a delimiter: enough to tell, cheap to lex
_MIN_TOKENS = 4  # fewer tokens than this tell nothing
_THRESHOLD = 0.1
_PRIOR = 0.45  # weight of what a delimiter's own line says


def _codeness(lexer: _Lexer, region: str) -> float | None:
    """How much ``region`` reads like code (above 0) rather than prose (below 0); None if too short."""
    total = operators = words = pairs = 0
    previous_identifier_line = -1
    region = _NOT_CODE.sub(" ", region)
    for kind, text, line, _start, _end in _scan(lexer, region, 0, 1):
        total += 1
        if kind is TokenKind.IDENTIFIER:
            words += 1
            # Names that follow names on a line are prose's signature ("the value of"); code
            # puts operators or keywords between its names.
            pairs += previous_identifier_line == line
            previous_identifier_line = line
            continue
        if kind is TokenKind.OPERATOR:
            operators += text in _CODE_OPERATORS
        elif kind is TokenKind.KEYWORD:
            words += 1
        previous_identifier_line = -1
    if total < _MIN_TOKENS:
        return None
    # Bounded, so that a string full of brackets (JSON, a regex) cannot outweigh the rest.
    return max(-0.5, min(0.5, operators / total - pairs / max(words, 1)))


def _mean(values: Sequence[float | None]) -> float:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else 0.0


_OPENS_AFTER = (*"=(,[{:+-*/%?<>&|!", "return", "yield", "in")
# A template's interpolations are code even inside a string: they must not make it look like code.
_NOT_CODE = re.compile(r"\$\{[^{}\n]*\}|\b[a-z]+://[^\s'\"`]+")  # and nor must a URL
_STRING_PREFIX = re.compile(r"(?:^|[^\w])[rRbBuUfF]{1,2}$")


def _delimiter_prior(text: str, at: int, width: int) -> float:
    """What the delimiter's own line says: ``text.\"\"\"`` or ``\"\"\")`` closes, ``x = \"\"\"text`` opens."""
    line_start = text.rfind("\n", 0, at) + 1
    line_end = text.find("\n", at + width)
    before = text[line_start:at].strip()
    after = text[at + width : len(text) if line_end < 0 else line_end].strip()
    opens_here = before.endswith(_OPENS_AFTER) or _STRING_PREFIX.search(before) is not None
    closes = (bool(before) and not opens_here) + (bool(after) and after[0] in ").,]};%")
    opens = (bool(before) and opens_here) + (
        not before and bool(after) and after[0] not in ").,]};%#"
    )
    # Most strings open and close on one line; a closer shares its line with another
    # delimiter less often.
    opens += (
        text.find(text[at : at + width], at + width, len(text) if line_end < 0 else line_end) >= 0
    )
    return _PRIOR * (closes - opens)


def _start(lexer: _Lexer, text: str) -> tuple[int, bool]:
    """Where code starts in ``text`` and whether the part before is a string's tail.

    ``(0, False)`` when the text starts in code (the usual case).
    """
    quotes = []
    closers: dict[_Construct, list[int]] = {}
    for construct in lexer.constructs:
        match = construct.closer.search(text)
        while match is not None and not _delimits(lexer, text, *match.span(), closers):
            match = construct.closer.search(text, match.end())
        if match is None:
            continue
        at, end = match.span()
        if not construct.comment:
            quotes.append((at, end, construct))
        elif construct.opener not in text[:at]:  # else it closes a comment opened in the text
            head = _codeness(lexer, text[max(0, at - _REGION) : at])
            if head is None or head < 0:
                return end, False
    if not quotes:
        return 0, False
    # Only the first delimiter can be a closer: had the text started inside another kind of
    # string, that string would have ended first.
    at, end, construct = min(quotes, key=lambda item: item[0])
    width = end - at
    following = text.find(construct.opener, end)
    before = _codeness(lexer, text[max(0, at - _REGION) : at])
    inside = _codeness(
        lexer, text[end : min(end + _REGION, following if following >= 0 else len(text))]
    )
    after = None
    if following >= 0:
        third = text.find(construct.opener, following + width)
        stop = third if third >= 0 else len(text)
        after = _codeness(lexer, text[following + width : min(following + width + _REGION, stop)])
    # Starting inside the construct makes the region after the first delimiter code and the
    # regions around it string; starting in code makes it the other way round.
    score = (inside or 0.0) - _mean([before, after]) + _delimiter_prior(text, at, width)
    if score > _THRESHOLD:
        return end, True
    return 0, False


def _delimits(
    lexer: _Lexer, text: str, at: int, end: int, closers: dict[_Construct, list[int]]
) -> bool:
    """Whether the delimiter at ``at`` is one, not a part of a string or a comment.

    ``closers`` caches where each comment construct's closers start in ``text``, so that
    testing every candidate delimiter of a large file stays linear, not quadratic.
    """
    for construct in lexer.constructs:
        if construct.comment and text.rfind(construct.opener, 0, at) > _last_closer(
            construct, text, at, closers
        ):
            return False  # inside a block comment that the text opened
    line_start = text.rfind("\n", 0, at) + 1
    for _kind, _text, _line, start, stop in _scan(lexer, text, line_start, 1):
        if stop > at:
            # A string prefix (r, b, f…) glued to the delimiter starts the token before it.
            return start == at or (at - 2 <= start and text[start:at].isalpha())
        if start > at:
            break
    return False


def _last_closer(
    construct: _Construct, text: str, at: int, closers: dict[_Construct, list[int]]
) -> int:
    """The start of the last closer of ``construct`` that lies wholly before ``at``, or -1."""
    starts = closers.get(construct)
    if starts is None:
        starts = closers[construct] = [m.start() for m in construct.closer.finditer(text)]
    i = bisect.bisect_left(starts, at) - 1
    while i >= 0 and construct.closer.match(text, starts[i], at) is None:
        i -= 1  # a closer that only fits by running past ``at``
    return starts[i] if i >= 0 else -1


# -- lexing -------------------------------------------------------------------------------------


def _scan(
    lexer: _Lexer, text: str, position: int, line: int
) -> Iterator[tuple[TokenKind, str, int, int, int]]:
    """``(kind, text, line, start, end)`` of each token from ``position`` on (no resync)."""
    roles, keywords, fold = lexer.roles, lexer.keywords, lexer.fold_keywords
    for match in lexer.pattern.finditer(text, position):
        role = roles[match.lastindex or 0]
        if role == _NL:
            line += 1
            continue
        value = match.group()
        if role == _WORD:
            word = value.lower() if fold else value
            if word in keywords:
                yield TokenKind.KEYWORD, word, line, match.start(), match.end()
            else:
                yield TokenKind.IDENTIFIER, value, line, match.start(), match.end()
        elif role == _OPERATOR:
            yield TokenKind.OPERATOR, value, line, match.start(), match.end()
        elif role == _NUMBER:
            yield TokenKind.NUMBER, value, line, match.start(), match.end()
        elif role == _STRING:
            yield TokenKind.STRING, value, line, match.start(), match.end()
        elif role == _STRING_LINES:
            yield TokenKind.STRING, value, line, match.start(), match.end()
            line += value.count("\n")
        elif role == _DROP_LINES:
            line += value.count("\n")
        elif role == _IDENT:
            yield TokenKind.IDENTIFIER, value, line, match.start(), match.end()
        elif role == _DIRECTIVE:
            directive = "#" + value.lstrip(" \t#").lstrip(" \t")
            yield TokenKind.KEYWORD, directive, line, match.start(), match.end()


def _lex(lexer: _Lexer, text: str) -> Iterator[tuple[TokenKind, str, int, int, int]]:
    """Every token of ``text``, starting inside a construct when the text does."""
    position = 1 if text.startswith("\ufeff") else 0
    start, head_is_string = _start(lexer, text) if lexer.constructs else (0, False)
    line = 1
    if start:
        if head_is_string:
            yield TokenKind.STRING, text[position:start], 1, position, start
        line += text.count("\n", 0, start)
        position = start
    yield from _scan(lexer, text, position, line)


def tokenize(text: str, language: str | None) -> list[Token]:
    """The tokens of ``text`` in ``language`` (a :func:`language_of` name); comments dropped.

    A language without a dedicated lexer (see :data:`LANGUAGES`), or None, gets a generic one
    (words, numbers, quoted strings, operators). Never raises.
    """
    return [
        Token(kind, value, line) for kind, value, line, _s, _e in _lex(_lexer_for(language), text)
    ]


def token_spans(text: str, language: str | None) -> list[tuple[TokenKind, int, int]]:
    """``(kind, start, end)`` character offsets of each token of :func:`tokenize`, in order.

    Text not covered by a span is whitespace or comment: what a reformatter may change.
    """
    return [(kind, start, end) for kind, _v, _l, start, end in _lex(_lexer_for(language), text)]


def abstract(tokens: Sequence[Token]) -> list[str]:
    """The symbols fingerprints are made of: names and literals lose their spelling.

    Identifiers become ``$``, numbers ``0``, strings ``"``; keywords and operators stay, so that
    renaming variables and changing literals (Type-2 clones) leaves the symbols unchanged.
    """
    out = []
    for token in tokens:
        kind = token.kind
        if kind is TokenKind.IDENTIFIER:
            out.append("$")
        elif kind is TokenKind.NUMBER:
            out.append("0")
        elif kind is TokenKind.STRING:
            out.append('"')
        else:
            out.append(token.text)
    return out


def _symbols(language: str | None, text: str) -> tuple[list[str], list[int], dict[int, int]]:
    """``abstract(tokenize(text))`` and each token's line, without building tokens (hot path).

    The third item maps the index of each token that spans lines to its last line.
    """
    lexer = _lexer_for(language)
    position = 1 if text.startswith("\ufeff") else 0
    start, head_is_string = _start(lexer, text) if lexer.constructs else (0, False)
    symbols: list[str] = []
    lines: list[int] = []
    last_lines: dict[int, int] = {}
    line = 1
    if start:
        if head_is_string:
            symbols.append('"')
            lines.append(1)
        line += text.count("\n", 0, start)
        if head_is_string and line > 1:
            last_lines[0] = line
        position = start
    if _c_lex is not None:
        _c_lex.symbols(lexer.c_table, text, position, line, symbols, lines, last_lines)
        return symbols, lines, last_lines
    roles, fold = lexer.roles, lexer.fold_keywords
    word_symbol = lexer.word_symbols.get
    add_symbol, add_line = symbols.append, lines.append
    word_group, operator_group, newline_group = (
        lexer.word_group, lexer.operator_group, lexer.newline_group,
    )  # fmt: skip
    for match in lexer.fast.finditer(text, position):
        group = match.lastindex or 0
        # The common tokens first, by group; the rest by role.
        if group == word_group:
            value = match[group]
            add_symbol(word_symbol(value.lower() if fold else value, "$"))
            add_line(line)
            continue
        if group == operator_group:
            add_symbol(match[group])
            add_line(line)
            continue
        if group == newline_group:
            line += 1
            continue
        role = roles[group]
        if role == _OPERATOR:
            add_symbol(match[group])
        elif role == _STRING:
            add_symbol('"')
        elif role == _NUMBER:
            add_symbol("0")
        elif role == _STRING_LINES:
            newlines = match[group].count("\n")
            if newlines:
                last_lines[len(symbols)] = line + newlines
            add_symbol('"')
            add_line(line)
            line += newlines
            continue
        elif role == _DROP_LINES:
            line += match[group].count("\n")
            continue
        elif role in (_DROP, _NL):
            continue
        elif role == _IDENT:
            add_symbol("$")
        else:  # _DIRECTIVE
            add_symbol("#" + match[group].lstrip(" \t#").lstrip(" \t"))
        add_line(line)
    return symbols, lines, last_lines
