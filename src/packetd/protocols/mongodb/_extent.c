/* The optional C twin of packetd.protocols.mongodb.decoder._structure_error (issue 15): built with the
 * compiled build (setup.py), used by decoder._check_structure when present and PACKETD_PURE is not 1.
 *
 * structure_error(doc: bytes) -> str: "" when every element of every array in `doc` lies inside its array
 * (and `doc` is one BSON document), else the reason, the same text as the Python function gives for the
 * same bytes. The Python function is the reference; tests/protocols/mongodb/test_structure.py runs every
 * case through both. Why the check exists, and why a sub-document without a 0x04 byte is passed as it is:
 * see the comment above _structure_error in decoder.py.
 *
 * Every offset is a Py_ssize_t inside [0, n]; every read of doc[i] is preceded by a test that i < end <= n
 * (the container's terminating NUL, itself inside the buffer). The stack of open containers holds at most
 * n / 5 + 1 entries (a container is at least 5 bytes): on the C stack up to LOCAL_DEPTH, else one
 * PyMem_Malloc of that bound. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define LOCAL_DEPTH 64

/* per type byte: the value's size when fixed (>= 0), or a code of its variable-size kind */
enum { STRING = -1, NESTED = -2, BINARY = -3, REGEX = -4, POINTER = -5, SCOPED = -6, UNKNOWN = -9 };
static signed char kinds[256];
static PyObject *empty; /* "" */

static Py_ssize_t i32(const unsigned char *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (Py_ssize_t)(int32_t)v;
}

/* the offset of the first `byte` in [from, to), or -1 (bytes.find's answer) */
static Py_ssize_t find(const unsigned char *d, unsigned char byte, Py_ssize_t from, Py_ssize_t to)
{
    if (from >= to)
        return -1;
    const unsigned char *hit = memchr(d + from, byte, (size_t)(to - from));
    return hit ? (Py_ssize_t)(hit - d) : -1;
}

/* decoder._string_end */
static Py_ssize_t string_end(const unsigned char *d, Py_ssize_t pos, Py_ssize_t end)
{
    if (pos + 4 > end)
        return -1;
    Py_ssize_t stop = pos + 4 + i32(d + pos);
    return (pos + 4 < stop && stop <= end && d[stop - 1] == 0) ? stop : -1;
}

/* the walk of decoder._structure_error; NULL when the document passes, else the reason (or, for an
 * unknown type, "" with *unknown set to its byte) */
static const char *walk(const unsigned char *d, Py_ssize_t n, Py_ssize_t *stack, int *unknown)
{
    Py_ssize_t depth = 0, end = n - 1, pos = 4;
    for (;;) {
        if (pos == end) { /* the container's terminating NUL */
            if (depth == 0)
                return NULL;
            end = stack[--depth];
            pos += 1;
            continue;
        }
        int code = d[pos];
        int kind = kinds[code];
        pos = find(d, 0, pos + 1, end) + 1; /* the value, after the element's name */
        if (pos == 0)
            return "bad element name";
        Py_ssize_t stop;
        if (kind >= 0) {
            stop = pos + kind;
        } else if (kind == STRING) {
            stop = pos + 4 <= end ? pos + 4 + i32(d + pos) : -1;
            if (stop <= pos + 4 || stop > end || d[stop - 1] != 0)
                return "bad element length";
        } else if (kind == NESTED || kind == SCOPED) {
            Py_ssize_t length = pos + 4 <= end ? i32(d + pos) : 0;
            stop = pos + length;
            if (kind == SCOPED) { /* int32 total, string, document ending with the total */
                Py_ssize_t scope = (length >= 14 && stop <= end) ? string_end(d, pos + 4, stop) : -1;
                if (scope < 0 || scope + 4 > stop || i32(d + scope) != stop - scope)
                    return "bad code-with-scope length";
                pos = scope;
                length = stop - scope;
            }
            if (length < 5 || stop > end || d[stop - 1] != 0)
                return "bad nested document length";
            if (code == 4 || find(d, 4, pos + 4, stop) >= 0) { /* an array, or one may be in it */
                stack[depth++] = end;
                end = stop - 1;
                pos += 4;
                continue;
            }
        } else if (kind == BINARY) { /* int32 length, subtype, bytes (subtype 2: an inner int32 first) */
            Py_ssize_t length = pos + 5 <= end ? i32(d + pos) : -1;
            stop = (length >= 0 && (d[pos + 4] != 2 || length >= 4)) ? pos + 5 + length : -1;
        } else if (kind == REGEX) { /* pattern and options, two cstrings */
            Py_ssize_t first = find(d, 0, pos, end);
            stop = first >= 0 ? find(d, 0, first + 1, end) + 1 : -1;
        } else if (kind == POINTER) { /* string, 12-byte ObjectId */
            stop = string_end(d, pos, end);
            stop = stop >= 0 ? stop + 12 : -1;
        } else {
            *unknown = code;
            return "";
        }
        if (stop <= 0 || stop > end)
            return "bad element length";
        pos = stop;
    }
}

static PyObject *structure_error(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "structure_error() takes bytes");
        return NULL;
    }
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    if (n < 5 || i32(d) != n || d[n - 1] != 0)
        return PyUnicode_FromString("bad document length");
    if (find(d, 4, 4, n) < 0) {
        Py_INCREF(empty);
        return empty;
    }
    Py_ssize_t local[LOCAL_DEPTH], *stack = local;
    Py_ssize_t bound = n / 5 + 1;
    if (bound > LOCAL_DEPTH) {
        stack = PyMem_Malloc((size_t)bound * sizeof(Py_ssize_t));
        if (stack == NULL)
            return PyErr_NoMemory();
    }
    int unknown = -1;
    const char *why = walk(d, n, stack, &unknown);
    if (stack != local)
        PyMem_Free(stack);
    if (why == NULL) {
        Py_INCREF(empty);
        return empty;
    }
    if (unknown >= 0)
        return PyUnicode_FromFormat("unknown element type %d", unknown);
    return PyUnicode_FromString(why);
}

static PyMethodDef methods[] = {
    {"structure_error", structure_error, METH_O,
     "structure_error(doc: bytes) -> str: decoder._structure_error, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "packetd.protocols.mongodb._extent",
    "C twin of decoder._structure_error (optional).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__extent(void)
{
    static const struct { int code, kind; } table[] = {
        {1, 8}, {6, 0}, {7, 12}, {8, 1}, {9, 8}, {10, 0}, {16, 4}, {17, 8}, {18, 8}, {19, 16}, {127, 0},
        {255, 0}, {2, STRING}, {13, STRING}, {14, STRING}, {3, NESTED}, {4, NESTED}, {5, BINARY},
        {11, REGEX}, {12, POINTER}, {15, SCOPED},
    };
    for (int i = 0; i < 256; i++)
        kinds[i] = UNKNOWN;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        kinds[table[i].code] = (signed char)table[i].kind;
    empty = PyUnicode_FromString("");
    if (empty == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
