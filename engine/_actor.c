/* The compiled core of engine.Actor: its engine slots and the calls a model makes at
 * every event (send, schedule_in, add_spontaneous_tick, aai, tick, random).
 *
 * engine/actor.py holds the reference (_PyActorCore), which this type follows step
 * for step on the common path: an exact int argument, a live actor. Anything else
 * (NumPy integers, refusals, errors) goes to the Python methods that the reference
 * uses too (_send_slow, _plan_slow, _schedule_in_slow), so both give the same results
 * and the same errors. The tests run models on both and compare them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *k;      /* the kernel (engine.actor.KernelSurface) */
    PyObject *aai;    /* int */
    PyObject *random; /* engine.random.Random */
    Py_ssize_t ncreated;
    char terminating;
} Core;

static PyObject *s_post, *s_tick, *s_diasca, *s_agenda, *s_add, *s_send_slow, *s_plan_slow,
    *s_schedule_in_slow;

static int Core_traverse(Core *self, visitproc visit, void *arg)
{
    Py_VISIT(self->k);
    Py_VISIT(self->aai);
    Py_VISIT(self->random);
    return 0;
}

static int Core_clear(Core *self)
{
    Py_CLEAR(self->k);
    Py_CLEAR(self->aai);
    Py_CLEAR(self->random);
    return 0;
}

static void Core_dealloc(Core *self)
{
    PyObject_GC_UnTrack(self);
    Core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *empty_args;

/* object.__new__, arguments aside (the model's __init__ takes them): unlike the generic
 * allocation, it sets the instance dict up as for any Python class, with the inline
 * values that the interpreter's attribute caches rely on. */
static PyObject *Core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return PyBaseObject_Type.tp_new(type, empty_args, NULL);
}

static PyObject *unset(const char *name)
{
    PyErr_Format(PyExc_AttributeError, "the engine has not set %s yet", name);
    return NULL;
}

static PyObject *Core_get_aai(Core *self, void *c)
{
    return self->aai ? Py_NewRef(self->aai) : unset("aai");
}

static PyObject *Core_get_random(Core *self, void *c)
{
    return self->random ? Py_NewRef(self->random) : unset("random");
}

static PyObject *Core_get_tick(Core *self, void *c)
{
    return self->k ? PyObject_GetAttr(self->k, s_tick) : unset("tick");
}

static PyObject *Core_get_diasca(Core *self, void *c)
{
    return self->k ? PyObject_GetAttr(self->k, s_diasca) : unset("diasca");
}

