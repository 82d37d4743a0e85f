/* The common case of PacketDecoder.decode in C (issue 15): an optional accelerator, never the reference.
 *
 * net/packet.py is the reference and stays whole. This module reads only what nearly every frame is:
 *
 *     Ethernet [VLAN tags] | Linux SLL/SLL2 [VLAN tags] | NULL/LOOP | raw IP
 *       -> IPv4 (any IHL, not a fragment) or IPv6 (no extension header)
 *       -> TCP or UDP
 *
 * and builds the same Segment packet.py builds, by calling the Segment class given to init(). Everything
 * else (a short or malformed header, a fragment, AH, an IPv6 extension header, PPPoE/MPLS, a non-IP frame,
 * an SLL loopback duplicate, an IP version filtered out, an unknown link type, a buffer we cannot read)
 * returns None, which means "not decoded here": packet.py then decodes the frame itself and counts it.
 * So this code never raises on input, never counts, and only has to be right where it returns a Segment;
 * tests/net/test_cext.py checks that it is (the same Segments and NetStats as the pure path) on every
 * corpus capture, truncations at every length and crafted edge cases.
 *
 * Every read is checked against the captured length before it is made. The frame's buffer is released
 * before the Segment class is called (its __init__ may be Python code).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define PROTO_TCP 6
#define PROTO_UDP 17
#define TCP_SYN 0x02
#define MAX_WSCALE 14 /* RFC 7323 §2.3 */
#define IPV_4 1       /* decode()'s `ipv` argument: IPv4 / IPv6 wanted (PacketDecoder's ip_versions) */
#define IPV_6 2

#define U16(p) ((unsigned)(p)[0] << 8 | (unsigned)(p)[1])
#define U32(p) ((uint32_t)(p)[0] << 24 | (uint32_t)(p)[1] << 16 | (uint32_t)(p)[2] << 8 | (uint32_t)(p)[3])

static PyObject *segment_type; /* packet.Segment, from init() */

/* What a decoded frame becomes: offsets into the frame and the header fields. */
typedef struct {
    int proto;
    Py_ssize_t addr, alen; /* source address at addr, destination right after it; 4 or 16 bytes each */
    Py_ssize_t l4;         /* the transport header: its first 4 bytes (the ports) end the flow key */
    Py_ssize_t start, end; /* the payload, as packet.py slices it (start > end: empty) */
    long sport, dport, flags, window, wscale;
    unsigned long seq, ack;
} seg_t;

/* packet._wscale: the window scale shift in the TCP options between off and end (end <= the frame's
 * length), or -1 without one. */
static long wscale(const unsigned char *d, Py_ssize_t off, Py_ssize_t end)
{
    while (off < end) {
        unsigned kind = d[off];
        if (kind == 0)
            break;
        if (kind == 1) {
            off++;
            continue;
        }
        if (off + 1 >= end)
            break;
        unsigned size = d[off + 1];
        if (size < 2)
            break;
        if (kind == 3 && size == 3 && off + 2 < end)
            return d[off + 2] < MAX_WSCALE ? d[off + 2] : MAX_WSCALE;
        off += size;
    }
    return -1;
}

/* packet.PacketDecoder._l4: the TCP or UDP header at l4; end is where the capture stops, wire where the
 * IP packet does. */
