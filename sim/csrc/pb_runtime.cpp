// protobrain sim: the shim of a model built at run time into a shared library (class Vpb).
// sim::verilated loads the library and calls pb_api() for the function table (pb_shim.h).
#include "Vpb.h"
#include "pb_shim.h"

PB_DEFINE_API(pb_api, Vpb)
