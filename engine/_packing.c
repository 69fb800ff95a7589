/* The passes over many actors' attributes that a checkpoint makes (engine._columns):
 * attributes column by column, numbers into arrays, containers of numbers flattened and
 * rebuilt, rows back into dicts. engine/_columns.py holds a Python equivalent of each,
 * used when this module could not be built, and the tests compare their results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_buffers.h"

/* --- an instance's own attributes, read without building its __dict__ ------------------
 *
 * On CPython 3.11 an instance keeps its attributes in a values array next to it, keyed by
 * its class's shared keys, until something asks for its __dict__: that builds a dict, and
 * from then on every attribute access of the instance takes a slower path (the specializing
 * interpreter's instance-value fast path no longer applies). A checkpoint reading each
 * actor's __dict__ made every later tick of PHOLD 20 to 35% slower. So on 3.11 the
 * attributes are read from the values array, with the interpreter's own layout
 * (Include/internal): `order` is the insertion order kept before the values, as dict
 * iteration uses it. Other versions read the __dict__ (3.13 keeps the fast path with a
 * dict; 3.12 is not handled yet). */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define INSTANCE_VALUES 1
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include "internal/pycore_dict.h"

typedef struct {
    PyObject *me_key;
    PyObject *me_value;
} unicode_entry; /* PyDictUnicodeEntry: the entries of split keys */

/* The split keys shared by the instances of ``tp``, or NULL when it has none. */
static PyDictKeysObject *shared_keys(PyTypeObject *tp)
{
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) || !(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return NULL;
    PyDictKeysObject *keys = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (keys == NULL || keys->dk_kind != DICT_KEYS_SPLIT)
        return NULL;
    return keys;
}

static unicode_entry *entries_of(PyDictKeysObject *keys)
{
    return (unicode_entry *)(keys->dk_indices + ((size_t)1 << keys->dk_log2_index_bytes));
}

/* The instance's values array, or NULL when its dict was built (or it has none). */
static PyObject **values_of(PyObject *obj)
{
    PyDictValues *values = *(((PyDictValues **)obj) - 4);
    return values == NULL ? NULL : values->values;
}

/* How many attributes the values array holds, and the index of the k-th inserted one. */
static Py_ssize_t values_count(PyObject **values) { return ((uint8_t *)values)[-2]; }
static Py_ssize_t values_order(PyObject **values, Py_ssize_t k)
{
    return ((uint8_t *)values)[-3 - k];
}
#endif

/* names(obj): the names of an instance's own attributes in the order its __dict__ would
 * give them, without building the __dict__ where it is not built yet (3.11). */
static PyObject *names(PyObject *module, PyObject *obj)
{
#ifdef INSTANCE_VALUES
    PyDictKeysObject *keys = shared_keys(Py_TYPE(obj));
    PyObject **values = keys != NULL ? values_of(obj) : NULL;
    if (values != NULL) {
        Py_ssize_t m = values_count(values);
        PyObject *out = PyList_New(m);
        if (out == NULL)
            return NULL;
        unicode_entry *entries = entries_of(keys);
        for (Py_ssize_t k = 0; k < m; k++) {
            Py_ssize_t ix = values_order(values, k);
            if (ix >= keys->dk_nentries || entries[ix].me_key == NULL) {
                Py_DECREF(out);
                PyErr_SetString(PyExc_RuntimeError, "an instance's values are not as expected");
                return NULL;
            }
            PyList_SET_ITEM(out, k, Py_NewRef(entries[ix].me_key));
        }
        return out;
    }
#endif
    PyObject *d = PyObject_GenericGetDict(obj, NULL);
    if (d == NULL)
        return NULL;
    PyObject *out = PyDict_Keys(d);
    Py_DECREF(d);
    return out;
}

/* same_item(dicts, name, value): whether every dict of the list maps name to value itself
 * (the same object); KeyError when one lacks name. */