/* agenda[tick].add(aai): plan act_spontaneous at tick (already checked to be in the future). */
static PyObject *plan(Core *self, PyObject *tick)
{
    PyObject *agenda = PyObject_GetAttr(self->k, s_agenda);
    if (agenda == NULL)
        return NULL;
    PyObject *actors = NULL;
    if (PyDict_Check(agenda)) {
        actors = PyDict_GetItemWithError(agenda, tick); /* borrowed */
        Py_XINCREF(actors);
    }
    if (actors == NULL && !PyErr_Occurred())
        actors = PyObject_GetItem(agenda, tick); /* a new tick: the agenda's __missing__ */
    Py_DECREF(agenda);
    if (actors == NULL)
        return NULL;
    int status;
    if (PySet_CheckExact(actors)) {
        status = PySet_Add(actors, self->aai);
    } else {
        PyObject *r = PyObject_CallMethodOneArg(actors, s_add, self->aai);
        status = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    Py_DECREF(actors);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The current tick as a C integer; 0 with *ok = 0 when it is not a small int. */
static long long current_tick(Core *self, int *ok)
{
    *ok = 0;
    PyObject *now = PyObject_GetAttr(self->k, s_tick);
    if (now == NULL) {
        PyErr_Clear();
        return 0;
    }
    long long t = 0;
    if (PyLong_CheckExact(now)) {
        int overflow;
        t = PyLong_AsLongLongAndOverflow(now, &overflow);
        *ok = !overflow && !(t == -1 && PyErr_Occurred());
    }
    PyErr_Clear();
    Py_DECREF(now);
    return t;
}

static PyObject *Core_schedule_in(Core *self, PyObject *n)
{
    if (PyLong_CheckExact(n) && !self->terminating && self->k != NULL && self->aai != NULL) {
        int overflow, ok;
        long long ticks = PyLong_AsLongLongAndOverflow(n, &overflow);
        if (!overflow && ticks >= 1 && ticks < (1LL << 40)) {
            long long now = current_tick(self, &ok);
            if (ok && now >= 0 && now < (1LL << 60)) {
                PyObject *tick = PyLong_FromLongLong(now + ticks);
                if (tick == NULL)
                    return NULL;
                PyObject *r = plan(self, tick);
                Py_DECREF(tick);
                return r;
            }
        }
        PyErr_Clear();
    }
    return PyObject_CallMethodOneArg((PyObject *)self, s_schedule_in_slow, n);
}

static PyObject *Core_add_spontaneous_tick(Core *self, PyObject *tick)
{
    if (PyLong_CheckExact(tick) && !self->terminating && self->k != NULL && self->aai != NULL) {
        int overflow, ok;
        long long t = PyLong_AsLongLongAndOverflow(tick, &overflow);
        if (!overflow && !(t == -1 && PyErr_Occurred())) {
            long long now = current_tick(self, &ok);
            if (ok && t > now)
                return plan(self, tick);
        }
        PyErr_Clear();
    }
    return PyObject_CallMethodOneArg((PyObject *)self, s_plan_slow, tick);
}

static PyObject *Core_send(Core *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2)
        return PyErr_Format(PyExc_TypeError,
                            "send() needs a target AAI and a handler name (%zd given)", nargs);
    PyObject *margs = PyTuple_New(nargs - 2);
    if (margs == NULL)
        return NULL;
    for (Py_ssize_t i = 2; i < nargs; i++)
        PyTuple_SET_ITEM(margs, i - 2, Py_NewRef(args[i]));
    PyObject *result;
    if (PyLong_CheckExact(args[0]) && self->k != NULL && self->aai != NULL) {
        PyObject *post = PyObject_GetAttr(self->k, s_post);
        if (post == NULL) {
            Py_DECREF(margs);
            return NULL;
        }
        PyObject *stack[4] = {self->aai, args[0], args[1], margs};
        PyObject *r = PyObject_Vectorcall(post, stack, 4, NULL);
        Py_DECREF(post);
        if (r == Py_True) { /* queued: the common case */
            Py_DECREF(r);
            Py_DECREF(margs);
            Py_RETURN_NONE;
        }
        if (r == NULL) {
            Py_DECREF(margs);
            return NULL;
        }
        Py_DECREF(r); /* refused: the slow path says why */
    }
    result = PyObject_CallMethodObjArgs((PyObject *)self, s_send_slow, args[0], args[1], margs,
                                        NULL);
    Py_DECREF(margs);
    return result;
}

static PyMethodDef Core_methods[] = {
    {"send", (PyCFunction)(void (*)(void))Core_send, METH_FASTCALL,
     "send(target_aai, handler, *args): call target.handler(self.aai, *args) at the next "
     "diasca."},
    {"schedule_in", (PyCFunction)Core_schedule_in, METH_O,
     "schedule_in(n_ticks): plan act_spontaneous n_ticks (>= 1) ticks from now."},
    {"add_spontaneous_tick", (PyCFunction)Core_add_spontaneous_tick, METH_O,
     "add_spontaneous_tick(tick): plan act_spontaneous at a future tick."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Core_getset[] = {
    {"aai", (getter)Core_get_aai, NULL,
     "This actor's abstract identifier: stable whatever the placement.", NULL},
    {"tick", (getter)Core_get_tick, NULL, "The current tick.", NULL},
    {"diasca", (getter)Core_get_diasca, NULL, "The current diasca of the tick.", NULL},
    {"random", (getter)Core_get_random, NULL,
     "This actor's own generator, derived from (seed, AAI) alone.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Core_members[] = {
    {"_k", T_OBJECT_EX, offsetof(Core, k), 0, "the kernel"},
    {"_aai", T_OBJECT_EX, offsetof(Core, aai), 0, "the AAI"},
    {"_random", T_OBJECT_EX, offsetof(Core, random), 0, "the generator"},
    {"_ncreated", T_PYSSIZET, offsetof(Core, ncreated), 0, "creations asked so far"},
    {"_terminating", T_BOOL, offsetof(Core, terminating), 0, "termination declared"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._actor.ActorCore",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The engine's slots of an actor and its hot calls.",
    .tp_new = Core_new,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
    .tp_members = Core_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "engine._actor", "Compiled core of engine.Actor.", -1, NULL,
};

static int intern(PyObject **slot, const char *name)
{
    *slot = PyUnicode_InternFromString(name);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__actor(void)
{
    if (intern(&s_post, "post") < 0 || intern(&s_tick, "tick") < 0
        || intern(&s_diasca, "diasca") < 0 || intern(&s_agenda, "agenda") < 0
        || intern(&s_add, "add") < 0 || intern(&s_send_slow, "_send_slow") < 0
        || intern(&s_plan_slow, "_plan_slow") < 0
        || intern(&s_schedule_in_slow, "_schedule_in_slow") < 0)
        return NULL;
    empty_args = PyTuple_New(0);
    if (empty_args == NULL || PyType_Ready(&CoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "ActorCore", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
