/* The hot loop of custodes.fingerprint.tokenize._symbols in C.
 *
 * The Python loop runs a language's compiled "fast" pattern with finditer and turns each
 * match into an abstract symbol and a line. Most tokens are blanks, newlines, ASCII words and
 * ASCII operators, which this file reads itself; at any other position (strings, comments,
 * numbers, directives, non-ASCII text) it calls the same pattern's search() from the very
 * position finditer would search from, and handles the match as the Python loop does. The
 * results are therefore the Python path's, symbol for symbol and line for line (the tests pin
 * the two against each other): the tables that say which first characters must be handed over
 * are worked out in tokenize.py from the patterns themselves (see _c_table there).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Roles of the pattern's groups: tokenize.py's _NL … _DIRECTIVE. */
enum { R_NL, R_DROP, R_DROP_LINES, R_WORD, R_IDENT, R_NUMBER, R_STRING, R_STRING_LINES,
       R_OPERATOR, R_DIRECTIVE };

#define MAX_GROUPS 256
#define MAX_OPERATORS 64
#define MAX_OPERATOR_LEN 8

static PyObject *IDENTIFIER; /* "$" */
static PyObject *STRING;     /* '"' */
static PyObject *NUMBER;     /* "0" */
static PyObject *LASTINDEX;  /* attribute and method names, interned once */
static PyObject *SPAN;

typedef struct {
    PyObject *search;       /* fast.search, a bound method */
    int roles[MAX_GROUPS];
    Py_ssize_t n_roles, word_group, operator_group, newline_group;
    PyObject *word_symbols; /* dict: keyword -> itself */
    int fold;               /* keywords are case-insensitive */
    char special[128];      /* first characters that other alternatives may begin with */
    char after_word[128];   /* a word followed by one of these may be a string's prefix */
    int dollar_word;        /* `$` is a letter (JavaScript) */
    int directive;          /* the pattern has C directives: a `#` after blanks is special */
    PyObject *operators;    /* tuple of str, in the pattern's order */
    Py_ssize_t n_ops;
    Py_UCS4 ops[MAX_OPERATORS][MAX_OPERATOR_LEN];
    Py_ssize_t op_len[MAX_OPERATORS];
} Table;

typedef struct {
    int kind;
    const void *data;
    Py_ssize_t length;
    PyObject *text;
    PyObject *symbols, *lines, *last_lines; /* the outputs, appended to */
    Py_ssize_t line;
} State;

static int parse_table(PyObject *tuple, Table *t) {
    PyObject *roles, *special, *after_word;
    if (!PyArg_ParseTuple(tuple, "OO!nnnO!pSSpO!p:table", &t->search, &PyTuple_Type, &roles,
                          &t->word_group, &t->operator_group, &t->newline_group, &PyDict_Type,
                          &t->word_symbols, &t->fold, &special, &after_word, &t->dollar_word,
                          &PyTuple_Type, &t->operators, &t->directive))
        return -1;
    if (!PyCallable_Check(t->search)) {
        PyErr_SetString(PyExc_TypeError, "table: search must be callable");
        return -1;
    }
    t->n_roles = PyTuple_GET_SIZE(roles);
    if (t->n_roles > MAX_GROUPS || PyBytes_GET_SIZE(special) != 128) {
        PyErr_SetString(PyExc_ValueError, "table: too many groups or a bad special table");
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->n_roles; i++) {
        long role = PyLong_AsLong(PyTuple_GET_ITEM(roles, i));
        if (role == -1 && PyErr_Occurred()) return -1;
        if (role < R_NL || role > R_DIRECTIVE) {
            PyErr_SetString(PyExc_ValueError, "table: unknown role");
            return -1;
        }
        t->roles[i] = (int)role;
    }
    memcpy(t->special, PyBytes_AS_STRING(special), 128);
    memset(t->after_word, 0, sizeof t->after_word);
    const char *after = PyBytes_AS_STRING(after_word);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(after_word); i++)
        if ((unsigned char)after[i] < 128) t->after_word[(unsigned char)after[i]] = 1;
    t->n_ops = PyTuple_GET_SIZE(t->operators);
    if (t->n_ops > MAX_OPERATORS) {
        PyErr_SetString(PyExc_ValueError, "table: too many operators");
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->n_ops; i++) {
        PyObject *op = PyTuple_GET_ITEM(t->operators, i);
        if (!PyUnicode_Check(op) || PyUnicode_GET_LENGTH(op) < 1 ||
            PyUnicode_GET_LENGTH(op) > MAX_OPERATOR_LEN) {
            PyErr_SetString(PyExc_ValueError, "table: operators must be short strings");
            return -1;
        }
        t->op_len[i] = PyUnicode_GET_LENGTH(op);
        for (Py_ssize_t j = 0; j < t->op_len[i]; j++) t->ops[i][j] = PyUnicode_READ_CHAR(op, j);
    }
    return 0;
}