static PyObject *same_item(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "same_item(dicts, name, value)");
        return NULL;
    }
    PyObject *dicts = args[0], *name = args[1], *value = args[2];
    Py_ssize_t n = PyList_GET_SIZE(dicts);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyList_GET_ITEM(dicts, i);
        if (!PyDict_Check(d)) {
            PyErr_SetString(PyExc_TypeError, "same_item() takes a list of dicts");
            return NULL;
        }
        PyObject *v = PyDict_GetItemWithError(d, name); /* a str's hash is cached */
        if (v == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, name);
            return NULL;
        }
        if (v != value)
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

/* numbers(values, kind, out): the list's values into the writable buffer ``out`` (int64
 * for int, float64 for float, one byte for bool), when every value is exactly of type
 * ``kind`` (and ints fit in 64 bits). Returns 0 when one is not (out is then garbage),
 * 2 when every value has the same bits, else 1. */
static PyObject *numbers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "numbers(values, kind, out)");
        return NULL;
    }
    PyObject *values = args[0];
    PyTypeObject *kind = (PyTypeObject *)args[1];
    int width = kind == &PyBool_Type ? 1 : 8;
    if (kind != &PyLong_Type && kind != &PyFloat_Type && kind != &PyBool_Type) {
        PyErr_SetString(PyExc_TypeError, "numbers() takes int, float or bool");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(values);
    Py_buffer view;
    if (writable(args[2], &view, n * width) < 0)
        return NULL;
    long result = 2;
    uint64_t *words = view.buf;
    char *bytes = view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (Py_TYPE(v) != kind) {
            result = 0;
            break;
        }
        if (kind == &PyBool_Type) {
            bytes[i] = v == Py_True;
            if (bytes[i] != bytes[0])
                result = 1;
            continue;
        }
        if (kind == &PyFloat_Type) {
            double d = PyFloat_AS_DOUBLE(v);
            memcpy(&words[i], &d, 8);
        }
        else {
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow) {
                result = 0;
                break;
            }
            words[i] = (uint64_t)x;
        }
        if (words[i] != words[0])
            result = 1;
    }
    PyBuffer_Release(&view);
    return PyLong_FromLong(result);
}

/* One output column of flatten: a list of the items, or, when asked and the first item
 * is an exact int, float or bool, their numbers (as numbers() writes them) in a
 * bytearray. ``failed`` says a later item did not fit (flatten then starts again). */
typedef struct {
    PyObject *list, *data, *first;
    PyTypeObject *kind;
    int same, failed;
} out_column;

static int column_open(out_column *c, Py_ssize_t total, PyObject *first, int numeric)
{
    memset(c, 0, sizeof(*c));
    PyTypeObject *t = first != NULL ? Py_TYPE(first) : NULL;
    if (numeric && (t == &PyLong_Type || t == &PyFloat_Type || t == &PyBool_Type)) {
        c->kind = t;
        c->first = first;
        c->same = 1;
        c->data = PyByteArray_FromStringAndSize(NULL, total * (t == &PyBool_Type ? 1 : 8));
        return c->data == NULL ? -1 : 0;
    }
    c->list = PyList_New(total);
    return c->list == NULL ? -1 : 0;
}

static void column_put(out_column *c, Py_ssize_t at, PyObject *x)
{
    if (c->list != NULL) {
        PyList_SET_ITEM(c->list, at, Py_NewRef(x));
        return;
    }
    if (c->failed)
        return;
    if (Py_TYPE(x) != c->kind) {
        c->failed = 1;
        return;
    }
    char *bytes = PyByteArray_AS_STRING(c->data);
    if (c->kind == &PyBool_Type) {
        bytes[at] = x == Py_True;
        if (bytes[at] != bytes[0])
            c->same = 0;
        return;
    }
    uint64_t *words = (uint64_t *)bytes, w;
    if (c->kind == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(x);
        memcpy(&w, &d, 8);
    }
    else {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
        if (overflow) {
            c->failed = 1;
            return;
        }
        w = (uint64_t)v;
    }
    words[at] = w;
    if (w != words[0])
        c->same = 0;
}

