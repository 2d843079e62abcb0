// protobrain sim: the C ABI over one Verilated `protobrain_core` model.
//
//   Rust (sim::verilated) ──► PbApi function table ──► Model<V> ──► V (Verilator class)
//                                                         │
//                                     run_stream: the host loop of spec::stream::Host in C++
//
// The link is LANES 32-bit words per beat (docs/design.md "A wider link: LANES"): the model's
// in_data/out_data are IData (LANES 1), QData (LANES 2) or VlWide<LANES> (lane 0 in the low
// word), and the table says which (`lanes`); beats cross the ABI as LANES words, lane 0 first.
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
#include <type_traits>
#include <utility>
#include <vector>

#include "verilated.h"
#ifdef PB_TRACE
#include "verilated_vcd_c.h"
#endif

// Bump when the table or the structs change; the Rust side checks it.
#define PB_ABI_VERSION 2

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
    uint64_t taken;             // input beats taken (words at LANES 1)
    uint64_t last_input_cycle;  // cycle of the last input beat taken
    uint64_t cycles;            // cycles simulated, quiet tail included
    uint64_t n_outputs;       // output words: LANES per beat, each with the beat's cycle
    const PbOutput* outputs;  // owned by the model; valid until its next call
};

// The function table of one model class.
struct PbApi {
    uint32_t abi_version;  // PB_ABI_VERSION
    uint32_t traced;       // 1 if built with PB_TRACE
    uint32_t lanes;        // words per beat of in_data and out_data
    uint32_t pad;
    void* (*create)(void);
    void (*destroy)(void* m);
    // Open a VCD file and dump every following half cycle into it. 0 on success, -1 when the
    // model was built without tracing, -2 when the file could not be opened.
    int32_t (*trace_open)(void* m, const char* path);
    // One cycle with rst high (inputs idle); the next cycle is cycle 0.
    void (*reset)(void* m);
    // One cycle: drive the inputs with the clock low, settle, sample the outputs, rising edge.
    // Returns in_ready in bit 0, out_valid in bit 1, out_data in bits 63:32. At LANES > 1 it
    // drives in_data in lane 0 (the other lanes zero) and returns lane 0 of out_data.
    uint64_t (*tick)(void* m, uint32_t in_valid, uint32_t in_data, uint32_t out_ready);
    // Reset, then run spec::stream::Host over the flattened beats `words` (`n_words` a
    // multiple of `lanes`) with the stall patterns (an empty pattern never stalls); `quiet` =
    // spec::stream::quiet_cycles(dim, command words).
    void (*run_stream)(void* m, const uint32_t* words, uint64_t n_words, const uint8_t* in_stall,
                       uint64_t n_in_stall, const uint8_t* out_stall, uint64_t n_out_stall,
                       uint64_t quiet, uint64_t limit, PbStreamResult* result);
    // `tick` on beats: `in_beat` and `out_beat` are `lanes` words each, lane 0 first (out_beat
    // gets out_data as seen during the cycle). Returns in_ready in bit 0, out_valid in bit 1.
    uint32_t (*tick_beat)(void* m, uint32_t in_valid, const uint32_t* in_beat, uint32_t out_ready,
                          uint32_t* out_beat);
};

}  // extern "C"

namespace pb {

// A port of LANES words: IData (1), QData (2) or VlWide<LANES>; word 0 = lane 0 = bits 31:0.
inline void put(IData& port, const uint32_t* beat) { port = beat[0]; }
inline void put(QData& port, const uint32_t* beat) {
    port = static_cast<QData>(beat[0]) | (static_cast<QData>(beat[1]) << 32);
}
template <std::size_t N>
inline void put(VlWide<N>& port, const uint32_t* beat) {
    for (std::size_t i = 0; i < N; i++) port[i] = beat[i];
}
inline void get(IData port, uint32_t* beat) { beat[0] = port; }
inline void get(QData port, uint32_t* beat) {
    beat[0] = static_cast<uint32_t>(port);
    beat[1] = static_cast<uint32_t>(port >> 32);
}
template <std::size_t N>
inline void get(const VlWide<N>& port, uint32_t* beat) {
    for (std::size_t i = 0; i < N; i++) beat[i] = port[i];
}

// spec::lanes::MAX_LANES
constexpr std::size_t MAX_LANES = 64;

template <class V>
struct Model {
    using InPort = std::remove_reference_t<decltype(std::declval<V&>().in_data)>;
    using OutPort = std::remove_reference_t<decltype(std::declval<V&>().out_data)>;
    // words per beat: sizeof IData 4, QData 8, VlWide<N> 4·N
    static constexpr std::size_t L = sizeof(InPort) / 4;
    static_assert(sizeof(InPort) == 4 * L && sizeof(OutPort) == 4 * L, "in_data, out_data: LANES words");
    static_assert(L >= 1 && L <= MAX_LANES, "LANES in 1..=64");

