// protobrain sim: the C ABI over one Verilated `protobrain_uart` (UART bridge + core) model,
// built at run time into a shared library (class Vpbu) by sim::verilated::uart.
//
//   Rust (sim::verilated::uart) ──► PbuApi function table ──► Model ──► Vpbu
//                                   run: n cycles, one rx level in and one tx level out each
//
// The Rust side drives the serial line one clock at a time in bulk (one call per chunk of
// cycles), so the bit-level UART costs one FFI call per few thousand cycles.

#include <cstdint>

#include "Vpbu.h"
#include "verilated.h"

// Bump when the table changes; the Rust side checks it.
#define PBU_ABI_VERSION 1

extern "C" {

// The function table of the model class.
struct PbuApi {
    uint32_t abi_version;  // PBU_ABI_VERSION
    uint32_t pad;
    void* (*create)(void);
    void (*destroy)(void* m);
    // `cycles` cycles with rst high and the rx line idle (high).
    void (*reset)(void* m, uint64_t cycles);
    // `n` cycles: in cycle i, rx = rx_levels[i] (0 or 1) is driven with the clock low, the
    // model settles, tx is sampled into tx_levels[i], then the rising edge. Returns the sticky
    // overflow flag after the last cycle.
    uint32_t (*run)(void* m, const uint8_t* rx_levels, uint8_t* tx_levels, uint64_t n);
};

}  // extern "C"

namespace {

struct Model {
    VerilatedContext ctx;
    Vpbu* top;

    Model() {
        top = new Vpbu{&ctx, "TOP"};
        top->clk = 0;
        top->rst = 1;
        top->rx = 1;
    }

    ~Model() {
        top->final();
        delete top;
    }

    inline uint8_t cycle(uint8_t rst, uint8_t rx) {
        top->clk = 0;
        top->rst = rst;
        top->rx = rx;
        top->eval();
        uint8_t tx = top->tx ? 1 : 0;
        top->clk = 1;
        top->eval();
        return tx;
    }
};

void* pbu_create() { return new Model(); }
void pbu_destroy(void* m) { delete static_cast<Model*>(m); }
void pbu_reset(void* m, uint64_t cycles) {
    Model* x = static_cast<Model*>(m);
    for (uint64_t i = 0; i < cycles; i++) x->cycle(1, 1);
}
uint32_t pbu_run(void* m, const uint8_t* rx, uint8_t* tx, uint64_t n) {
    Model* x = static_cast<Model*>(m);
    for (uint64_t i = 0; i < n; i++) tx[i] = x->cycle(0, rx[i] ? 1 : 0);
    return x->top->overflow ? 1 : 0;
}

const PbuApi pbu_table = {PBU_ABI_VERSION, 0, pbu_create, pbu_destroy, pbu_reset, pbu_run};

}  // namespace

extern "C" __attribute__((visibility("default"))) const PbuApi* pbu_api(void) { return &pbu_table; }
