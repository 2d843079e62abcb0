// protobrain sim: the C ABI over one Verilated `protobrain_core` model.
//
//   Rust (sim::verilated) ──► PbApi function table ──► Model<V> ──► V (Verilator class)
//                                                         │
//                                     run_stream: the host loop of spec::stream::Host in C++
//
// One header serves both kinds of model: the models prebuilt by build.rs (statically linked,
// one `pb_api_<name>()` per model) and the models built at run time into a shared library
// (one `pb_api()`), so the Rust side sees the same table either way.
//
// Include this after the Verilated model's header and expand PB_DEFINE_API(fn_name, Class).
// Define PB_TRACE (and verilate with --trace) for a model that can write VCD waveforms.

#ifndef PROTOBRAIN_PB_SHIM_H
#define PROTOBRAIN_PB_SHIM_H

#include <cstddef>
#include <cstdint>
#include <vector>

#include "verilated.h"
#ifdef PB_TRACE
#include "verilated_vcd_c.h"
#endif

// Bump when the table or the structs change; the Rust side checks it.
#define PB_ABI_VERSION 1

extern "C" {

// One output word and the cycle it was taken on (spec::stream::Trace::outputs).
struct PbOutput {
    uint64_t cycle;
    uint32_t word;
    uint32_t pad;
};

// What run_stream returns (spec::stream::Trace, or Stuck when status == 1).
struct PbStreamResult {
    uint32_t status;  // 0: done, 1: stuck (input not consumed within `limit` cycles)
    uint32_t pad;
    uint64_t taken;             // input words taken
    uint64_t last_input_cycle;  // cycle of the last input word taken
    uint64_t cycles;            // cycles simulated, quiet tail included
    uint64_t n_outputs;
    const PbOutput* outputs;  // owned by the model; valid until its next call
};

// The function table of one model class.
struct PbApi {
    uint32_t abi_version;  // PB_ABI_VERSION
    uint32_t traced;       // 1 if built with PB_TRACE
    void* (*create)(void);
    void (*destroy)(void* m);
    // Open a VCD file and dump every following half cycle into it. 0 on success, -1 when the
    // model was built without tracing, -2 when the file could not be opened.
    int32_t (*trace_open)(void* m, const char* path);
    // One cycle with rst high (inputs idle); the next cycle is cycle 0.
    void (*reset)(void* m);
    // One cycle: drive the inputs with the clock low, settle, sample the outputs, rising edge.
    // Returns in_ready in bit 0, out_valid in bit 1, out_data in bits 63:32.
    uint64_t (*tick)(void* m, uint32_t in_valid, uint32_t in_data, uint32_t out_ready);
    // Reset, then run spec::stream::Host over `words` with the stall patterns (an empty
    // pattern never stalls); `quiet` = spec::stream::quiet_cycles(dim).
    void (*run_stream)(void* m, const uint32_t* words, uint64_t n_words, const uint8_t* in_stall,
                       uint64_t n_in_stall, const uint8_t* out_stall, uint64_t n_out_stall,
                       uint64_t quiet, uint64_t limit, PbStreamResult* result);
};

}  // extern "C"

namespace pb {

template <class V>
struct Model {
    VerilatedContext ctx;
    V* top;
    uint64_t time = 0;  // half cycles; the waveform shows 5 ns per half cycle (10 ns cycles)
    std::vector<PbOutput> outputs;
#ifdef PB_TRACE
    VerilatedVcdC* vcd = nullptr;
#endif

    Model() {
#ifdef PB_TRACE
        ctx.traceEverOn(true);
#endif
        top = new V{&ctx, "TOP"};
        top->clk = 0;
        top->rst = 1;
        top->in_valid = 0;
        top->in_data = 0;
        top->out_ready = 0;
    }

    ~Model() {
#ifdef PB_TRACE
        if (vcd) {
            vcd->close();
            delete vcd;
        }
#endif
        top->final();
        delete top;
    }

    inline void dump() {
#ifdef PB_TRACE
        if (vcd) vcd->dump(time * 5);
#endif
        time++;
    }

    // Clock low with the given inputs, settled.
    inline void low(uint32_t rst, uint32_t in_valid, uint32_t in_data, uint32_t out_ready) {
        top->clk = 0;
        top->rst = rst;
        top->in_valid = in_valid;
        top->in_data = in_data;
        top->out_ready = out_ready;
        top->eval();
        dump();
    }

    // The rising edge and the settling after it.
    inline void high() {
        top->clk = 1;
        top->eval();
        dump();
    }

    void reset() {
        low(1, 0, 0, 0);
        high();
    }

