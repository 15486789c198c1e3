/* proctrace.model._fastredact: the redaction's first question, compiled.
 *
 * Every exec's command line is redacted before anything else sees it
 * (tracer/model/redact.py), and nearly every command line holds no hint of a
 * secret: no keyword of a secret's name, no "://". Redactor.argv asks that
 * first, with one regular expression over the arguments joined and
 * lower-cased; on a storm that one search cost ~0.4 us an exec, most of the
 * redaction. This module answers the same question by scanning the arguments
 * where they lie.
 *
 * The keywords are redact.py's HINT_WORDS, given once by configure(): the
 * rule has one home, and tests/test_redact.py compares the answers of both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#define MAX_WORDS 32
#define MAX_WORD_LEN 32

static struct {
    int count;
    Py_ssize_t len[MAX_WORDS];
    unsigned char word[MAX_WORDS][MAX_WORD_LEN]; /* lower-case, as given */
    unsigned char starts[256];                   /* a word starts with this (lower-case) byte */
} W;

/* bytes.lower(): ASCII letters only. */
static inline unsigned char
lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int
holds_word(const unsigned char *text, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = lower(text[i]);
        if (!W.starts[c])
            continue;
        for (int w = 0; w < W.count; w++) {
            Py_ssize_t len = W.len[w];
            if (W.word[w][0] != c || len > n - i)
                continue;
            Py_ssize_t j = 1;
            while (j < len && lower(text[i + j]) == W.word[w][j])
                j++;
            if (j == len)
                return 1;
        }
    }
    return 0;
}

/* hint(argv: list[bytes]) -> bool: whether some argument, lower-cased, holds a
 * word, as HINT.search(b"\0".join(argv).lower()) answers (no word holds a NUL,
 * so none spans two arguments). */
static PyObject *
fastredact_hint(PyObject *self, PyObject *argv)
{
    if (!PyList_Check(argv)) {
        PyErr_SetString(PyExc_TypeError, "hint(argv: list[bytes])");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(argv); i++) {
        PyObject *arg = PyList_GET_ITEM(argv, i);
        if (!PyBytes_Check(arg)) {
            PyErr_SetString(PyExc_TypeError, "hint(argv: list[bytes])");
            return NULL;
        }
        if (holds_word((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)))
            Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

/* configure(words: tuple[bytes, ...]): the words hint() looks for, lower-case. */
static PyObject *
fastredact_configure(PyObject *self, PyObject *words)
{
    if (!PyTuple_Check(words) || PyTuple_GET_SIZE(words) > MAX_WORDS) {
        PyErr_SetString(PyExc_ValueError, "configure(words): a tuple of at most 32 words");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(words);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *word = PyTuple_GET_ITEM(words, i);
        if (!PyBytes_Check(word) || PyBytes_GET_SIZE(word) == 0 || PyBytes_GET_SIZE(word) > MAX_WORD_LEN) {
            PyErr_SetString(PyExc_ValueError, "configure(words): each word 1 to 32 bytes");
            return NULL;
        }
        const unsigned char *text = (const unsigned char *)PyBytes_AS_STRING(word);
        for (Py_ssize_t j = 0; j < PyBytes_GET_SIZE(word); j++) {
            if (text[j] != lower(text[j])) {
                PyErr_SetString(PyExc_ValueError, "configure(words): the words are lower-case");
                return NULL;
            }
        }
    }
    memset(&W, 0, sizeof W);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *word = PyTuple_GET_ITEM(words, i);
        W.len[i] = PyBytes_GET_SIZE(word);
        memcpy(W.word[i], PyBytes_AS_STRING(word), (size_t)W.len[i]);
        W.starts[W.word[i][0]] = 1;
    }
    W.count = (int)count;
    Py_RETURN_NONE;
}

static PyMethodDef fastredact_methods[] = {
    {"hint", fastredact_hint, METH_O, "Whether some argument may hold a secret (Redactor.argv's first test)."},
    {"configure", fastredact_configure, METH_O, "The lower-case words hint() looks for."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastredact_module = {
    PyModuleDef_HEAD_INIT, "proctrace.model._fastredact",
    "The redaction's first test, compiled (tracer/model/redact.py is the reference).", -1, fastredact_methods,
};

PyMODINIT_FUNC
PyInit__fastredact(void)
{
    return PyModule_Create(&fastredact_module);
}