/* The column as flatten returns it: the list, or (kind, data, same, first). */
static PyObject *column_close(out_column *c)
{
    if (c->list != NULL)
        return c->list;
    PyObject *out = PyTuple_Pack(4, (PyObject *)c->kind, c->data, c->same ? Py_True : Py_False,
                                 c->first);
    Py_DECREF(c->data);
    return out;
}

static void column_drop(out_column *c)
{
    Py_XDECREF(c->list);
    Py_XDECREF(c->data);
}

/* flatten(values, kind, refs[, numeric]): for a list of lists, tuples or dicts, exactly of
 * type ``kind``: (lengths, items) or, for dicts, (lengths, keys, items), the items of every
 * container in order, and lengths a bytes of int64. Lists and dicts must have exactly
 * ``refs`` references (their owner's and the list's: nothing else shares them). None
 * when a value is not of that type or is shared. With ``numeric``, a column whose items
 * are all exact ints (of 64 bits), floats or bools, as its first one is, comes as
 * (type, bytearray of their numbers, whether all are the first's bits, the first item)
 * rather than a list: one pass less over them. */
static PyObject *flatten(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if ((nargs != 3 && nargs != 4) || !PyList_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "flatten(values, kind, refs[, numeric])");
        return NULL;
    }
    PyObject *values = args[0];
    PyTypeObject *kind = (PyTypeObject *)args[1];
    Py_ssize_t refs = PyLong_AsSsize_t(args[2]);
    if (refs == -1 && PyErr_Occurred())
        return NULL;
    int numeric = nargs == 4 ? PyObject_IsTrue(args[3]) : 0;
    if (numeric < 0)
        return NULL;
    int is_dict = kind == &PyDict_Type, mutable = kind != &PyTuple_Type;
    if (!is_dict && kind != &PyList_Type && kind != &PyTuple_Type) {
        PyErr_SetString(PyExc_TypeError, "flatten() takes list, tuple or dict");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(values), total = 0;
    PyObject *first_key = NULL, *first_item = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (Py_TYPE(v) != kind || (mutable && Py_REFCNT(v) != refs))
            Py_RETURN_NONE;
        Py_ssize_t m = is_dict ? PyDict_GET_SIZE(v) : Py_SIZE(v);
        if (m && first_item == NULL) {
            if (is_dict) {
                Py_ssize_t pos = 0;
                PyDict_Next(v, &pos, &first_key, &first_item);
            }
            else
                first_item = kind == &PyList_Type ? PyList_GET_ITEM(v, 0) : PyTuple_GET_ITEM(v, 0);
        }
        total += m;
    }
again:;
    out_column keys, items;
    memset(&keys, 0, sizeof(keys));
    PyObject *lengths = PyBytes_FromStringAndSize(NULL, n * 8);
    if (lengths == NULL || (is_dict && column_open(&keys, total, first_key, numeric) < 0)
        || column_open(&items, total, first_item, numeric) < 0) {
        Py_XDECREF(lengths);
        column_drop(&keys);
        return NULL;
    }
    int64_t *len = (int64_t *)PyBytes_AS_STRING(lengths);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (is_dict) {
            Py_ssize_t pos = 0;
            PyObject *k, *x;
            len[i] = PyDict_GET_SIZE(v);
            while (PyDict_Next(v, &pos, &k, &x)) {
                column_put(&keys, at, k);
                column_put(&items, at++, x);
            }
        }
        else {
            Py_ssize_t m = Py_SIZE(v);
            PyObject **src = kind == &PyList_Type ? ((PyListObject *)v)->ob_item
                                                  : ((PyTupleObject *)v)->ob_item;
            len[i] = m;
            for (Py_ssize_t j = 0; j < m; j++)
                column_put(&items, at++, src[j]);
        }
    }
    if (keys.failed || items.failed) { /* numbers of mixed types: as lists, once more */
        Py_DECREF(lengths);
        column_drop(&keys);
        column_drop(&items);
        numeric = 0;
        goto again;
    }
    PyObject *k_out = is_dict ? column_close(&keys) : NULL, *i_out = column_close(&items);
    PyObject *result = NULL;
    if (i_out != NULL && (!is_dict || k_out != NULL))
        result = is_dict ? PyTuple_Pack(3, lengths, k_out, i_out)
                         : PyTuple_Pack(2, lengths, i_out);
    Py_DECREF(lengths);
    Py_XDECREF(k_out);
    Py_XDECREF(i_out);
    return result;
}