static int transport(const unsigned char *d, Py_ssize_t n, int proto, Py_ssize_t l4, Py_ssize_t end,
                     Py_ssize_t wire, seg_t *s)
{
    s->proto = proto;
    s->l4 = l4;
    if (proto == PROTO_TCP) {
        if (l4 + 14 > n)
            return 0;
        unsigned doff = d[l4 + 12];
        Py_ssize_t start = l4 + ((Py_ssize_t)(doff >> 4) << 2);
        if (start > wire || doff < 0x50)
            return 0;
        s->sport = U16(d + l4);
        s->dport = U16(d + l4 + 2);
        s->seq = U32(d + l4 + 4);
        s->ack = U32(d + l4 + 8);
        s->flags = d[l4 + 13];
        s->window = l4 + 16 <= n ? (long)U16(d + l4 + 14) : -1;
        s->wscale = s->flags & TCP_SYN ? wscale(d, l4 + 20, start < n ? start : n) : -1;
        s->start = start;
        s->end = end;
        return 1;
    }
    if (proto == PROTO_UDP) {
        if (l4 + 6 > n)
            return 0;
        Py_ssize_t ulen = U16(d + l4 + 4);
        if (ulen < 8 || l4 + 8 > wire)
            return 0;
        s->sport = U16(d + l4);
        s->dport = U16(d + l4 + 2);
        s->seq = s->ack = 0;
        s->flags = 0;
        s->window = s->wscale = -1;
        s->start = l4 + 8;
        s->end = l4 + ulen < end ? l4 + ulen : end;
        return 1;
    }
    return 0;
}

/* packet.PacketDecoder._ipv4_general without fragments and AH. */
static int ipv4(const unsigned char *d, Py_ssize_t n, Py_ssize_t ip, seg_t *s)
{
    if (ip + 20 > n)
        return 0;
    unsigned vihl = d[ip];
    Py_ssize_t ihl = (Py_ssize_t)(vihl & 0x0F) << 2;
    Py_ssize_t total = U16(d + ip + 2);
    if (total == 0)
        total = n - ip; /* captured before segmentation offload */
    if (vihl >> 4 != 4 || ihl < 20 || total < ihl || U16(d + ip + 6) & 0x3FFF)
        return 0;
    Py_ssize_t wire = ip + total;
    s->addr = ip + 12;
    s->alen = 4;
    return transport(d, n, d[ip + 9], ip + ihl, wire < n ? wire : n, wire, s);
}

/* packet.PacketDecoder._ipv6 when TCP or UDP follows the fixed header. */
static int ipv6(const unsigned char *d, Py_ssize_t n, Py_ssize_t ip, seg_t *s)
{
    if (ip + 40 > n || d[ip] >> 4 != 6)
        return 0;
    Py_ssize_t plen = U16(d + ip + 4);
    Py_ssize_t wire = plen ? ip + 40 + plen : n; /* 0: a jumbogram or captured before offload */
    int nxt = d[ip + 6];
    if (nxt != PROTO_TCP && nxt != PROTO_UDP)
        return 0;
    s->addr = ip + 8;
    s->alen = 16;
    return transport(d, n, nxt, ip + 40, wire < n ? wire : n, wire, s);
}

/* The link layer of packet.PacketDecoder.decode: 1 with *s filled, 0 for "decode it in Python". */
static int parse(const unsigned char *d, Py_ssize_t n, long linktype, long ipv, seg_t *s)
{
    Py_ssize_t off;
    unsigned ethertype;
    int tagged = 1; /* VLAN tags may follow */
    switch (linktype) {
    case 1: /* EN10MB */
        if (n < 14)
            return 0;
        ethertype = U16(d + 12);
        off = 14;
        break;
    case 113: /* LINUX_SLL: an outgoing copy on a loopback device is a duplicate, counted in Python */
        if (n < 16 || (U16(d) == 4 && U16(d + 2) == 772))
            return 0;
        ethertype = U16(d + 14);
        off = 16;
        break;
    case 276: /* LINUX_SLL2: the same */
        if (n < 20 || (d[10] == 4 && U16(d + 8) == 772))
            return 0;
        ethertype = U16(d);
        off = 20;
        break;
    case 12: case 14: case 101: case 228: case 229: /* raw IP */
        if (n < 1)
            return 0;
        off = 0;
        ethertype = d[0] >> 4 == 4 ? 0x0800 : d[0] >> 4 == 6 ? 0x86DD : 0;
        tagged = 0;
        break;
    case 0: case 108: { /* NULL (host byte order), LOOP (big-endian): the BSD address family */
        if (n < 4)
            return 0;
        uint32_t af = U32(d);
        if (linktype == 0) {
            uint32_t le = (uint32_t)d[3] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[1] << 8 | d[0];
            if (le <= 0xFFFF) /* else written by a big-endian host */
                af = le;
        }
        off = 4;
        ethertype = af == 2 ? 0x0800 : (af == 24 || af == 28 || af == 30) ? 0x86DD : 0;
        tagged = 0;
        break;
    }
    default:
        return 0;
    }
    while (tagged && (ethertype == 0x8100 || ethertype == 0x88A8 || ethertype == 0x9100)) {
        if (off + 4 > n)
            return 0;
        ethertype = U16(d + off + 2);
        off += 4;
    }
    if (ethertype == 0x0800)
        return ipv & IPV_4 ? ipv4(d, n, off, s) : 0;
    if (ethertype == 0x86DD)
        return ipv & IPV_6 ? ipv6(d, n, off, s) : 0;
    return 0;
}