    uint64_t tick(uint32_t in_valid, uint32_t in_data, uint32_t out_ready) {
        low(0, in_valid, in_data, out_ready);
        uint64_t seen = (top->in_ready ? 1u : 0u) | (top->out_valid ? 2u : 0u) |
                        (static_cast<uint64_t>(top->out_data) << 32);
        high();
        return seen;
    }

    // spec::stream::Host, line for line (and hdl/src/stream.rs's Icarus bench).
    void run_stream(const uint32_t* words, uint64_t n, const uint8_t* in_stall, uint64_t pi,
                    const uint8_t* out_stall, uint64_t po, uint64_t quiet, uint64_t limit,
                    PbStreamResult* r) {
        reset();
        outputs.clear();
        uint64_t ip = 0, idle = 0, cycle = 0, last_input = 0;
        bool held = false;
        uint64_t ci = 0, co = 0;  // cycle % pi, cycle % po
        for (;;) {
            bool more = ip < n;
            uint32_t in_valid = more && (held || pi == 0 || !in_stall[ci]);
            uint32_t in_data = more ? words[ip] : 0;
            uint32_t out_ready = po == 0 || !out_stall[co];
            low(0, in_valid, in_data, out_ready);
            bool in_ready = top->in_ready;
            bool out_valid = top->out_valid;
            uint32_t out_data = top->out_data;
            high();
            bool took = in_valid && in_ready;
            if (out_valid && out_ready) {
                outputs.push_back(PbOutput{cycle, out_data, 0});
                idle = 0;
            } else if (!more) {
                idle++;
            }
            held = in_valid && !took;
            if (took) {
                last_input = cycle;
                ip++;
            }
            cycle++;
            if (++ci == pi) ci = 0;
            if (++co == po) co = 0;
            if (ip >= n && idle >= quiet) {
                r->status = 0;
                break;
            }
            if (ip < n && cycle >= limit) {
                r->status = 1;
                break;
            }
        }
        r->pad = 0;
        r->taken = ip;
        r->last_input_cycle = last_input;
        r->cycles = cycle;
        r->n_outputs = outputs.size();
        r->outputs = outputs.data();
    }

    int32_t trace_open(const char* path) {
#ifdef PB_TRACE
        if (vcd) {
            vcd->close();
            delete vcd;
        }
        vcd = new VerilatedVcdC;
        top->trace(vcd, 99);
        vcd->set_time_unit("1ns");
        vcd->set_time_resolution("1ns");
        vcd->open(path);
        if (!vcd->isOpen()) {
            delete vcd;
            vcd = nullptr;
            return -2;
        }
        return 0;
#else
        (void)path;
        return -1;
#endif
    }
};

}  // namespace pb

#ifdef PB_TRACE
#define PB_TRACED 1
#else
#define PB_TRACED 0
#endif

// Defines `extern "C" const PbApi* FN(void)` for the Verilated class CLASS.
#define PB_DEFINE_API(FN, CLASS)                                                                 \
    namespace {                                                                                  \
    using FN##_model = pb::Model<CLASS>;                                                         \
    void* FN##_create() { return new FN##_model(); }                                             \
    void FN##_destroy(void* m) { delete static_cast<FN##_model*>(m); }                           \
    int32_t FN##_trace_open(void* m, const char* p) {                                            \
        return static_cast<FN##_model*>(m)->trace_open(p);                                       \
    }                                                                                            \
    void FN##_reset(void* m) { static_cast<FN##_model*>(m)->reset(); }                           \
    uint64_t FN##_tick(void* m, uint32_t v, uint32_t d, uint32_t r) {                            \
        return static_cast<FN##_model*>(m)->tick(v, d, r);                                       \
    }                                                                                            \
    void FN##_run_stream(void* m, const uint32_t* w, uint64_t n, const uint8_t* is, uint64_t pi, \
                         const uint8_t* os, uint64_t po, uint64_t q, uint64_t l,                 \
                         PbStreamResult* r) {                                                    \
        static_cast<FN##_model*>(m)->run_stream(w, n, is, pi, os, po, q, l, r);                  \
    }                                                                                            \
    const PbApi FN##_table = {PB_ABI_VERSION, PB_TRACED,     FN##_create, FN##_destroy,          \
                              FN##_trace_open, FN##_reset, FN##_tick,   FN##_run_stream};        \
    }                                                                                            \
    extern "C" __attribute__((visibility("default"))) const PbApi* FN(void) { return &FN##_table; }

#endif  // PROTOBRAIN_PB_SHIM_H
