/* The compiled mail of engine.mail: post(), accept() and deliver() without a Python frame each.
 *
 * engine/mail.py holds the reference (_PyMail), which this type follows step for
 * step: the same checks, in the same order, the same inbox and outbox shapes. It
 * is used whenever this module could not be built, and the tests run models on
 * both and compare them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *directory; /* list of (rank, handlers, class number) */
    long rank;
    PyObject *plain; /* frozenset of types */
    PyObject *check; /* check(sender, target, handler, args) */
    PyObject *inbox; /* dict */
    PyObject *outbox; /* dict */
    Py_ssize_t extra;
    /* The last handler found: (directory entry, handler name) -> function, while the
     * entry's handlers dict keeps its version (a directory never changes one in place,
     * but the check costs nothing). Strong references, so that no other object can
     * take their addresses. */
    PyObject *c_entry, *c_name, *c_fn;
    uint64_t c_version;
} Mail;

static int Mail_init(Mail *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"directory", "rank", "plain", "check", NULL};
    PyObject *directory, *plain, *check;
    long rank;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!lO!O", names, &PyList_Type, &directory,
                                     &rank, &PyFrozenSet_Type, &plain, &check))
        return -1;
    PyObject *inbox = PyDict_New(), *outbox = PyDict_New();
    if (inbox == NULL || outbox == NULL) {
        Py_XDECREF(inbox);
        Py_XDECREF(outbox);
        return -1;
    }
    Py_INCREF(directory);
    Py_INCREF(plain);
    Py_INCREF(check);
    Py_XSETREF(self->directory, directory);
    Py_XSETREF(self->plain, plain);
    Py_XSETREF(self->check, check);
    Py_XSETREF(self->inbox, inbox);
    Py_XSETREF(self->outbox, outbox);
    self->rank = rank;
    self->extra = 0;
    return 0;
}

static int Mail_traverse(Mail *self, visitproc visit, void *arg)
{
    Py_VISIT(self->directory);
    Py_VISIT(self->plain);
    Py_VISIT(self->check);
    Py_VISIT(self->inbox);
    Py_VISIT(self->outbox);
    Py_VISIT(self->c_entry);
    Py_VISIT(self->c_name);
    Py_VISIT(self->c_fn);
    return 0;
}

static int Mail_clear(Mail *self)
{
    Py_CLEAR(self->directory);
    Py_CLEAR(self->plain);
    Py_CLEAR(self->check);
    Py_CLEAR(self->inbox);
    Py_CLEAR(self->outbox);
    Py_CLEAR(self->c_entry);
    Py_CLEAR(self->c_name);
    Py_CLEAR(self->c_fn);
    return 0;
}