/* decode(ts_ns, linktype, data, ipv) -> Segment | None */
static PyObject *decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "decode(ts_ns, linktype, data, ipv) takes 4 arguments");
        return NULL;
    }
    long linktype = PyLong_AsLong(args[1]);
    long ipv = PyLong_AsLong(args[3]);
    if ((linktype == -1 || ipv == -1) && PyErr_Occurred()) {
        PyErr_Clear(); /* not an int: Python's path says what is wrong with it */
        Py_RETURN_NONE;
    }
    if (segment_type == NULL)
        Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear(); /* a released or non-contiguous buffer: Python's path raises or reads it */
        Py_RETURN_NONE;
    }
    const unsigned char *d = view.buf;
    seg_t s;
    if (!parse(d, view.len, linktype, ipv, &s)) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    PyObject *src = PyBytes_FromStringAndSize((const char *)d + s.addr, s.alen);
    PyObject *dst = PyBytes_FromStringAndSize((const char *)d + s.addr + s.alen, s.alen);
    PyObject *key = PyBytes_FromStringAndSize(NULL, 2 * s.alen + 4);
    if (key != NULL) { /* src + dst + sport + dport, as they are on the wire */
        memcpy(PyBytes_AS_STRING(key), d + s.addr, 2 * s.alen);
        memcpy(PyBytes_AS_STRING(key) + 2 * s.alen, d + s.l4, 4);
    }
    PyBuffer_Release(&view);
    PyObject *argv[13] = {
        args[0],
        PyLong_FromLong(s.proto),
        src,
        dst,
        PyLong_FromLong(s.sport),
        PyLong_FromLong(s.dport),
        PyLong_FromUnsignedLong(s.seq),
        PyLong_FromUnsignedLong(s.ack),
        PyLong_FromLong(s.flags),
        PySequence_GetSlice(args[2], s.start, s.end), /* data[start:end]: a view, never a copy */
        key,
        PyLong_FromLong(s.window),
        PyLong_FromLong(s.wscale),
    };
    PyObject *segment = NULL;
    int i;
    for (i = 1; i < 13 && argv[i] != NULL; i++)
        ;
    if (i == 13)
        segment = PyObject_Vectorcall(segment_type, argv, 13, NULL);
    for (i = 1; i < 13; i++)
        Py_XDECREF(argv[i]);
    return segment; /* NULL only when memory ran out or Segment raised: that propagates */
}

/* init(Segment): the class decode() builds (packet.py passes its own, so both paths build one type). */
static PyObject *init(PyObject *module, PyObject *cls)
{
    (void)module;
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "init() takes the Segment class");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(segment_type, cls);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", (PyCFunction)(void (*)(void))decode, METH_FASTCALL,
     "decode(ts_ns, linktype, data, ipv) -> Segment | None: the common case of PacketDecoder.decode; None "
     "means the frame is Python's to decode (and count)."},
    {"init", init, METH_O, "init(Segment): the class decode() builds."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "packetd.net._packet", "C accelerator of packetd.net.packet (optional).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__packet(void)
{
    return PyModule_Create(&module_def);
}
