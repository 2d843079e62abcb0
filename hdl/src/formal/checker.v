// protobrain_formal: the property checker of the stream contract (docs/verification.md).
//
// It instantiates the emitted protobrain_core, drives it from free inputs (the solver picks
// in_data, in_valid and out_ready on every cycle), assumes only that the host follows the
// AXI4-Stream rules on the input, and keeps a small abstract model of the command stream: it
// parses the words that really moved (valid and ready both high) into commands, decides for
// each one the response the contract gives it (or the 0xFF error and its code), and counts the
// rows the accepted commands must write. Yosys reads it with `read_verilog -formal`; the
// runner (hdl/src/formal/mod.rs) exposes a few internal nets of the core as ports (`expose`),
// sets the parameters (`chparam`) and picks one property group with a define:
//
//   AXI_OUT   output stream rules: out_valid holds and out_data is stable until taken
//   FRAMING   every response word is the one the contract gives, in order, and nothing else
//   SYNC_BOUND a SYNC offered after any prefix is answered within BOUND cycles
//   NO_WRITE  refused commands write nothing; accepted ones write exactly their rows
//   COVER     every command kind, every error code and the SYNC bound itself are reachable
//
// Reset: `rst` is high in cycle 0 only (every register also has its `initial` value).
`default_nettype none

module protobrain_formal #(
    parameter DIM = 2,
    parameter W = 1,
    parameter SCR = 4,
    parameter ACC = 4,
    parameter VERSION = 1,
    parameter BOUND = 23
) (
    input wire clk,
    input wire [31:0] in_data,
    input wire in_valid,
    input wire out_ready
);
    localparam [7:0] OP_INFO = 8'h01, OP_SYNC = 8'h02, OP_LOAD_WEIGHTS = 8'h10,
        OP_LOAD_BIAS = 8'h11, OP_SET_QUANT = 8'h12, OP_WRITE_ACT = 8'h20, OP_READ_ACT = 8'h21,
        OP_MATMUL = 8'h30, OP_ACTIVATE = 8'h31, OP_READ_ACC = 8'h32, OP_COUNTERS = 8'h40,
        OP_LOAD_QUANT = 8'h13, OP_LOAD_TILE = 8'h14;
    localparam [23:0] LEN_WEIGHTS = DIM * W, LEN_BIAS = DIM;
    localparam [31:0] HDR_SYNC_CMD = 32'h02000001;

    reg init = 1'b1;
    always @(posedge clk) init <= 1'b0;

    wire in_ready, out_valid;
    wire [31:0] out_data;
    // probes: nets of protobrain_core made ports by the runner (yosys `expose`)
    wire p_sp_we, p_acc_we, p_wl_en, p_wl_bank, p_bias_we, p_q_relu;
    wire [15:0] p_sp_waddr, p_wl_row, p_bias_idx;
    wire [7:0] p_q_zero;
    // every column's multiplier and shift register, column n in bits [16n +: 16] / [6n +: 6]
    // (the runner writes one port connection per column where the marker below stands)
    wire [16*DIM-1:0] p_q_mult;
    wire [6*DIM-1:0] p_q_shift;

    protobrain_core dut (
        .clk(clk), .rst(init),
        .in_data(in_data), .in_valid(in_valid), .in_ready(in_ready),
        .out_data(out_data), .out_valid(out_valid), .out_ready(out_ready),
        .scratch$write_enable(p_sp_we), .scratch$write_addr(p_sp_waddr),
        .accmem$write_enable(p_acc_we),
        .ctl$wl_en(p_wl_en), .ctl$wl_row(p_wl_row), .ctl$wl_bank(p_wl_bank),
        .ctl$bias_we(p_bias_we), .ctl$bias_idx(p_bias_idx),
        .ctl$q_relu(p_q_relu), .ctl$q_zero(p_q_zero) /*QUANT_PROBES*/
    );

    wire in_fire = in_valid && in_ready;
    wire out_fire = out_valid && out_ready;

    // ---- the host: AXI4-Stream rules on the input (the only assumption on the stream) ----
    // nothing is offered during reset
    always @* if (init) assume(!in_valid);
    always @(posedge clk) begin
        if (!init && $past(in_valid && !in_ready)) begin
            assume(in_valid);
            assume(in_data == $past(in_data));
        end
    end

    // ---- abstract model: parse the accepted words into commands ----
    reg m_busy = 1'b0;          // a header has been taken, payload words are still due
    reg [7:0] m_op = 8'h0;
    reg [23:0] m_len = 24'h0;   // payload length from the header
    reg [23:0] m_left = 24'h0;  // payload words still due
    reg [7:0] m_err = 8'h0;     // error code decided so far (0: none)
    reg [31:0] m_a0 = 32'h0;    // first payload word

    wire [7:0] h_op = in_data[31:24];
    wire [23:0] h_len = in_data[23:0];
    wire h_known = h_op == OP_INFO || h_op == OP_SYNC || h_op == OP_LOAD_WEIGHTS
        || h_op == OP_LOAD_BIAS || h_op == OP_SET_QUANT || h_op == OP_WRITE_ACT
        || h_op == OP_READ_ACT || h_op == OP_MATMUL || h_op == OP_ACTIVATE
        || h_op == OP_READ_ACC || h_op == OP_COUNTERS || h_op == OP_LOAD_QUANT || h_op == OP_LOAD_TILE;
    wire h_len_ok =
        ((h_op == OP_INFO || h_op == OP_COUNTERS) && h_len == 24'd0)
        || ((h_op == OP_SYNC || h_op == OP_SET_QUANT || h_op == OP_READ_ACT
             || h_op == OP_READ_ACC || h_op == OP_LOAD_TILE) && h_len == 24'd1)
        || ((h_op == OP_MATMUL || h_op == OP_ACTIVATE || h_op == OP_SET_QUANT) && h_len == 24'd2)
        || (h_op == OP_LOAD_WEIGHTS && h_len == LEN_WEIGHTS)
        || ((h_op == OP_LOAD_BIAS || h_op == OP_LOAD_QUANT) && h_len == LEN_BIAS)
        || (h_op == OP_WRITE_ACT && h_len != 24'd0);
    wire [7:0] h_err = !h_known ? 8'd1 : !h_len_ok ? 8'd2 : 8'd0;

    // payload word index of the word on in_data
    wire [23:0] p_idx = m_len - m_left;
    // ranges: start + n <= ROWS without wrapping (17-bit sums)
    wire [15:0] in_start = in_data[15:0];
    wire [15:0] a0_start = m_a0[15:0];
    wire [15:0] a0_n = m_a0[31:16];
    wire [16:0] end_w = {1'b0, in_data[15:0]} + {1'b0, in_data[31:16]};
    wire [16:0] end_b = {1'b0, in_data[15:0]} + {1'b0, a0_n};
    wire [16:0] end_a0 = {1'b0, a0_start} + {1'b0, a0_n};
    wire [16:0] end_t = {1'b0, in_data[15:0]} + DIM;   // LOAD_TILE: src + DIM
    wire [39:0] wa_words = in_data[31:16] * W;

    // the decision taken on this word, if it is the last of its command
    reg [7:0] d_err;            // error code of the command (0: accepted)
    reg d_done;                 // the command is complete with this word
    reg [31:0] d_a0;            // first payload word (new if this is it)
    always @* begin
        d_done = 1'b0;
        d_err = m_err;
        d_a0 = m_a0;
        if (!m_busy) begin
            d_err = h_err;
            d_done = h_len == 24'd0;
        end else begin
            d_done = m_left == 24'd1;
            // LOAD_QUANT: any column's S > 47 refuses the command, answered after the whole
            // payload (the code is carried to the last word)
            if (m_op == OP_LOAD_QUANT && m_err == 8'd0 && in_data[21:16] > 6'd47) d_err = 8'd3;
            if (p_idx == 24'd0) begin
                d_a0 = in_data;
                if (m_err == 8'd0) begin
                    if (m_op == OP_WRITE_ACT) begin
                        if ({16'h0, m_len - 24'd1} != wa_words) d_err = 8'd2;
                        else if (end_w > SCR) d_err = 8'd3;
                    end else if (m_op == OP_SET_QUANT) begin
                        // both forms; a 2-word one is answered after its Z word
                        if (in_data[21:16] > 6'd47) d_err = 8'd3;
                    end else if (m_op == OP_READ_ACT) begin
                        if (end_w > SCR) d_err = 8'd3;
                    end else if (m_op == OP_READ_ACC) begin
                        if (end_w > ACC) d_err = 8'd3;
                    end else if (m_op == OP_LOAD_TILE) begin
                        if (end_t > SCR) d_err = 8'd3;
                    end
                end
            end else if (p_idx == 24'd1 && m_err == 8'd0) begin
                if (m_op == OP_MATMUL) begin
                    if (end_a0 > SCR || end_b > ACC) d_err = 8'd3;
                end else if (m_op == OP_ACTIVATE) begin
                    if (end_a0 > ACC || end_b > SCR) d_err = 8'd3;
                end
            end
        end
    end

    wire [7:0] cur_op = m_busy ? m_op : h_op;

    // expected writes of accepted commands, counted when the command is decided (before any of
    // its writes can happen), and the writes the core really did
    reg [9:0] exp_sp = 0, exp_acc = 0, exp_wl = 0, exp_bias = 0;
    reg [9:0] got_sp = 0, got_acc = 0, got_wl = 0, got_bias = 0;
    reg [15:0] sp_next = 0;     // address of the next scratchpad write
    reg [15:0] wl_next = 0;     // next weight row
    reg [15:0] bias_next = 0;   // next bias index
    // architectural registers the model predicts: every column's multiplier and shift (column
    // n in bits [16n +: 16] / [6n +: 6]), relu and the output zero point
    reg [16*DIM-1:0] m_mult = 0;
    reg [6*DIM-1:0] m_shift = 0;
    reg m_relu = 0;
    reg [7:0] m_zero = 0;
    // LOAD_QUANT: the words so far (shifted in from the top: after DIM words, word n is column
    // n), applied to m_mult/m_shift the cycle after an accepted command's last word, when the
    // core loads its columns from the row buffer (docs/architecture.md, cycle table)
    reg [16*DIM-1:0] lq_mult = 0;
    reg [6*DIM-1:0] lq_shift = 0;
    reg lq_apply = 1'b0;
    wire [16*DIM+15:0] lq_mult_in = {in_data[15:0], lq_mult};
    wire [6*DIM+5:0] lq_shift_in = {in_data[21:16], lq_shift};
    reg m_bank = 0;             // current weight bank
    reg m_swap = 0;             // a complete LOAD_WEIGHTS waits for the next MATMUL

    // one expected response at a time (the front end finishes a response before it takes the
    // next header; FRAMING asserts it)
    reg pend = 1'b0;
    reg [31:0] pend_hdr = 0;
    reg [23:0] pend_n = 0;      // payload words of the response
    reg [23:0] pend_i = 0;      // response words delivered so far (0: header next)
    reg [7:0] pend_kind = 0;    // opcode of the command, 0xFF for an error
    reg [31:0] pend_word = 0;   // token or error word
    reg pend_ours = 0;          // the SYNC being timed by SYNC_BOUND

    // SYNC_BOUND: the watch starts when the host offers a SYNC header at a command boundary
    reg w_on = 1'b0;
    reg [7:0] w_age = 0;
    reg w_tok_in = 1'b0;        // the SYNC's token word has been taken
    wire w_start = !init && !w_on && !m_busy && in_valid && in_data == HDR_SYNC_CMD;
    wire w_active = w_on || w_start;
    wire [7:0] age_now = w_on ? w_age : 8'd1;

    // the response of a command completed now
    reg e_has;
    reg [31:0] e_hdr, e_word;
    reg [23:0] e_n;
    always @* begin
        e_has = 1'b1;
        e_hdr = 0;
        e_n = 0;
        e_word = d_a0;
        if (d_err != 8'd0) begin
            e_hdr = 32'hFF000001;
            e_n = 1;
            e_word = {16'h0, cur_op, d_err};
        end else if (cur_op == OP_INFO) begin
            e_hdr = 32'h81000004;
            e_n = 4;
        end else if (cur_op == OP_SYNC) begin
            e_hdr = 32'h82000001;
            e_n = 1;
        end else if (cur_op == OP_COUNTERS) begin
            e_hdr = 32'hC0000009;
            e_n = 9;
        end else if (cur_op == OP_READ_ACT) begin
            e_n = d_a0[31:16] * W;
            e_hdr = {8'hA1, e_n};
        end else if (cur_op == OP_READ_ACC) begin
            e_n = d_a0[31:16] * DIM;
            e_hdr = {8'hB2, e_n};
        end else begin
            e_has = 1'b0;
        end
    end

    wire enq = in_fire && d_done && e_has;
    wire deq = out_fire && pend && pend_i == pend_n;
    wire tok_out = out_fire && pend && pend_kind == OP_SYNC && pend_i == 24'd1;
    wire w_done = tok_out && pend_ours;

    always @(posedge clk) begin
        if (in_fire) begin
            if (!m_busy) begin
                m_op <= h_op;
                m_len <= h_len;
                m_left <= h_len;
                m_busy <= h_len != 24'd0;
                // fixed-size payloads are decided at the header
                if (h_err == 8'd0 && h_op == OP_LOAD_WEIGHTS) exp_wl <= exp_wl + DIM;
                if (h_err == 8'd0 && h_op == OP_LOAD_BIAS) exp_bias <= exp_bias + DIM;
            end else begin
                m_left <= m_left - 24'd1;
                m_busy <= m_left != 24'd1;
                if (d_err == 8'd0 && m_err == 8'd0 && p_idx == 24'd0) begin
                    if (m_op == OP_WRITE_ACT) begin
                        exp_sp <= exp_sp + in_data[31:16];
                        sp_next <= in_data[15:0];
                    end
                    if (m_op == OP_LOAD_TILE) exp_wl <= exp_wl + DIM;
                    // SET_QUANT, either form: every column, relu and Z = 0 with the first word
                    if (m_op == OP_SET_QUANT) begin
                        m_mult <= {DIM{in_data[15:0]}};
                        m_shift <= {DIM{in_data[21:16]}};
                        m_relu <= in_data[24];
                        m_zero <= 8'd0;
                    end
                end
                // the 2-word SET_QUANT's Z (its first word passed: nothing refuses it later)
                if (m_err == 8'd0 && p_idx == 24'd1 && m_op == OP_SET_QUANT) m_zero <= in_data[7:0];
                if (m_op == OP_LOAD_QUANT) begin
                    lq_mult <= lq_mult_in[16*DIM+15:16];
                    lq_shift <= lq_shift_in[6*DIM+5:6];
                    if (d_done && d_err == 8'd0) lq_apply <= 1'b1;
                end
                if (d_err == 8'd0 && m_err == 8'd0 && p_idx == 24'd1) begin
                    if (m_op == OP_MATMUL) begin
                        exp_acc <= exp_acc + a0_n;
                        if (m_swap) begin
                            m_bank <= !m_bank;
                            m_swap <= 1'b0;
                        end
                    end
                    if (m_op == OP_ACTIVATE) begin
                        exp_sp <= exp_sp + a0_n;
                        sp_next <= in_data[15:0];
                    end
                end
                if (m_busy && d_done && d_err == 8'd0 && (m_op == OP_LOAD_WEIGHTS || m_op == OP_LOAD_TILE))
                    m_swap <= 1'b1;
            end
            m_err <= d_err;
            m_a0 <= d_a0;
        end
        if (lq_apply) begin
            m_mult <= lq_mult;
            m_shift <= lq_shift;
            lq_apply <= 1'b0;
        end
        if (p_sp_we) begin
            got_sp <= got_sp + 1;
            sp_next <= sp_next + 16'd1;
        end
        if (p_acc_we) got_acc <= got_acc + 1;
        if (p_wl_en) begin
            got_wl <= got_wl + 1;
            wl_next <= (wl_next == DIM - 1) ? 16'd0 : wl_next + 16'd1;
        end
        if (p_bias_we) begin
            got_bias <= got_bias + 1;
            bias_next <= (bias_next == DIM - 1) ? 16'd0 : bias_next + 16'd1;
        end

        if (out_fire && pend) pend_i <= pend_i + 24'd1;
        if (deq) pend <= 1'b0;
        if (enq) begin
            pend <= 1'b1;
            pend_hdr <= e_hdr;
            pend_n <= e_n;
            pend_i <= 0;
            pend_kind <= d_err != 8'd0 ? 8'hFF : cur_op;
            pend_word <= e_word;
            pend_ours <= w_active && cur_op == OP_SYNC && d_err == 8'd0;
        end

        if (w_done) begin
            w_on <= 1'b0;
            w_tok_in <= 1'b0;
        end else if (w_active) begin
            w_on <= 1'b1;
            w_age <= age_now + 8'd1;
            if (in_fire && m_busy && m_op == OP_SYNC) w_tok_in <= 1'b1;
        end

        if (init) begin
            m_busy <= 1'b0;
            pend <= 1'b0;
            w_on <= 1'b0;
        end
    end

`ifdef AXI_OUT
    // a word offered stays offered, unchanged, until it is taken
    always @(posedge clk) begin
        if (!init && !$past(init) && $past(out_valid && !out_ready)) begin
            assert(out_valid);
            assert(out_data == $past(out_data));
        end
    end
