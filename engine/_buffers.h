/* What the compiled cores share: a writable, C-contiguous buffer of at least `bytes`.
 * Included by _stream.c and _packing.c, which are separate extensions. */
#ifndef PYDIASCA_BUFFERS_H
#define PYDIASCA_BUFFERS_H

#include <Python.h>

static int writable(PyObject *obj, Py_buffer *view, Py_ssize_t bytes)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->len < bytes) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "an output buffer is too small");
        return -1;
    }
    return 0;
}

#endif