/* columns(dicts, names): for a list of dicts that all hold exactly the keys ``names`` (a
 * tuple): (values, same), the list of the dicts' values for each name, and for each name
 * whether every dict holds the first one's object itself. None when a dict is not exactly
 * a dict or has other keys. One pass: each dict is read from memory once. */
static PyObject *columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "columns(dicts, names)");
        return NULL;
    }
    PyObject *dicts = args[0], *names = args[1];
    Py_ssize_t n = PyList_GET_SIZE(dicts), m = PyTuple_GET_SIZE(names);
    PyObject *values = PyList_New(m), *result = NULL;
    char *same = PyMem_Malloc(m + 1);
    if (values == NULL || same == NULL)
        goto done;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *column = PyList_New(n);
        if (column == NULL)
            goto done;
        PyList_SET_ITEM(values, j, column);
        same[j] = 1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyList_GET_ITEM(dicts, i);
        if (!PyDict_CheckExact(d) || PyDict_GET_SIZE(d) != m) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            PyObject *v = PyDict_GetItemWithError(d, PyTuple_GET_ITEM(names, j));
            if (v == NULL) {
                if (!PyErr_Occurred())
                    result = Py_NewRef(Py_None);
                goto done;
            }
            PyObject *column = PyList_GET_ITEM(values, j);
            PyList_SET_ITEM(column, i, Py_NewRef(v));
            if (v != PyList_GET_ITEM(column, 0))
                same[j] = 0;
        }
    }
    PyObject *flags = PyTuple_New(m);
    if (flags == NULL)
        goto done;
    for (Py_ssize_t j = 0; j < m; j++)
        PyTuple_SET_ITEM(flags, j, PyBool_FromLong(same[j]));
    result = PyTuple_Pack(2, values, flags);
    Py_DECREF(flags);
done:
    Py_XDECREF(values);
    PyMem_Free(same);
    return result;
}

/* One value of column j at row i: a column holds no list while every value so far is the
 * first one itself (``first[j]``); the first different value makes it. */
static int put(PyObject *values, PyObject **first, Py_ssize_t n, Py_ssize_t i, Py_ssize_t j,
               PyObject *v)
{
    if (i == 0) {
        first[j] = v;
        return 0;
    }
    PyObject *column = PyList_GET_ITEM(values, j);
    if (column == Py_None) {
        if (v == first[j])
            return 0;
        if ((column = PyList_New(n)) == NULL)
            return -1;
        for (Py_ssize_t k = 0; k < i; k++)
            PyList_SET_ITEM(column, k, Py_NewRef(first[j]));
        PyList_SetItem(values, j, column); /* drops the None */
    }
    PyList_SET_ITEM(column, i, Py_NewRef(v));
    return 0;
}

/* attributes(actors, names): for the actors' own attributes, read without building their
 * __dict__ where it is not built yet (3.11), in one pass over the actors: (values, same),
 * or None when an actor's attributes are not exactly ``names``. ``values`` holds each
 * name's column, a list of every actor's value, or [value] when every actor holds that
 * one object (``same`` then says True). */