static void Mail_dealloc(Mail *self)
{
    PyObject_GC_UnTrack(self);
    Mail_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Inbox entries that were delivered, kept for the next posts: allocating a tuple and
 * freeing it after its delivery cost about 270 instructions per message (callgrind,
 * PHOLD). An entry goes here once its handler has run, emptied at once (its sender,
 * handler and arguments are released then, as when the inbox is freed), while the inbox
 * still holds it; delivery then clears the inbox (after a failure too), and the pool is
 * its only owner. Only the entries that this module made (untracked by the collector)
 * and that nothing else holds are taken; one that something else still holds when it
 * would be reused is let go instead. */
#define POOL_MAX (1 << 17)
static PyObject *pool[POOL_MAX];
static Py_ssize_t pool_n;

/* A delivered entry: into the pool, if it is one of ours and the inbox alone holds it. */
static inline void recycle(PyObject *entry)
{
    if (pool_n < POOL_MAX && Py_REFCNT(entry) == 1 && PyTuple_CheckExact(entry)
        && PyTuple_GET_SIZE(entry) == 3 && !PyObject_GC_IsTracked(entry)) {
        PyObject **item = ((PyTupleObject *)entry)->ob_item;
        Py_INCREF(entry);
        pool[pool_n++] = entry;
        Py_CLEAR(item[0]);
        Py_CLEAR(item[1]);
        Py_CLEAR(item[2]);
    }
}

/* A 3-tuple (sender, fn, args), untracked: from the pool when it has one. */
static PyObject *new_entry(PyObject *sender, PyObject *fn, PyObject *args)
{
    PyObject *entry = NULL;
    while (pool_n > 0) {
        PyObject *kept = pool[--pool_n];
        if (Py_REFCNT(kept) == 1) {
            entry = kept;
            break;
        }
        Py_DECREF(kept); /* an inbox that was not cleared still holds it */
    }
    if (entry == NULL) {
        entry = PyTuple_New(3);
        if (entry == NULL)
            return NULL;
        /* Out of the cyclic collector's sight: an entry is only ever held by the inbox,
         * which delivery drops, so it can be in no garbage cycle; and a young collection
         * at the end of a diasca's sends would otherwise walk every message in flight (a
         * tenth of a PHOLD run at 10^5 LPs). What the arguments refer to stays alive
         * meanwhile, as it should: the message is pending. */
        PyObject_GC_UnTrack(entry);
    }
    PyObject **item = ((PyTupleObject *)entry)->ob_item;
    item[0] = Py_NewRef(sender);
    item[1] = Py_NewRef(fn);
    item[2] = Py_NewRef(args);
    return entry;
}

/* Add (sender, fn, args) to the inbox entry of target, as a tuple or a list of them. */
static int deliver_to(Mail *self, PyObject *target, PyObject *sender, PyObject *fn,
                      PyObject *args)
{
    if (!PyLong_CheckExact(target)) { /* keys are exact ints: see mail_deliver */
        PyObject *exact = PyNumber_Long(target);
        if (exact == NULL)
            return -1;
        int status = deliver_to(self, exact, sender, fn, args);
        Py_DECREF(exact);
        return status;
    }
    PyObject *entry = new_entry(sender, fn, args);
    if (entry == NULL)
        return -1;
    /* One lookup: the entry goes in unless the target has messages already. */
    PyObject *box = PyDict_SetDefault(self->inbox, target, entry); /* borrowed */
    int status;
    if (box == NULL) {
        status = -1;
    } else if (box == entry) { /* the common case: the target's first message */
        status = 0;
    } else if (PyTuple_CheckExact(box)) {
        PyObject *list = PyList_New(2);
        if (list == NULL) {
            Py_DECREF(entry);
            return -1;
        }
        Py_INCREF(box);
        PyList_SET_ITEM(list, 0, box);
        Py_INCREF(entry);
        PyList_SET_ITEM(list, 1, entry);
        status = PyDict_SetItem(self->inbox, target, list);
        Py_DECREF(list);
        self->extra += 1;
    } else {
        status = PyList_Append(box, entry);
        self->extra += 1;
    }
    Py_DECREF(entry);
    return status;
}

/* The version of a handlers dict, for the mail's cache; 0: not cacheable. */
static inline uint64_t cache_version(PyObject *handlers)
{
#if PY_VERSION_HEX < 0x030C0000
    return PyDict_CheckExact(handlers) ? ((PyDictObject *)handlers)->ma_version_tag : 0;
#else
    return 0; /* the version tag is deprecated from Python 3.12 on: no cache */
#endif
}

/* handlers.get(handler) as a new reference (Py_None when absent), NULL with an error set. */
static PyObject *lookup(PyObject *handlers, PyObject *handler)
{
    if (PyDict_CheckExact(handlers)) {
        PyObject *fn = PyDict_GetItemWithError(handlers, handler);
        if (fn == NULL)
            return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
        return Py_NewRef(fn);
    }
    return PyObject_CallMethod(handlers, "get", "O", handler);
}

static PyObject *Mail_post(Mail *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4)
        return PyErr_Format(PyExc_TypeError, "post() takes 4 arguments (%zd given)", nargs);
    PyObject *sender = args[0], *target = args[1], *handler = args[2], *margs = args[3];
    if (!PyLong_Check(target) || !PyTuple_Check(margs))
        Py_RETURN_FALSE;
    Py_ssize_t t = PyLong_AsSsize_t(target);
    if (t == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    if (t <= 0 || t >= PyList_GET_SIZE(self->directory))
        Py_RETURN_FALSE;
    PyObject *entry = PyList_GET_ITEM(self->directory, t);
    PyObject *handlers = PyTuple_GET_ITEM(entry, 1), *fn;
    if (entry == self->c_entry && handler == self->c_name && cache_version(handlers) == self->c_version) {
        fn = Py_NewRef(self->c_fn); /* the common case: the same handler as the last post */
    } else {
        fn = lookup(handlers, handler);
        if (fn == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError))
                return NULL;
            PyErr_Clear(); /* an unhashable handler */
            Py_RETURN_FALSE;
        }
        if (fn == Py_None) {
            Py_DECREF(fn);
            Py_RETURN_FALSE;
        }
        uint64_t version = cache_version(handlers);
        if (version != 0) {
            Py_XSETREF(self->c_entry, Py_NewRef(entry));
            Py_XSETREF(self->c_name, Py_NewRef(handler));
            Py_XSETREF(self->c_fn, Py_NewRef(fn));
            self->c_version = version;
        }
    }
    Py_ssize_t n = PyTuple_GET_SIZE(margs);
    for (Py_ssize_t i = 0; i < n; i++) {
        int plain = PySet_Contains(self->plain, (PyObject *)Py_TYPE(PyTuple_GET_ITEM(margs, i)));
        if (plain < 0)
            goto error;
        if (!plain) {
            PyObject *done = PyObject_CallFunctionObjArgs(self->check, sender, target, handler,
                                                          margs, NULL);
            if (done == NULL)
                goto error;
            Py_DECREF(done);
            break;
        }
    }
    PyObject *rank = PyTuple_GET_ITEM(entry, 0);
    long r = PyLong_AsLong(rank);
    if (r == -1 && PyErr_Occurred())
        goto error;
    if (r != self->rank) { /* other ranks get the handler's name */
        PyObject *batch = PyDict_GetItemWithError(self->outbox, rank); /* borrowed */
        if (batch == NULL) {
            if (PyErr_Occurred())
                goto error;
            batch = PyList_New(0);
            if (batch == NULL || PyDict_SetItem(self->outbox, rank, batch) < 0) {
                Py_XDECREF(batch);
                goto error;
            }
            Py_DECREF(batch); /* the outbox holds it */
        }
        PyObject *envelope = PyTuple_Pack(4, target, sender, handler, margs);
        if (envelope == NULL || PyList_Append(batch, envelope) < 0) {
            Py_XDECREF(envelope);
            goto error;
        }
        Py_DECREF(envelope);
        Py_DECREF(fn);
        Py_RETURN_TRUE;
    }
    if (deliver_to(self, target, sender, fn, margs) < 0)
        goto error;
    Py_DECREF(fn);
    Py_RETURN_TRUE;
