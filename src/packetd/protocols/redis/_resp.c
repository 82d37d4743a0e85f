/* The optional C twin of packetd.protocols.redis.decoder._fast_command (issue 15): built with the compiled
 * build (setup.py), used by the decoder (decoder.FAST_COMMAND) when present, when its MAX_CAPTURE is the
 * decoder's, and when PACKETD_PURE is not 1.
 *
 * fast_command(b: bytes, pos: int, n: int, parts: list) -> tuple[int, int]: a whole command array at b[pos]
 * (`*N\r\n` then N times `$L\r\n<L bytes>\r\n`, all before n): (the offset after it, N); (0, 0) when it is
 * not all there or not plain, and the decoder's general parser takes it. The first three arguments are
 * stored in parts[0..2] as they are met (capped at MAX_CAPTURE bytes), also when a later one then gives
 * (0, 0): the same answers and the same stores as the Python function for the same arguments, which stays
 * the reference; tests/protocols/redis/test_fast_command.py runs every case through both.
 *
 * Numbers: a plain `-?[0-9]{1,18}` is read here; anything else between the type byte and the CRLF (a sign
 * `+`, spaces, underscores, more digits) goes to int() itself, so what Python accepts or refuses is
 * accepted or refused the same; a value past 64 bits is never a usable count or length (the Python
 * function gives (0, 0) for it too).
 *
 * Bounds: 0 <= pos and 0 <= n <= len(b) (the decoder passes n = len(b)), checked. Every read of d[i] has
 * i < n, or i < len for the CRLF search, which (as bytes.find) looks at the whole buffer. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_CAPTURE 128 /* decoder.MAX_CAPTURE: the decoder uses this twin only when they are equal */
#define MAX_ARGS 1024   /* the Python function's bound on N */

static PyObject *zero_pair; /* (0, 0) */

/* the offset of the first CRLF at or after `from` in d[0:len], or -1 (bytes.find(b"\r\n", from)) */
static Py_ssize_t find_crlf(const char *d, Py_ssize_t from, Py_ssize_t len)
{
    while (from + 1 < len) {
        const char *r = memchr(d + from, '\r', (size_t)(len - 1 - from));
        if (r == NULL)
            return -1;
        Py_ssize_t i = r - d;
        if (d[i + 1] == '\n')
            return i;
        from = i + 1;
    }
    return -1;
}

/* int(b[a:e]) into *out: 1; 0 when int() refuses it (ValueError) or it does not fit 64 bits; -1 with an
 * exception set on any other error */
static int read_int(const char *d, Py_ssize_t a, Py_ssize_t e, long long *out)
{
    if (e <= a)
        return 0; /* int(b"") */
    Py_ssize_t i = a;
    int neg = d[i] == '-';
    i += neg;
    if (i < e && e - i <= 18) {
        long long v = 0;
        Py_ssize_t k = i;
        for (; k < e; k++) {
            unsigned char c = (unsigned char)d[k];
            if (c < '0' || c > '9')
                break;
            v = v * 10 + (c - '0');
        }
        if (k == e) {
            *out = neg ? -v : v;
            return 1;
        }
    }
    /* not plain: int() decides */
    PyObject *raw = PyBytes_FromStringAndSize(d + a, e - a);
    if (raw == NULL)
        return -1;
    PyObject *num = PyNumber_Long(raw);
    Py_DECREF(raw);
    if (num == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(num, &overflow);
    Py_DECREF(num);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow)
        return 0;
    *out = v;
    return 1;
}

static PyObject *zero(void)
{
    Py_INCREF(zero_pair);
    return zero_pair;
}

static PyObject *fast_command(PyObject *self, PyObject *const *args, Py_ssize_t nargs_in)
{
    (void)self;
    if (nargs_in != 4) {
        PyErr_SetString(PyExc_TypeError, "fast_command(b, pos, n, parts) takes 4 arguments");
        return NULL;
    }
    PyObject *b = args[0], *parts = args[3];
    if (!PyBytes_Check(b)) {
        PyErr_SetString(PyExc_TypeError, "fast_command: b must be bytes");
        return NULL;
    }
    if (!PyList_Check(parts)) {
        PyErr_SetString(PyExc_TypeError, "fast_command: parts must be a list");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyLong_AsSsize_t(args[2]);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    const char *d = PyBytes_AS_STRING(b);
    Py_ssize_t len = PyBytes_GET_SIZE(b);
    if (pos < 0 || n < 0 || n > len) {
        PyErr_SetString(PyExc_ValueError, "fast_command: needs 0 <= pos and 0 <= n <= len(b)");
        return NULL;
    }
    Py_ssize_t j = find_crlf(d, pos, len);
    if (j < 0)
        return zero();
    long long count;
    int r = read_int(d, pos + 1, j, &count);
    if (r < 0)
        return NULL;
    if (r == 0 || count <= 0 || count > MAX_ARGS)
        return zero();
    Py_ssize_t p = j + 2;
    for (long long i = 0; i < count; i++) {
        if (p >= n || d[p] != '$')
            return zero();
        j = find_crlf(d, p, len);
        if (j < 0)
            return zero();
        long long blen;
        r = read_int(d, p + 1, j, &blen);
        if (r < 0)
            return NULL;
        if (r == 0)
            return zero();
        p = j + 2;
        /* blen < 2^63 and p <= len: p + blen + 2 cannot overflow once blen is checked against n */
        if (blen < 0 || blen > (long long)n || p + (Py_ssize_t)blen + 2 > n)
            return zero();
        Py_ssize_t end = p + (Py_ssize_t)blen;
        if (d[end] != '\r' || d[end + 1] != '\n')
            return zero();
        if (i < 3) {
            if (i >= PyList_GET_SIZE(parts)) {
                PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
                return NULL;
            }
            PyObject *kept = PyBytes_FromStringAndSize(d + p, blen > MAX_CAPTURE ? MAX_CAPTURE : blen);
            if (kept == NULL)
                return NULL;
            PyObject *old = PyList_GET_ITEM(parts, i);
            PyList_SET_ITEM(parts, i, kept);
            Py_XDECREF(old);
        }
        p = end + 2;
    }
    return Py_BuildValue("(nL)", p, count);
}

static PyMethodDef methods[] = {
    {"fast_command", (PyCFunction)(void (*)(void))fast_command, METH_FASTCALL,
     "fast_command(b: bytes, pos: int, n: int, parts: list) -> tuple[int, int]: decoder._fast_command, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "packetd.protocols.redis._resp",
    "C twin of decoder._fast_command (optional).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__resp(void)
{
    zero_pair = Py_BuildValue("(ii)", 0, 0);
    if (zero_pair == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "MAX_CAPTURE", MAX_CAPTURE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