static PyObject *attributes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "attributes(actors, names)");
        return NULL;
    }
    PyObject *actors = args[0], *names = args[1];
    Py_ssize_t n = PyList_GET_SIZE(actors), m = PyTuple_GET_SIZE(names);
    PyObject *values = PyList_New(m), *result = NULL;
    PyObject **first = PyMem_Calloc(m + 1, sizeof(PyObject *));
    Py_ssize_t *index = PyMem_Malloc((m + 1) * sizeof(Py_ssize_t));
    if (values == NULL || first == NULL || index == NULL)
        goto done;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyList_SET_ITEM(values, j, Py_NewRef(Py_None));
        index[j] = -1;
    }
    PyTypeObject *tp = n ? Py_TYPE(PyList_GET_ITEM(actors, 0)) : NULL;
#ifdef INSTANCE_VALUES
    PyDictKeysObject *keys = tp != NULL ? shared_keys(tp) : NULL;
    if (keys != NULL) { /* each name's place in the values arrays, -1 when not a key */
        unicode_entry *entries = entries_of(keys);
        for (Py_ssize_t j = 0; j < m; j++)
            for (Py_ssize_t ix = 0; ix < keys->dk_nentries; ix++)
                if (entries[ix].me_key == PyTuple_GET_ITEM(names, j)) {
                    index[j] = ix;
                    break;
                }
    }
#endif
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = PyList_GET_ITEM(actors, i);
#ifdef INSTANCE_VALUES
        PyObject **slots = keys != NULL && Py_TYPE(a) == tp ? values_of(a) : NULL;
        if (slots != NULL) {
            if (values_count(slots) != m)
                goto unlike;
            for (Py_ssize_t j = 0; j < m; j++) {
                PyObject *v = index[j] >= 0 ? slots[index[j]] : NULL;
                if (v == NULL)
                    goto unlike;
                if (put(values, first, n, i, j, v) < 0)
                    goto done;
            }
            continue;
        }
#endif
        PyObject *d = PyObject_GenericGetDict(a, NULL);
        if (d == NULL)
            goto done;
        if (!PyDict_CheckExact(d) || PyDict_GET_SIZE(d) != m) {
            Py_DECREF(d);
            goto unlike;
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            PyObject *v = PyDict_GetItemWithError(d, PyTuple_GET_ITEM(names, j));
            if (v == NULL || put(values, first, n, i, j, v) < 0) {
                Py_DECREF(d);
                if (PyErr_Occurred())
                    goto done;
                goto unlike;
            }
        }
        Py_DECREF(d);
    }
    PyObject *flags = PyTuple_New(m);
    if (flags == NULL)
        goto done;
    for (Py_ssize_t j = 0; j < m; j++) {
        int same = PyList_GET_ITEM(values, j) == Py_None;
        PyTuple_SET_ITEM(flags, j, PyBool_FromLong(same));
        if (same) { /* the objects are alive: the actors hold them */
            PyObject *one = n ? PyList_New(1) : PyList_New(0);
            if (one == NULL) {
                Py_DECREF(flags);
                goto done;
            }
            if (n)
                PyList_SET_ITEM(one, 0, Py_NewRef(first[j]));
            PyList_SetItem(values, j, one);
        }
    }
    result = PyTuple_Pack(2, values, flags);
    Py_DECREF(flags);
    goto done;
unlike:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(values);
    PyMem_Free(first);
    PyMem_Free(index);
    return result;
}

/* live(items): (the items that are not None, their distinct types in order of first
 * appearance), in one pass. */
static PyObject *live(PyObject *module, PyObject *items)
{
    if (!PyList_Check(items)) {
        PyErr_SetString(PyExc_TypeError, "live(list)");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items), count = 0;
    PyObject *out = PyList_New(n), *kinds = PyList_New(0), *last = NULL, *result = NULL;
    if (out == NULL || kinds == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PyList_GET_ITEM(items, i);
        if (x == Py_None)
            continue;
        PyList_SET_ITEM(out, count++, Py_NewRef(x));
        PyObject *kind = (PyObject *)Py_TYPE(x);
        if (kind != last) {
            int known = PySequence_Contains(kinds, kind);
            if (known < 0 || (!known && PyList_Append(kinds, kind) < 0))
                goto done;
            last = kind;
        }
    }
    if (PyList_SetSlice(out, count, n, NULL) < 0)
        goto done;
    result = PyTuple_Pack(2, out, kinds);
done:
    Py_XDECREF(out);
    Py_XDECREF(kinds);
    return result;
}