error:
    Py_DECREF(fn);
    return NULL;
}

static PyObject *Mail_accept(Mail *self, PyObject *envelopes)
{
    PyObject *it = PyObject_GetIter(envelopes);
    if (it == NULL)
        return NULL;
    PyObject *envelope;
    while ((envelope = PyIter_Next(it)) != NULL) {
        PyObject *target, *sender, *handler, *margs;
        if (!PyArg_UnpackTuple(envelope, "envelope", 4, 4, &target, &sender, &handler, &margs))
            goto error;
        PyObject *entry = PyObject_GetItem(self->directory, target);
        if (entry == NULL)
            goto error;
        PyObject *handlers = PySequence_GetItem(entry, 1);
        Py_DECREF(entry);
        if (handlers == NULL)
            goto error;
        PyObject *fn = PyObject_GetItem(handlers, handler); /* the sender's rank checked it */
        Py_DECREF(handlers);
        if (fn == NULL)
            goto error;
        int status = deliver_to(self, target, sender, fn, margs);
        Py_DECREF(fn);
        if (status < 0)
            goto error;
        Py_DECREF(envelope);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
error:
    Py_DECREF(envelope);
    Py_DECREF(it);
    return NULL;
}

static PyObject *Mail_take(Mail *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint = 0;
    if (nargs > 1)
        return PyErr_Format(PyExc_TypeError, "take() takes at most 1 argument (%zd given)", nargs);
    if (nargs == 1) {
        hint = PyLong_AsSsize_t(args[0]);
        if (hint == -1 && PyErr_Occurred())
            return NULL;
    }
    /* Sized at once for the targets expected: growing a dict to 10^5 keys builds and
     * fills every smaller table on the way, fresh memory each diasca. */
    PyObject *fresh = hint > 8 ? _PyDict_NewPresized(hint) : PyDict_New();
    if (fresh == NULL)
        return NULL;
    PyObject *result = Py_BuildValue("(On)", self->inbox,
                                     PyDict_GET_SIZE(self->inbox) + self->extra);
    if (result == NULL) {
        Py_DECREF(fresh);
        return NULL;
    }
    Py_SETREF(self->inbox, fresh);
    self->extra = 0;
    return result;
}

static PyObject *Mail_take_outbox(Mail *self, PyObject *unused)
{
    PyObject *fresh = PyDict_New();
    if (fresh == NULL)
        return NULL;
    PyObject *outbox = self->outbox;
    self->outbox = fresh;
    return outbox; /* the reference the mail held */
}

static PyMethodDef Mail_methods[] = {
    {"post", (PyCFunction)(void (*)(void))Mail_post, METH_FASTCALL,
     "Queue a message for the next diasca; False when the target or handler is unknown."},
    {"accept", (PyCFunction)Mail_accept, METH_O, "Put messages from other ranks in the inbox."},
    {"take", (PyCFunction)(void (*)(void))Mail_take, METH_FASTCALL,
     "take(hint=0): the inbox and its message count; the next inbox is sized for hint targets."},
    {"take_outbox", (PyCFunction)Mail_take_outbox, METH_NOARGS, "This diasca's envelopes."},
    {NULL, NULL, 0, NULL},
};

static int set_dict(PyObject **slot, PyObject *value, const char *name)
{
    if (value == NULL || !PyDict_CheckExact(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict", name);
        return -1;
    }
    Py_INCREF(value);
    Py_SETREF(*slot, value);
    return 0;
}

static PyObject *Mail_get_inbox(Mail *self, void *c) { return Py_NewRef(self->inbox); }
static int Mail_set_inbox(Mail *self, PyObject *v, void *c) { return set_dict(&self->inbox, v, "inbox"); }
static PyObject *Mail_get_outbox(Mail *self, void *c) { return Py_NewRef(self->outbox); }
static int Mail_set_outbox(Mail *self, PyObject *v, void *c) { return set_dict(&self->outbox, v, "outbox"); }

static PyGetSetDef Mail_getset[] = {
    {"inbox", (getter)Mail_get_inbox, (setter)Mail_set_inbox, "target AAI -> entry or list", NULL},
    {"outbox", (getter)Mail_get_outbox, (setter)Mail_set_outbox, "rank -> envelopes", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Mail_members[] = {
    {"extra", T_PYSSIZET, offsetof(Mail, extra), 0, "messages beyond one per target"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject MailType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._mail.Mail",
    .tp_basicsize = sizeof(Mail),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A rank's mail: the inbox of the next diasca and the envelopes for other ranks.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Mail_init,
    .tp_dealloc = (destructor)Mail_dealloc,
    .tp_traverse = (traverseproc)Mail_traverse,
    .tp_clear = (inquiry)Mail_clear,
    .tp_methods = Mail_methods,
    .tp_getset = Mail_getset,
    .tp_members = Mail_members,
};

/* Call fn(actor, sender, *margs) without building a tuple for up to 6 arguments. */
static PyObject *call_handler(PyObject *fn, PyObject *actor, PyObject *sender, PyObject *margs)
{
    Py_ssize_t n = PyTuple_GET_SIZE(margs);
    if (n <= 6) {
        PyObject *stack[8];
        stack[0] = actor;
        stack[1] = sender;
        for (Py_ssize_t i = 0; i < n; i++)
            stack[2 + i] = PyTuple_GET_ITEM(margs, i);
        return PyObject_Vectorcall(fn, stack, 2 + n, NULL);
    }
    PyObject *all = PyTuple_New(2 + n);
    if (all == NULL)
        return NULL;
    PyTuple_SET_ITEM(all, 0, Py_NewRef(actor));
    PyTuple_SET_ITEM(all, 1, Py_NewRef(sender));
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(all, 2 + i, Py_NewRef(PyTuple_GET_ITEM(margs, i)));
    PyObject *result = PyObject_Call(fn, all, NULL);
    Py_DECREF(all);
    return result;
}

static PyObject *by_sender; /* operator.itemgetter(0): the kernel's order of one target's messages */

/* Whether the entries of a list are already in non-decreasing order of sender: then a
 * stable sort by sender leaves it as it is (the common case, one sender's batch). */
static int sorted_by_sender(PyObject *msgs)
{
    Py_ssize_t n = PyList_GET_SIZE(msgs);
    PyObject *prev = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *entry = PyList_GET_ITEM(msgs, i);
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) < 1)
            return 0;
        PyObject *sender = PyTuple_GET_ITEM(entry, 0);
        if (!PyLong_CheckExact(sender))
            return 0;
        if (prev != NULL && prev != sender) {
            int before = PyObject_RichCompareBool(sender, prev, Py_LT);
            if (before != 0)
                return before < 0 ? -1 : 0;
        }
        prev = sender;
    }
    return 1;
}

/* Deliver the messages of one target: a single entry (a tuple) or a list of them. */
static int deliver_one(PyObject *target, Py_ssize_t t, PyObject *msgs, PyObject *actors,
                       PyObject *key, PyObject *sort_kw, int ergodic, PyObject *where)
{
    if (t < 0 || t >= PyList_GET_SIZE(actors)) {
        PyErr_Format(PyExc_IndexError, "no local actor %zd", t);
        PyList_SetItem(where, 0, Py_NewRef(target));
        return -1;
    }
    PyObject *actor = PyList_GET_ITEM(actors, t); /* never an ended actor: sends are refused */
    Py_INCREF(actor);
    int status = -1;
    if (PyTuple_CheckExact(msgs)) { /* the common case: one message */
        if (PyTuple_GET_SIZE(msgs) != 3 || !PyTuple_CheckExact(PyTuple_GET_ITEM(msgs, 2))) {
            PyErr_SetString(PyExc_TypeError, "an inbox entry is (sender, handler, args)");
            goto done;
        }
        PyObject *fn = PyTuple_GET_ITEM(msgs, 1);
        PyObject *r = call_handler(fn, actor, PyTuple_GET_ITEM(msgs, 0), PyTuple_GET_ITEM(msgs, 2));
        if (r == NULL) {
            PyList_SetItem(where, 1, Py_NewRef(fn));
            goto done;
        }
        Py_DECREF(r);
        recycle(msgs);
        status = 0;
        goto done;
    }
    int sorted = 0;
    if (sort_kw != Py_None && key == by_sender && PyList_CheckExact(msgs)) {
        sorted = sorted_by_sender(msgs);
        if (sorted < 0)
            goto done;
    }
    if (sort_kw != Py_None && !sorted) { /* by sender, stably: each sender's messages in send order */
        PyObject *sort = PyObject_GetAttrString(msgs, "sort");
        if (sort == NULL)
            goto done;
        PyObject *empty = PyTuple_New(0);
        PyObject *r = empty == NULL ? NULL : PyObject_Call(sort, empty, sort_kw);
        Py_XDECREF(empty);
        Py_DECREF(sort);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    if (sort_kw != Py_None && ergodic) {
        {
            PyObject *rng = PyObject_GetAttrString(actor, "random");
            if (rng == NULL)
                goto done;
            PyObject *r = PyObject_CallMethod(rng, "shuffle", "O", msgs);
            Py_DECREF(rng);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
    }
    PyObject *seq = PySequence_Fast(msgs, "messages must be a sequence");
    if (seq == NULL)
        goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *entry = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 3
            || !PyTuple_CheckExact(PyTuple_GET_ITEM(entry, 2))) {
            PyErr_SetString(PyExc_TypeError, "an inbox entry is (sender, handler, args)");
            Py_DECREF(seq);
            goto done;
        }
        PyObject *fn = PyTuple_GET_ITEM(entry, 1);
        PyObject *r = call_handler(fn, actor, PyTuple_GET_ITEM(entry, 0), PyTuple_GET_ITEM(entry, 2));
        if (r == NULL) {
            PyList_SetItem(where, 1, Py_NewRef(fn));
            Py_DECREF(seq);
            goto done;
        }
        Py_DECREF(r);
        recycle(entry);
    }
    Py_DECREF(seq);
    status = 0;
done:
    if (status < 0) /* where the failure happened, for the kernel's report */
        PyList_SetItem(where, 0, Py_NewRef(target));
    Py_DECREF(actor);
    return status;
}

/* deliver(items, actors, sort_key, ergodic, where): see engine.mail._py_deliver. */
static PyObject *mail_deliver(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5)
        return PyErr_Format(PyExc_TypeError, "deliver() takes 5 arguments (%zd given)", nargs);
    PyObject *items = args[0], *actors = args[1], *key = args[2], *where = args[4];
    int ergodic = PyObject_IsTrue(args[3]);
    if (ergodic < 0)
        return NULL;
    if (!PyList_CheckExact(actors) || !PyList_CheckExact(where) || PyList_GET_SIZE(where) != 2) {
        PyErr_SetString(PyExc_TypeError, "deliver() needs the actors and a 2-item list");
        return NULL;
    }
    PyObject *sort_kw = Py_None;
    if (key != Py_None) {
        sort_kw = PyDict_New();
        if (sort_kw == NULL || PyDict_SetItemString(sort_kw, "key", key) < 0) {
            Py_XDECREF(sort_kw);
            return NULL;
        }
    } else {
        Py_INCREF(sort_kw);
    }
    int status = 0;
    Py_INCREF(items);
    if (PyDict_CheckExact(items)) {
        /* The inbox's keys are exact ints (deliver_to), whose hash is their value: the
         * target's AAI without touching the int object, which would cost a cache miss per
         * message at 10^5 actors. The inbox is the kernel's alone while it is delivered
         * (handlers post to the next one), so its items need no references of their own. */
        Py_ssize_t pos = 0;
        PyObject *target, *msgs;
        Py_hash_t hash;
        while (_PyDict_Next(items, &pos, &target, &msgs, &hash)) {
            status = deliver_one(target, (Py_ssize_t)hash, msgs, actors, key, sort_kw, ergodic,
                                 where);
            if (status < 0)
                break;
        }
        /* The inbox is spent, after a failure too (the run stops): see recycle. No entry
         * that recycle emptied stays where Python code could read it. */
        PyDict_Clear(items);
    } else {
        PyObject *it = PyObject_GetIter(items);
        PyObject *pair;
        status = it == NULL ? -1 : 0;
        while (status == 0 && (pair = PyIter_Next(it)) != NULL) {
            if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
                PyErr_SetString(PyExc_TypeError, "deliver() items are (target, messages) pairs");
                status = -1;
            } else {
                PyObject *target = PyTuple_GET_ITEM(pair, 0);
                Py_ssize_t t = PyLong_AsSsize_t(target);
                status = t == -1 && PyErr_Occurred()
                             ? -1
                             : deliver_one(target, t, PyTuple_GET_ITEM(pair, 1), actors, key,
                                           sort_kw, ergodic, where);
            }
            Py_DECREF(pair);
        }
        if (status == 0 && PyErr_Occurred())
            status = -1;
        Py_XDECREF(it);
    }
    Py_DECREF(items);
    Py_DECREF(sort_kw);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"deliver", (PyCFunction)(void (*)(void))mail_deliver, METH_FASTCALL,
     "Call every message's handler on its target actor, in the kernel's order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "engine._mail", "Compiled mail of engine.mail.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__mail(void)
{
    if (PyType_Ready(&MailType) < 0)
        return NULL;
    PyObject *operator = PyImport_ImportModule("operator");
    if (operator == NULL)
        return NULL;
    by_sender = PyObject_CallMethod(operator, "itemgetter", "i", 0);
    Py_DECREF(operator);
    if (by_sender == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "by_sender", by_sender) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&MailType);
    if (PyModule_AddObject(m, "Mail", (PyObject *)&MailType) < 0) {
        Py_DECREF(&MailType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
