// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Pe x Simd multiply-accumulate array (golden.ops.dense over a `last`-delimited dot product).
// Each input beat brings Simd unsigned activation codes a[s] and Pe x Simd signed weight codes
// w[p][s]; PE p accumulates sum_s w[p][s] * a[s] over the beats of one dot product and, after
// the beat flagged in_last_i, emits bias[p] + that sum (bias sampled on the FIRST beat). One
// output beat per dot product; back-to-back dot products with no idle cycle; II = 1.
//
// Pipeline (latency 2 cycles from accepting the last beat to out_valid_o, when unstalled; 3
// with InReg = 1, which registers the input beat first):
//   stage 1  products w*a and a balanced adder tree per PE (+ bias on a first beat), registered
//            (LutMul = 1: the products as shifted partial products in the same tree, no
//            multiplier inferred);
//   stage 2  accumulator per PE; on a last beat the sum goes to a two-entry output buffer
//            (main register + skid register).
// in_ready_o is a function of registers only (it does not depend on out_ready_i): the skid
// register absorbs the one result that may arrive while the main register is stalled, and the
// array stops only when a last beat reaches stage 2 while both entries are full. Non-last beats
// keep accumulating under back-pressure.
//
// Widths: every partial sum of one beat fits SumWidth = signed width of
// Simd*(2^ABits-1)*(2^(WBits-1)-1) + 2^(BiasWidth-1), every running sum fits AccWidth, which
// must be at least the signed width of MaxBeats*Simd*(2^ABits-1)*(2^(WBits-1)-1) +
// 2^(BiasWidth-1) (checked at elaboration), so nothing overflows. Weight codes must lie in the
// symmetric range -(2^(WBits-1)-1)..2^(WBits-1)-1 and a dot product may have at most MaxBeats
// beats (the contract; the hardware does not check either at run time).
`include "nuq_assert.svh"

module mac_array #(
  /// Processing elements (output channels computed in parallel); 1..256.
  parameter int Pe        = 2,
  /// Activation lanes per beat (inputs consumed per PE per cycle); 1..1024.
  parameter int Simd      = 4,
  /// Weight code width W in bits, signed symmetric -(2^(W-1)-1)..2^(W-1)-1; 2..16.
  parameter int WBits     = 4,
  /// Activation code width A in bits, unsigned 0..2^A-1; 1..16.
  parameter int ABits     = 4,
  /// Accumulator (output) width in bits, signed; AccMin..62 (AccMin: see the header).
  parameter int AccWidth  = 20,
  /// Bias width in bits, signed two's complement; 1..32.
  parameter int BiasWidth = 8,
  /// Largest number of beats in one dot product; 1..65536.
  parameter int MaxBeats  = 16,
  /// Width of the user side band passed from the last beat to the result, bits; 1..1024.
  parameter int UserWidth = 1,
  /// 1: the input beat is registered before the products (latency 3; cuts the path from a
  /// block-RAM output or an input mux into the multipliers); 0: latency 2.
  parameter int InReg     = 0,
  /// 1: every product is written as ABits shifted, gated copies of the weight summed in the
  /// adder tree (Simd*ABits leaves), so that synthesis infers no multiplier (no DSP block:
  /// narrow products in LUTs); 0: w*a products (the tool chooses DSP or LUTs).
  parameter int LutMul    = 0
) (
  /// Clock, rising edge.
  input  logic                         clk_i,
  /// Asynchronous active-low reset; drops every beat and partial sum in flight.
  input  logic                         rst_ni,
  /// Input beat valid.
  input  logic                         in_valid_i,
  /// Input beat accepted when in_valid_i && in_ready_o (driven from registers only).
  output logic                         in_ready_o,
  /// Simd unsigned activation codes 0..2^ABits-1, lane s at [s*ABits +: ABits].
  input  logic [Simd*ABits-1:0]        in_act_i,
  /// Pe*Simd signed weight codes, PE p lane s at [(p*Simd+s)*WBits +: WBits].
  input  logic [Pe*Simd*WBits-1:0]     in_wgt_i,
  /// Pe signed biases, PE p at [p*BiasWidth +: BiasWidth]; sampled on a dot product's first beat.
  input  logic [Pe*BiasWidth-1:0]      in_bias_i,
  /// High on the last beat of a dot product (1..MaxBeats beats per dot product).
  input  logic                         in_last_i,
  /// User side band; the value on the last beat comes out with the result.
  input  logic [UserWidth-1:0]         in_user_i,
  /// Result valid (one beat per dot product).
  output logic                         out_valid_o,
  /// Downstream ready (back-pressure when low).
  input  logic                         out_ready_i,
  /// Pe signed results bias + sum w*a, PE p at [p*AccWidth +: AccWidth].
  output logic [Pe*AccWidth-1:0]       out_data_o,
  /// User side band of the dot product's last beat.
  output logic [UserWidth-1:0]         out_user_o
);

  // ---- widths ------------------------------------------------------------------------------
  // Largest |w*a| of one lane, largest |partial sum| of one beat plus bias, largest |result|.
  localparam longint ProdBound = ((longint'(1) << ABits) - 1) * ((longint'(1) << (WBits - 1)) - 1);
  localparam longint BiasBound = longint'(1) << (BiasWidth - 1);
  localparam longint SumBound  = longint'(Simd) * ProdBound + BiasBound;
  localparam longint AccBound  = longint'(MaxBeats) * longint'(Simd) * ProdBound + BiasBound;
  // Signed width of a bound b: bit_length(b) + 1 = $clog2(b + 1) + 1.
  localparam int     SumWidth  = $clog2(SumBound + 1) + 1;
  localparam int     AccMin    = $clog2(AccBound + 1) + 1;
  // Leaves of the adder tree: Simd products (LutMul: Simd*ABits partial products) rounded up
  // to a power of two.
  localparam int     Terms     = (LutMul == 1) ? Simd * ABits : Simd;
  localparam int     Leaves    = 1 << $clog2(Terms);

  // ---- parameter checks at elaboration ----------------------------------------------------
  if (Pe < 1 || Pe > 256) begin : gen_check_pe
    `NUQ_ELAB_FATAL((1, "mac_array: Pe=%0d must lie in 1..256", Pe))
  end
  if (Simd < 1 || Simd > 1024) begin : gen_check_simd
    `NUQ_ELAB_FATAL((1, "mac_array: Simd=%0d must lie in 1..1024", Simd))
  end
  if (WBits < 2 || WBits > 16) begin : gen_check_wbits
    `NUQ_ELAB_FATAL((1, "mac_array: WBits=%0d must lie in 2..16", WBits))
  end
  if (ABits < 1 || ABits > 16) begin : gen_check_abits
    `NUQ_ELAB_FATAL((1, "mac_array: ABits=%0d must lie in 1..16", ABits))
  end
  if (BiasWidth < 1 || BiasWidth > 32) begin : gen_check_bias
    `NUQ_ELAB_FATAL((1, "mac_array: BiasWidth=%0d must lie in 1..32", BiasWidth))
  end
  if (MaxBeats < 1 || MaxBeats > 65536) begin : gen_check_beats
    `NUQ_ELAB_FATAL((1, "mac_array: MaxBeats=%0d must lie in 1..65536", MaxBeats))
  end
  if (UserWidth < 1 || UserWidth > 1024) begin : gen_check_user
    `NUQ_ELAB_FATAL((1, "mac_array: UserWidth=%0d must lie in 1..1024", UserWidth))
  end
  if (InReg != 0 && InReg != 1) begin : gen_check_inreg
    `NUQ_ELAB_FATAL((1, "mac_array: InReg=%0d must be 0 or 1", InReg))
  end
  if (LutMul != 0 && LutMul != 1) begin : gen_check_lutmul
    `NUQ_ELAB_FATAL((1, "mac_array: LutMul=%0d must be 0 or 1", LutMul))
  end
  if (AccWidth < AccMin) begin : gen_check_acc_bound
    `NUQ_ELAB_FATAL((1, "mac_array: AccWidth=%0d is below its bound %0d = %s (|result| <= %0d)",
                     AccWidth, AccMin,
                     "signed width of MaxBeats*Simd*(2^ABits-1)*(2^(WBits-1)-1)+2^(BiasWidth-1)",
                     AccBound))
  end
  if (AccWidth > 62) begin : gen_check_acc_max
    `NUQ_ELAB_FATAL((1, "mac_array: AccWidth=%0d must be at most 62", AccWidth))
  end

  // ---- input side: first-beat flag and stage enable ----------------------------------------
  logic                   stall;     // a last beat in stage 2 and both output entries full
  logic                   accept;    // an input beat is taken this cycle
  logic                   first_q;   // the next accepted beat starts a dot product

  assign in_ready_o = ~stall;
  assign accept     = in_valid_i & ~stall;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      first_q <= 1'b1;
    end else if (accept) begin
      first_q <= in_last_i;
    end
  end

  // ---- optional input register (InReg = 1) -------------------------------------------------
  // b_*: the beat stage 1 works on: the ports (InReg = 0) or a register loaded like stage 1.
  logic                     b_valid, b_first, b_last;
  logic [Simd*ABits-1:0]    b_act;
  logic [Pe*Simd*WBits-1:0] b_wgt;
  logic [Pe*BiasWidth-1:0]  b_bias;
  logic [UserWidth-1:0]     b_user;

  if (InReg == 1) begin : gen_in_reg
    logic                     v_q, f_q, l_q;
    logic [Simd*ABits-1:0]    a_q;
    logic [Pe*Simd*WBits-1:0] w_q;
    logic [Pe*BiasWidth-1:0]  bi_q;
    logic [UserWidth-1:0]     u_q;
    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        v_q <= 1'b0;
      end else if (!stall) begin
        v_q <= in_valid_i;
      end
    end
    always_ff @(posedge clk_i) begin
      if (!stall && in_valid_i) begin
        f_q  <= first_q;
        l_q  <= in_last_i;
        a_q  <= in_act_i;
        w_q  <= in_wgt_i;
        bi_q <= in_bias_i;
        u_q  <= in_user_i;
      end
    end
    assign {b_valid, b_first, b_last, b_act, b_wgt, b_bias, b_user} =
        {v_q, f_q, l_q, a_q, w_q, bi_q, u_q};
  end else begin : gen_no_in_reg
    assign {b_valid, b_first, b_last, b_act, b_wgt, b_bias, b_user} =
        {in_valid_i, first_q, in_last_i, in_act_i, in_wgt_i, in_bias_i, in_user_i};
  end

  // ---- stage 1: products and adder tree per PE ---------------------------------------------
  logic [Pe*SumWidth-1:0] psum_d;

  for (genvar p = 0; p < Pe; p++) begin : gen_pe
    logic signed [SumWidth-1:0] node [2*Leaves-1:1];  // heap order: node i = 2i + (2i+1)

    always_comb begin
      for (int s = 0; s < Leaves; s++) begin
        node[Leaves + s] = '0;
      end
      for (int s = 0; s < Simd; s++) begin
        if (LutMul == 1) begin
          // a*w = sum over the set bits i of a of w * 2^i (exact: |w| * 2^i < 2^(SumWidth-1)).
          for (int i = 0; i < ABits; i++) begin
            node[Leaves + s*ABits + i] =
                b_act[s*ABits + i] ? (SumWidth'($signed(b_wgt[(p*Simd+s)*WBits +: WBits])) <<< i)
                                   : '0;
          end
        end else begin
          // (WBits+ABits+1)-bit exact product, then to SumWidth (>= WBits+ABits: no loss).
          node[Leaves + s] = SumWidth'($signed(b_wgt[(p*Simd+s)*WBits +: WBits]) *
                                       $signed({1'b0, b_act[s*ABits +: ABits]}));
        end
      end
      for (int i = Leaves - 1; i >= 1; i--) begin
        node[i] = node[2*i] + node[2*i+1];
      end
    end

    // The bias joins the sum of the first beat only.
    assign psum_d[p*SumWidth +: SumWidth] =
        node[1] + (b_first ? SumWidth'($signed(b_bias[p*BiasWidth +: BiasWidth])) : '0);
  end

  logic                   s1_valid_q, s1_first_q, s1_last_q;
  logic [Pe*SumWidth-1:0] s1_psum_q;
  logic [UserWidth-1:0]   s1_user_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s1_valid_q <= 1'b0;
      s1_first_q <= 1'b0;
      s1_last_q  <= 1'b0;
      s1_psum_q  <= '0;
      s1_user_q  <= '0;
    end else if (!stall) begin
      s1_valid_q <= b_valid;
      if (b_valid) begin
        s1_first_q <= b_first;
        s1_last_q  <= b_last;
        s1_psum_q  <= psum_d;
        s1_user_q  <= b_user;
      end
    end
  end

  // ---- stage 2: accumulators ---------------------------------------------------------------
  logic [Pe*AccWidth-1:0] acc_d, acc_q;

  for (genvar p = 0; p < Pe; p++) begin : gen_acc
    logic signed [AccWidth-1:0] base;
    assign base = s1_first_q ? '0 : $signed(acc_q[p*AccWidth +: AccWidth]);
    assign acc_d[p*AccWidth +: AccWidth] =
        base + AccWidth'($signed(s1_psum_q[p*SumWidth +: SumWidth]));
  end

  logic push;  // a finished dot product enters the output buffer
  assign push  = s1_valid_q & s1_last_q & ~stall;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      acc_q <= '0;
    end else if (s1_valid_q && !s1_last_q) begin
      acc_q <= acc_d;
    end
  end

  // ---- output buffer: main register + skid register ----------------------------------------
  logic                   main_valid_q, skid_valid_q;
  logic [Pe*AccWidth-1:0] main_data_q, skid_data_q;
  logic [UserWidth-1:0]   main_user_q, skid_user_q;
  logic                   pop;

  assign stall       = s1_valid_q & s1_last_q & skid_valid_q;
  assign pop         = main_valid_q & out_ready_i;
  assign out_valid_o = main_valid_q;
  assign out_data_o  = main_data_q;
  assign out_user_o  = main_user_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      main_valid_q <= 1'b0;
      main_data_q  <= '0;
      main_user_q  <= '0;
      skid_valid_q <= 1'b0;
      skid_data_q  <= '0;
      skid_user_q  <= '0;
    end else if (!main_valid_q || pop) begin
      // Main register free: refill from the skid register first (push is 0 while it is full).
      main_valid_q <= skid_valid_q | push;
      skid_valid_q <= 1'b0;
      if (skid_valid_q) begin
        main_data_q <= skid_data_q;
        main_user_q <= skid_user_q;
      end else if (push) begin
        main_data_q <= acc_d;
        main_user_q <= s1_user_q;
      end
    end else if (push) begin
      // Main register stalled: the result waits in the skid register.
      skid_valid_q <= 1'b1;
      skid_data_q  <= acc_d;
      skid_user_q  <= s1_user_q;
    end
  end

endmodule