/* hashes(set, out): the hashes of the set's items, as the set keeps them, into the int64
 * buffer ``out`` of its length; the items themselves are not read. */
static PyObject *hashes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyAnySet_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "hashes(set, out)");
        return NULL;
    }
    PyObject *source = args[0], *key;
    Py_ssize_t n = PySet_GET_SIZE(source), got = 0, pos = 0;
    Py_buffer view;
    if (writable(args[1], &view, n * 8) < 0)
        return NULL;
    int64_t *out = view.buf;
#if PY_VERSION_HEX < 0x030D0000
    Py_hash_t hash;
    while (got < n && _PySet_NextEntry(source, &pos, &key, &hash))
        out[got++] = hash;
#else /* no _PySet_NextEntry to rely on: the items are hashed again */
    (void)pos;
    PyObject *it = PyObject_GetIter(source);
    if (it == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    while (got < n && (key = PyIter_Next(it)) != NULL) {
        Py_hash_t hash = PyObject_Hash(key);
        Py_DECREF(key);
        if (hash == -1 && PyErr_Occurred())
            break;
        out[got++] = hash;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        PyBuffer_Release(&view);
        return NULL;
    }
#endif
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* item_ints(rows, start, index, out): int(rows[i][index]) for every tuple of the list
 * from ``start`` on, into the int32 buffer ``out``. */
static PyObject *item_ints(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "item_ints(rows, start, index, out)");
        return NULL;
    }
    PyObject *rows = args[0];
    Py_ssize_t start = PyLong_AsSsize_t(args[1]), index = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows) - start;
    if (start < 0 || index < 0 || n < 0) {
        PyErr_SetString(PyExc_ValueError, "item_ints(): start or index out of range");
        return NULL;
    }
    Py_buffer view;
    if (writable(args[3], &view, n * 4) < 0)
        return NULL;
    int32_t *out = view.buf;
    PyObject *result = NULL, *last = NULL;
    int32_t value = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, start + i);
        if (row != last) { /* rows are often one of a few shared tuples */
            if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) <= index) {
                PyErr_SetString(PyExc_TypeError, "item_ints(): a row is not a long enough tuple");
                goto done;
            }
            long x = PyLong_AsLong(PyTuple_GET_ITEM(row, index));
            if (x == -1 && PyErr_Occurred())
                goto done;
            if (x < INT32_MIN || x > INT32_MAX) {
                PyErr_SetString(PyExc_OverflowError, "item_ints(): beyond int32");
                goto done;
            }
            value = (int32_t)x;
            last = row;
        }
        out[i] = value;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&view);
    return result;
}

/* unflatten(kind, lengths, items[, values]): the list of containers of type ``kind`` that
 * flatten took apart: ``lengths`` a buffer of int64, ``items`` (a dict's keys) and
 * ``values`` (a dict's values) lists of their sum's length. */