static inline Py_UCS4 at(const State *s, Py_ssize_t i) {
    return PyUnicode_READ(s->kind, s->data, i);
}

static inline int is_word_char(Py_UCS4 c, int dollar) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || (dollar && c == '$');
}

/* Append one symbol (a new or borrowed-and-increfed reference is consumed) and its line. */
static int emit(State *s, PyObject *symbol, Py_ssize_t line) {
    if (symbol == NULL) return -1;
    int failed = PyList_Append(s->symbols, symbol);
    Py_DECREF(symbol);
    if (failed) return -1;
    PyObject *number = PyLong_FromSsize_t(line);
    if (number == NULL) return -1;
    failed = PyList_Append(s->lines, number);
    Py_DECREF(number);
    return failed ? -1 : 0;
}

static Py_ssize_t count_newlines(const State *s, Py_ssize_t start, Py_ssize_t end) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = start; i < end; i++) n += at(s, i) == '\n';
    return n;
}

/* A word's symbol: the keyword itself, or "$". */
static PyObject *word_symbol(const Table *t, PyObject *word) {
    PyObject *key = word;
    if (t->fold) {
        key = PyObject_CallMethod(word, "lower", NULL);
        if (key == NULL) return NULL;
    }
    PyObject *found = PyDict_GetItemWithError(t->word_symbols, key); /* borrowed */
    if (key != word) Py_DECREF(key);
    if (found == NULL) {
        if (PyErr_Occurred()) return NULL;
        found = IDENTIFIER;
    }
    Py_INCREF(found);
    return found;
}

/* Handle the next match of the pattern from `pos` on, as the Python loop does; sets *next to
 * where the match ends, or to the text's length when nothing more matches. */