`endif

`ifdef FRAMING
    always @(posedge clk) begin
        if (!init) begin
            // no word without a command that is owed one
            if (out_fire) assert(pend);
            // the header, then the payload words we can predict
            if (out_fire && pend && pend_i == 0) assert(out_data == pend_hdr);
            if (out_fire && pend && pend_i == 1 && (pend_kind == 8'hFF || pend_kind == OP_SYNC))
                assert(out_data == pend_word);
            if (out_fire && pend && pend_kind == OP_INFO) begin
                if (pend_i == 1) assert(out_data == VERSION);
                if (pend_i == 2) assert(out_data == DIM);
                if (pend_i == 3) assert(out_data == SCR);
                if (pend_i == 4) assert(out_data == ACC);
            end
            // responses in command order: a command completes only once the last is answered
            if (enq) assert(!pend || deq);
        end
    end
`endif

`ifdef FAIR
    // fairness while timing: the host offers the SYNC and its token at once and takes every
    // response word
    always @* begin
        if (w_active) begin
            assume(out_ready);
            if (!w_tok_in) assume(in_valid);
        end
    end
`endif

`ifdef SYNC_BOUND
    always @(posedge clk) begin
        if (w_active && !w_done) assert(age_now < BOUND);
    end
`endif

`ifdef SYNC_TIGHT
    // the bound is reached: some prefix makes the SYNC take exactly BOUND cycles
    always @(posedge clk) begin
        if (w_done) cover(age_now == BOUND);
    end
`endif

`ifdef NO_WRITE
    always @(posedge clk) begin
        if (!init) begin
            // never more writes than accepted commands asked for
            assert(got_sp <= exp_sp);
            assert(got_acc <= exp_acc);
            assert(got_wl <= exp_wl);
            assert(got_bias <= exp_bias);
            // rows and registers in order
            if (p_sp_we) assert(p_sp_waddr == sp_next);
            if (p_wl_en) assert(p_wl_row == wl_next);
            if (p_bias_we) assert(p_bias_idx == bias_next);
            // the quantisation registers (every column's M and S, relu, Z) hold what the last
            // accepted SET_QUANT / LOAD_QUANT said: a refused one changes none of them
            assert(p_q_mult == m_mult);
            assert(p_q_shift == m_shift);
            assert(p_q_relu == m_relu);
            assert(p_q_zero == m_zero);
            // when a SYNC answers, every earlier command has written all its rows
            if (tok_out) begin
                assert(got_sp == exp_sp);
                assert(got_acc == exp_acc);
                assert(got_wl == exp_wl);
                assert(got_bias == exp_bias);
                assert(p_wl_bank == !m_bank);
            end
        end
    end
`endif

`ifdef COVER
    wire acc_evt = in_fire && d_done && d_err == 8'd0;
    wire err_evt = out_fire && pend && pend_kind == 8'hFF && pend_i == 1;
    always @(posedge clk) begin
        if (!init) begin
            cover(acc_evt && cur_op == OP_INFO);
            cover(acc_evt && cur_op == OP_SYNC);
            cover(acc_evt && cur_op == OP_LOAD_WEIGHTS);
            cover(acc_evt && cur_op == OP_LOAD_TILE);
            cover(acc_evt && cur_op == OP_LOAD_BIAS);
            cover(acc_evt && cur_op == OP_SET_QUANT);
            cover(acc_evt && cur_op == OP_WRITE_ACT && d_a0[31:16] != 0);
            cover(acc_evt && cur_op == OP_READ_ACT && d_a0[31:16] != 0);
            cover(acc_evt && cur_op == OP_MATMUL && a0_n != 0);
            cover(acc_evt && cur_op == OP_ACTIVATE && a0_n != 0);
            cover(acc_evt && cur_op == OP_READ_ACC && d_a0[31:16] != 0);
            cover(acc_evt && cur_op == OP_COUNTERS);
            cover(acc_evt && cur_op == OP_LOAD_QUANT);
            // contract v2: a SET_QUANT with a nonzero Z accepted, a LOAD_QUANT refused for a
            // shift (code 3 after its whole payload), a 2-word SET_QUANT refused for its shift,
            // and two columns holding different multipliers (only a LOAD_QUANT does that)
            cover(acc_evt && cur_op == OP_SET_QUANT && m_len == 24'd2 && in_data[7:0] != 8'd0);
            cover(err_evt && out_data[15:0] == {OP_LOAD_QUANT, 8'd3});
            cover(enq && m_busy && m_op == OP_SET_QUANT && m_len == 24'd2 && d_err == 8'd3);
            if (DIM > 1) cover(p_q_mult[15:0] != p_q_mult[16*DIM-1 -: 16]);
            cover(err_evt && out_data[7:0] == 8'd1);
            cover(err_evt && out_data[7:0] == 8'd2);
            cover(err_evt && out_data[7:0] == 8'd3);
            cover(deq && pend_kind == OP_COUNTERS);
            cover(deq && pend_kind == OP_READ_ACC && pend_n != 0);
            cover(p_acc_we);
            cover(p_sp_we && exp_acc != 0);
        end
    end
`endif
endmodule