static PyObject *unflatten(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if ((nargs != 3 && nargs != 4) || !PyType_Check(args[0]) || !PyList_Check(args[2])
        || (nargs == 4 && !PyList_Check(args[3]))) {
        PyErr_SetString(PyExc_TypeError, "unflatten(kind, lengths, items[, values])");
        return NULL;
    }
    PyTypeObject *kind = (PyTypeObject *)args[0];
    int is_dict = kind == &PyDict_Type;
    if ((is_dict != (nargs == 4))
        || (!is_dict && kind != &PyList_Type && kind != &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "unflatten() takes list, tuple, or dict and values");
        return NULL;
    }
    PyObject *items = args[2], *values = nargs == 4 ? args[3] : NULL, *out = NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const int64_t *len = view.buf;
    Py_ssize_t n = view.len / 8, total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (len[i] < 0)
            goto bad;
        total += len[i];
    }
    if (total != PyList_GET_SIZE(items) || (values && total != PyList_GET_SIZE(values)))
        goto bad;
    if ((out = PyList_New(n)) == NULL)
        goto done;
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t m = (Py_ssize_t)len[i];
        PyObject *c = is_dict ? PyDict_New() : kind == &PyList_Type ? PyList_New(m) : PyTuple_New(m);
        if (c == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, c);
        for (Py_ssize_t j = 0; j < m; j++, at++) {
            PyObject *x = PyList_GET_ITEM(items, at);
            if (is_dict) {
                if (PyDict_SetItem(c, x, PyList_GET_ITEM(values, at)) < 0)
                    goto fail;
            }
            else if (kind == &PyList_Type)
                PyList_SET_ITEM(c, j, Py_NewRef(x));
            else
                PyTuple_SET_ITEM(c, j, Py_NewRef(x));
        }
    }
    goto done;
bad:
    PyErr_SetString(PyExc_ValueError, "unflatten(): lengths and items do not match");
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyBuffer_Release(&view);
    return out;
}

/* records(names, columns): one dict per row, mapping names[j] to columns[j][i]. */
static PyObject *records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[0]) || !PyList_Check(args[1])
        || PyTuple_GET_SIZE(args[0]) != PyList_GET_SIZE(args[1])
        || PyTuple_GET_SIZE(args[0]) == 0) {
        PyErr_SetString(PyExc_TypeError, "records(names, columns): as many of each, not none");
        return NULL;
    }
    PyObject *names = args[0], *columns = args[1];
    Py_ssize_t m = PyTuple_GET_SIZE(names), n = -1;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *column = PyList_GET_ITEM(columns, j);
        if (!PyList_Check(column) || (n >= 0 && PyList_GET_SIZE(column) != n)) {
            PyErr_SetString(PyExc_ValueError, "records(): columns of one length expected");
            return NULL;
        }
        n = PyList_GET_SIZE(column);
    }
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyDict_New();
        if (d == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, d);
        for (Py_ssize_t j = 0; j < m; j++)
            if (PyDict_SetItem(d, PyTuple_GET_ITEM(names, j),
                               PyList_GET_ITEM(PyList_GET_ITEM(columns, j), i)) < 0)
                goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"names", (PyCFunction)names, METH_O,
     "An instance's attribute names, without building its __dict__ (3.11)."},
    {"attributes", (PyCFunction)(void (*)(void))attributes, METH_FASTCALL,
     "Many instances' attributes, name by name, in one pass."},
    {"live", (PyCFunction)live, METH_O, "The items that are not None, and their types."},
    {"hashes", (PyCFunction)(void (*)(void))hashes, METH_FASTCALL,
     "The hashes of a set's items into an int64 buffer."},
    {"item_ints", (PyCFunction)(void (*)(void))item_ints, METH_FASTCALL,
     "One item of many tuples into an int32 buffer."},
    {"same_item", (PyCFunction)(void (*)(void))same_item, METH_FASTCALL,
     "Whether every dict maps a name to one same object."},
    {"columns", (PyCFunction)(void (*)(void))columns, METH_FASTCALL,
     "Many dicts' values, name by name, in one pass."},
    {"unflatten", (PyCFunction)(void (*)(void))unflatten, METH_FASTCALL,
     "The containers that flatten took apart."},
    {"records", (PyCFunction)(void (*)(void))records, METH_FASTCALL,
     "One dict per row of columns."},
    {"numbers", (PyCFunction)(void (*)(void))numbers, METH_FASTCALL,
     "A list of Python numbers of one type into an array."},
    {"flatten", (PyCFunction)(void (*)(void))flatten, METH_FASTCALL,
     "The items of a list of unshared containers, and their lengths."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "engine._packing", "Compiled passes of checkpoint columns.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__packing(void) { return PyModule_Create(&module); }