static int fallback(const Table *t, State *s, Py_ssize_t pos, Py_ssize_t *next) {
    PyObject *position = PyLong_FromSsize_t(pos);
    if (position == NULL) return -1;
    PyObject *call[2] = {s->text, position};
    PyObject *match = PyObject_Vectorcall(t->search, call, 2, NULL);
    Py_DECREF(position);
    if (match == NULL) return -1;
    if (match == Py_None) {
        Py_DECREF(match);
        *next = s->length;
        return 0;
    }
    int result = -1;
    PyObject *value = NULL, *span = NULL;
    Py_ssize_t group = 0, start, end;
    PyObject *lastindex = PyObject_GetAttr(match, LASTINDEX);
    if (lastindex == NULL) goto done;
    if (lastindex != Py_None) group = PyLong_AsSsize_t(lastindex);
    Py_DECREF(lastindex);
    if (group == -1 && PyErr_Occurred()) goto done;
    if (group < 0 || group >= t->n_roles) {
        PyErr_SetString(PyExc_ValueError, "a match's group has no role");
        goto done;
    }
    PyObject *group_number = PyLong_FromSsize_t(group);
    if (group_number == NULL) goto done;
    PyObject *span_args[2] = {match, group_number};
    span = PyObject_VectorcallMethod(SPAN, span_args, 2, NULL);
    Py_DECREF(group_number);
    if (span == NULL) goto done;
    if (!PyArg_ParseTuple(span, "nn", &start, &end)) goto done;
    if (start < 0 || end < start || end > s->length) { /* an unmatched group: (-1, -1) */
        PyErr_SetString(PyExc_ValueError, "a match's group did not take part");
        goto done;
    }
    /* The match ends where its group does: the last group to close is the alternative's own,
     * which ends the pattern (groups inside it close before it). No alternative matches the
     * empty string; were one to, this steps on by one, so that lexing always moves forward. */
    if (end > start) *next = end;
    else *next = (end > pos ? end : pos) + 1;
    if (group == t->newline_group) {
        s->line += 1;
        result = 0;
        goto done;
    }
    int role = t->roles[group];
    if (group == t->word_group) role = R_WORD;
    if (group == t->operator_group) role = R_OPERATOR;
    switch (role) {
    case R_WORD:
        value = PyUnicode_Substring(s->text, start, end);
        if (value == NULL) goto done;
        result = emit(s, word_symbol(t, value), s->line);
        break;
    case R_OPERATOR:
        result = emit(s, PyUnicode_Substring(s->text, start, end), s->line);
        break;
    case R_STRING:
        Py_INCREF(STRING);
        result = emit(s, STRING, s->line);
        break;
    case R_NUMBER:
        Py_INCREF(NUMBER);
        result = emit(s, NUMBER, s->line);
        break;
    case R_STRING_LINES: {
        Py_ssize_t newlines = count_newlines(s, start, end);
        if (newlines) {
            PyObject *key = PyLong_FromSsize_t(PyList_GET_SIZE(s->symbols));
            PyObject *last = PyLong_FromSsize_t(s->line + newlines);
            int failed = key == NULL || last == NULL || PyDict_SetItem(s->last_lines, key, last);
            Py_XDECREF(key);
            Py_XDECREF(last);
            if (failed) goto done;
        }
        Py_INCREF(STRING);
        result = emit(s, STRING, s->line);
        s->line += newlines;
        break;
    }
    case R_DROP_LINES:
        s->line += count_newlines(s, start, end);
        result = 0;
        break;
    case R_DROP:
    case R_NL:
        result = 0;
        break;
    case R_IDENT:
        Py_INCREF(IDENTIFIER);
        result = emit(s, IDENTIFIER, s->line);
        break;
    case R_DIRECTIVE: {
        /* "#" + value.lstrip(" \t#").lstrip(" \t"), as the Python loop spells it. */
        value = PyUnicode_Substring(s->text, start, end);
        if (value == NULL) goto done;
        PyObject *a = PyObject_CallMethod(value, "lstrip", "s", " \t#");
        PyObject *b = a == NULL ? NULL : PyObject_CallMethod(a, "lstrip", "s", " \t");
        Py_XDECREF(a);
        if (b == NULL) goto done;
        PyObject *hash = PyUnicode_FromString("#");
        PyObject *directive = hash == NULL ? NULL : PyUnicode_Concat(hash, b);
        Py_XDECREF(hash);
        Py_DECREF(b);
        result = emit(s, directive, s->line);
        break;
    }
    default:
        PyErr_SetString(PyExc_ValueError, "unknown role");
    }
done:
    Py_XDECREF(value);
    Py_XDECREF(span);
    Py_DECREF(match);
    return result;
}

/* symbols(table, text, position, line, symbols, lines, last_lines) -> line
 *
 * Appends the abstract symbol and the line of each token of `text` from `position` on to
 * `symbols` and `lines`, and the last line of each token that spans lines to `last_lines`
 * (keyed by the token's index in `symbols`); returns the line reached. */