    VerilatedContext ctx;
    V* top;
    uint64_t time = 0;  // half cycles; the waveform shows 5 ns per half cycle (10 ns cycles)
    std::vector<PbOutput> outputs;
    static constexpr uint32_t zero[L] = {};  // the idle beat
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
        put(top->in_data, zero);
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

    // Clock low with the given inputs (`in_beat`: L words), settled.
    inline void low(uint32_t rst, uint32_t in_valid, const uint32_t* in_beat, uint32_t out_ready) {
        top->clk = 0;
        top->rst = rst;
        top->in_valid = in_valid;
        put(top->in_data, in_beat);
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
        low(1, 0, zero, 0);
        high();
    }

    uint64_t tick(uint32_t in_valid, uint32_t in_data, uint32_t out_ready) {
        uint32_t in[L] = {in_data};
        uint32_t out[L];
        low(0, in_valid, in, out_ready);
        get(top->out_data, out);
        uint64_t seen = (top->in_ready ? 1u : 0u) | (top->out_valid ? 2u : 0u) |
                        (static_cast<uint64_t>(out[0]) << 32);
        high();
        return seen;
    }

    uint32_t tick_beat(uint32_t in_valid, const uint32_t* in_beat, uint32_t out_ready,
                       uint32_t* out_beat) {
        low(0, in_valid, in_beat, out_ready);
        get(top->out_data, out_beat);
        uint32_t seen = (top->in_ready ? 1u : 0u) | (top->out_valid ? 2u : 0u);
        high();
        return seen;
    }

    // spec::stream::Host, line for line (and hdl/src/stream.rs's Icarus bench), on beats: `n`
    // beats of L words at `words`.
    void run_stream(const uint32_t* words, uint64_t n_words, const uint8_t* in_stall, uint64_t pi,
                    const uint8_t* out_stall, uint64_t po, uint64_t quiet, uint64_t limit,
                    PbStreamResult* r) {
        const uint64_t n = n_words / L;
        reset();
        outputs.clear();
        uint64_t ip = 0, idle = 0, cycle = 0, last_input = 0;
        bool held = false;
        uint64_t ci = 0, co = 0;  // cycle % pi, cycle % po
        for (;;) {
            bool more = ip < n;
            uint32_t in_valid = more && (held || pi == 0 || !in_stall[ci]);
            const uint32_t* in_beat = more ? words + ip * L : zero;
            uint32_t out_ready = po == 0 || !out_stall[co];
            low(0, in_valid, in_beat, out_ready);
            bool in_ready = top->in_ready;
            bool out_valid = top->out_valid;
            uint32_t out_beat[L];
            get(top->out_data, out_beat);
            high();
            bool took = in_valid && in_ready;
            if (out_valid && out_ready) {
                for (std::size_t j = 0; j < L; j++) outputs.push_back(PbOutput{cycle, out_beat[j], 0});
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
    uint32_t FN##_tick_beat(void* m, uint32_t v, const uint32_t* d, uint32_t r,                  \
                            uint32_t* o) {                                                       \
        return static_cast<FN##_model*>(m)->tick_beat(v, d, r, o);                               \
    }                                                                                            \
    void FN##_run_stream(void* m, const uint32_t* w, uint64_t n, const uint8_t* is, uint64_t pi, \
                         const uint8_t* os, uint64_t po, uint64_t q, uint64_t l,                 \
                         PbStreamResult* r) {                                                    \
        static_cast<FN##_model*>(m)->run_stream(w, n, is, pi, os, po, q, l, r);                  \
    }                                                                                            \
    const PbApi FN##_table = {PB_ABI_VERSION,  PB_TRACED,   FN##_model::L, 0,                    \
                              FN##_create,     FN##_destroy, FN##_trace_open, FN##_reset,        \
                              FN##_tick,       FN##_run_stream, FN##_tick_beat};                 \
    }                                                                                            \
    extern "C" __attribute__((visibility("default"))) const PbApi* FN(void) { return &FN##_table; }

#endif  // PROTOBRAIN_PB_SHIM_H
