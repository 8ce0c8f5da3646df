# The CPython C API that tvmfast uses beyond Cython's own cpython/*.pxd, in one place.
from cpython.ref cimport PyObject


cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        pass
    PyTypeObject PyLong_Type
    PyTypeObject PyFloat_Type
    PyTypeObject PyUnicode_Type
    PyTypeObject PyBool_Type
    PyTypeObject PyTuple_Type
    PyObject* Py_None
    PyObject* Py_True

    PyTypeObject* Py_TYPE(PyObject* o)
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)
    PyObject** PySequence_Fast_ITEMS(object tup)
    Py_ssize_t PySequence_Fast_GET_SIZE(object seq)
    PyTypeObject PyList_Type
    object PyObject_Vectorcall(object callable, PyObject** args, size_t nargsf, PyObject* kwnames)
    Py_ssize_t PyTuple_GET_SIZE(PyObject* t)
    PyObject* PyTuple_GET_ITEM(PyObject* t, Py_ssize_t i)

    long long PyLong_AsLongLong(PyObject* o) except? -1
    unsigned long long PyLong_AsUnsignedLongLong(PyObject* o) except? <unsigned long long>-1
    const char* PyUnicode_AsUTF8AndSize(PyObject* o, Py_ssize_t* size) except NULL
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    object PyBytes_FromStringAndSize(const char* v, Py_ssize_t size)

    char* PyBytes_AS_STRING(PyObject* o)
    Py_ssize_t PyBytes_GET_SIZE(PyObject* o)
    char* PyByteArray_AS_STRING(PyObject* o)
    Py_ssize_t PyByteArray_GET_SIZE(PyObject* o)
    tuple PyList_AsTuple(object lst)
    bint PyDict_Next(object d, Py_ssize_t* pos, PyObject** key, PyObject** value)

    PyObject* PyErr_Occurred()
    void PyErr_SetObject(PyObject* type, PyObject* value)
    void PyErr_Clear()
    void PyErr_Fetch(PyObject** t, PyObject** v, PyObject** tb)
    void PyErr_NormalizeException(PyObject** t, PyObject** v, PyObject** tb)
    int PyException_SetTraceback(PyObject* ex, PyObject* tb)
    void Py_XDECREF(PyObject* o)

    long long PyLong_AsLongLongAndOverflow(PyObject* o, int* overflow) except? -1
    double PyFloat_AS_DOUBLE(PyObject* o)

    # The GIL, for a C kernel that torch's caller may call with it held (AOTInductor's runner).
    ctypedef struct PyThreadState:
        pass
    PyThreadState* PyEval_SaveThread() nogil
    void PyEval_RestoreThread(PyThreadState* tstate) nogil
    int Py_IsInitialized() nogil