static PyObject *symbols(PyObject *self, PyObject *args) {
    PyObject *table_obj;
    State s;
    Py_ssize_t pos;
    Table *t;
    if (!PyArg_ParseTuple(args, "O!UnnO!O!O!:symbols", &PyTuple_Type, &table_obj, &s.text, &pos,
                          &s.line, &PyList_Type, &s.symbols, &PyList_Type, &s.lines,
                          &PyDict_Type, &s.last_lines))
        return NULL;
    t = PyMem_Malloc(sizeof(Table)); /* a few kB: kept off the stack */
    if (t == NULL) return PyErr_NoMemory();
    if (parse_table(table_obj, t) < 0) {
        PyMem_Free(t);
        return NULL;
    }
    s.kind = PyUnicode_KIND(s.text);
    s.data = PyUnicode_DATA(s.text);
    s.length = PyUnicode_GET_LENGTH(s.text);
    if (pos < 0 || pos > s.length) {
        PyMem_Free(t);
        PyErr_SetString(PyExc_IndexError, "position out of range");
        return NULL;
    }
    while (pos < s.length) {
        Py_ssize_t q = pos;
        Py_UCS4 c;
        while (q < s.length && ((c = at(&s, q)) == ' ' || c == '\t' || c == '\f' || c == '\r'))
            q++;
        if (q >= s.length) break; /* only blanks are left: nothing matches */
        c = at(&s, q);
        if (c == '\n') { /* the first alternative */
            s.line += 1;
            pos = q + 1;
            continue;
        }
        if (c >= 128 || c < 32 || t->special[c] || (c >= '0' && c <= '9') ||
            (c == '.' && q + 1 < s.length &&
             (at(&s, q + 1) >= 128 || (at(&s, q + 1) >= '0' && at(&s, q + 1) <= '9')))) {
            /* Another alternative may begin here (or a number, or text beyond ASCII). */
            if (fallback(t, &s, pos, &pos) < 0) goto fail;
            continue;
        }
        if (is_word_char(c, t->dollar_word)) { /* a letter, `_` (or `$`): not a digit, see above */
            Py_ssize_t e = q + 1;
            while (e < s.length && is_word_char(at(&s, e), t->dollar_word)) e++;
            if (e < s.length && (at(&s, e) >= 128 || t->after_word[at(&s, e)])) {
                /* a name that goes on beyond ASCII, or a string's prefix (r"…") */
                if (fallback(t, &s, pos, &pos) < 0) goto fail;
                continue;
            }
            PyObject *word = PyUnicode_Substring(s.text, q, e);
            if (word == NULL) goto fail;
            PyObject *symbol = word_symbol(t, word);
            Py_DECREF(word);
            if (emit(&s, symbol, s.line) < 0) goto fail;
            pos = e;
            continue;
        }
        /* An operator: the first of the pattern's operators that matches here, else the
         * character alone (`[^\w\s]`). */
        PyObject *symbol = NULL;
        Py_ssize_t e = q + 1;
        for (Py_ssize_t i = 0; i < t->n_ops; i++) {
            Py_ssize_t n = t->op_len[i];
            if (t->ops[i][0] != c || q + n > s.length) continue;
            Py_ssize_t j = 1;
            while (j < n && at(&s, q + j) == t->ops[i][j]) j++;
            if (j == n) {
                symbol = PyTuple_GET_ITEM(t->operators, i);
                Py_INCREF(symbol);
                e = q + n;
                break;
            }
        }
        if (symbol == NULL) symbol = PyUnicode_FromOrdinal(c);
        if (emit(&s, symbol, s.line) < 0) goto fail;
        pos = e;
    }
    PyMem_Free(t);
    return PyLong_FromSsize_t(s.line);
fail:
    PyMem_Free(t);
    return NULL;
}

static PyMethodDef methods[] = {
    {"symbols", symbols, METH_VARARGS,
     "symbols(table, text, position, line, symbols, lines, last_lines) -> line reached"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "custodes.fingerprint._lex",
    "C accelerator of custodes.fingerprint.tokenize (same symbols as its Python path).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lex(void) {
    IDENTIFIER = PyUnicode_InternFromString("$");
    STRING = PyUnicode_InternFromString("\"");
    NUMBER = PyUnicode_InternFromString("0");
    LASTINDEX = PyUnicode_InternFromString("lastindex");
    SPAN = PyUnicode_InternFromString("span");
    if (IDENTIFIER == NULL || STRING == NULL || NUMBER == NULL || LASTINDEX == NULL ||
        SPAN == NULL)
        return NULL;
    return PyModule_Create(&module);
}
