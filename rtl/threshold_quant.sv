// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Threshold (non-uniform) quantizer, QONNX/FINN MultiThreshold semantics:
//   y = #{k : x >= T[c][k]},  k = 1..2^ABits-1,  c = channel of the lane
// for Lanes signed accumulators per beat. Lane l of a beat with in_chan_i = g is channel
// g*Lanes + l; a lane whose channel is >= Channels (padding of the last group) gives code 0.
//
// Two implementations with bit-identical outputs for ascending thresholds per channel
// (T[c][1] <= ... <= T[c][L], the contract of golden.ops.check_thresholds):
//   BinarySearch = 0: 2^ABits-1 parallel comparators per lane and a population count;
//                     one register stage (latency 1).
//   BinarySearch = 1: pipelined binary search as in FINN's thresholding RTL: stage s decides
//                     code bit ABits-1-s with ONE comparator per lane against
//                     T[c][prefix | 2^(ABits-1-s)]; ABits register stages (latency ABits).
// Both accept one beat per cycle (II=1) and hold their output under back-pressure.
//
// Threshold storage: Channels*(2^ABits-1) signed AccWidth-bit words, word c*(2^ABits-1) + k-1
// holds T[c][k]. Writable=1 adds the one-cycle write port cfg_*; do not write the thresholds of
// a channel while beats of that channel are inside the block. InitFile preloads the table with
// $readmemh: one threshold per line, hexadecimal two's complement at AccWidth bits (e.g.
// AccWidth=10: -3 is 3fd), channel-major then index (line c*(2^ABits-1) + k-1 is T[c][k]).
// Writable=0 makes the table a ROM that only InitFile fills; with ChanGroups=1 every comparator
// address is then an elaboration-time constant and synthesis folds it into a constant compare.
`include "nuq_assert.svh"

module threshold_quant #(
  /// Accumulator (input) and threshold width in bits, signed two's complement; 2..62.
  parameter int AccWidth     = 16,
  /// Output code width A in bits, unsigned; 1..16 (2^A-1 thresholds per channel).
  parameter int ABits        = 4,
  /// Number of channels (threshold sets); 1..65536.
  parameter int Channels     = 1,
  /// Values per beat (parallel lanes); 1..1024.
  parameter int Lanes        = 1,
  /// Width of the user side-band in bits (passed through unchanged, in order); 1..1024.
  parameter int UserWidth    = 1,
  /// Implementation: 0 = parallel comparators, 1 = pipelined binary search.
  parameter int BinarySearch = 0,
  /// 1 = run-time threshold write port; 0 = ROM filled only from InitFile.
  parameter int Writable     = 1,
  /// $readmemh image of the thresholds (layout above); "" = none (Writable=1 only).
  parameter     InitFile     = "",
  /// Channel groups per pass, ceil(Channels/Lanes) (derived; do not override).
  parameter int ChanGroups   = (Channels + Lanes - 1) / Lanes,
  /// Width of in_chan_i in bits, max(1, $clog2(ChanGroups)) (derived; do not override).
  parameter int GroupWidth   = (ChanGroups > 1) ? $clog2(ChanGroups) : 1,
  /// Width of cfg_chan_i in bits, max(1, $clog2(Channels)) (derived; do not override).
  parameter int CfgChanWidth = (Channels > 1) ? $clog2(Channels) : 1
) (
  /// Clock, rising edge.
  input  logic                      clk_i,
  /// Asynchronous active-low reset; empties the pipeline (the thresholds are kept).
  input  logic                      rst_ni,
  /// Threshold write enable (one write per cycle; ignored when Writable=0).
  input  logic                      cfg_we_i,
  /// Channel of the threshold written, 0..Channels-1 (other values: write ignored).
  input  logic [CfgChanWidth-1:0]   cfg_chan_i,
  /// Threshold index k-1 written, 0..2^ABits-2 (2^ABits-1: write ignored).
  input  logic [ABits-1:0]          cfg_idx_i,
  /// Threshold value, signed AccWidth bits.
  input  logic [AccWidth-1:0]       cfg_thr_i,
  /// Input beat valid.
  input  logic                      in_valid_i,
  /// Input beat accepted when in_valid_i && in_ready_o.
  output logic                      in_ready_o,
  /// Lanes signed accumulators, lane l at bits [l*AccWidth +: AccWidth].
  input  logic [Lanes*AccWidth-1:0] in_data_i,
  /// Channel group g of the beat, 0..ChanGroups-1; lane l is channel g*Lanes + l.
  input  logic [GroupWidth-1:0]     in_chan_i,
  /// Input side-band (e.g. an output address), any value; leaves with this beat's result.
  input  logic [UserWidth-1:0]      in_user_i,
  /// Output beat valid.
  output logic                      out_valid_o,
  /// Downstream ready (back-pressure when low).
  input  logic                      out_ready_i,
  /// Lanes unsigned codes 0..2^ABits-1, lane l at bits [l*ABits +: ABits].
  output logic [Lanes*ABits-1:0]    out_data_o,
  /// Output side-band: in_user_i of the beat that produced out_data_o.
  output logic [UserWidth-1:0]      out_user_o
);

  // Parameter checks at elaboration.
  if (AccWidth < 2 || AccWidth > 62) begin : gen_check_acc
    `NUQ_ELAB_FATAL((1, "threshold_quant: AccWidth=%0d must lie in 2..62", AccWidth))
  end
  if (ABits < 1 || ABits > 16) begin : gen_check_abits
    `NUQ_ELAB_FATAL((1, "threshold_quant: ABits=%0d must lie in 1..16", ABits))
  end
  if (Channels < 1 || Channels > 65536) begin : gen_check_chan
    `NUQ_ELAB_FATAL((1, "threshold_quant: Channels=%0d must lie in 1..65536", Channels))
  end
  if (Channels * ((1 << ABits) - 1) > (1 << 24)) begin : gen_check_words
    `NUQ_ELAB_FATAL((1, "threshold_quant: Channels=%0d x (2^ABits-1) thresholds exceed 2^24",
                     Channels))
  end
  if (Lanes < 1 || Lanes > 1024) begin : gen_check_lanes
    `NUQ_ELAB_FATAL((1, "threshold_quant: Lanes=%0d must lie in 1..1024", Lanes))
  end
  if (UserWidth < 1 || UserWidth > 1024) begin : gen_check_user
    `NUQ_ELAB_FATAL((1, "threshold_quant: UserWidth=%0d must lie in 1..1024", UserWidth))
  end
  if (BinarySearch != 0 && BinarySearch != 1) begin : gen_check_bs
    `NUQ_ELAB_FATAL((1, "threshold_quant: BinarySearch=%0d must be 0 or 1", BinarySearch))
  end
  if (Writable != 0 && Writable != 1) begin : gen_check_wr
    `NUQ_ELAB_FATAL((1, "threshold_quant: Writable=%0d must be 0 or 1", Writable))
  end
  if (Writable == 0 && InitFile == "") begin : gen_check_rom
    `NUQ_ELAB_FATAL((1, "threshold_quant: Writable=0 needs an InitFile (a ROM with no image)"))
  end

  // x >= t for signed x, t, written as a bit-serial AND/OR chain (LSB first, sign bits
  // flipped) rather than as ">=". Used for the ROM (Writable=0): with t an elaboration-time
  // constant each step is one gate and synthesis packs several steps per LUT, where a ">=" is
  // mapped to a carry chain (iCE40: one logic cell per bit; see docs/synthesis.md).
  function automatic logic ge_chain(logic [AccWidth-1:0] x, logic [AccWidth-1:0] t);
    logic [AccWidth-1:0] a, b;
    logic                r;
    a = x ^ (AccWidth'(1) << (AccWidth - 1));
    b = t ^ (AccWidth'(1) << (AccWidth - 1));
    r = 1'b1;
    for (int i = 0; i < AccWidth; i++) begin
      r = (a[i] & ~b[i]) | (~(a[i] ^ b[i]) & r);
    end
    return r;
  endfunction

  localparam int NumThr    = (1 << ABits) - 1;
  localparam int Words     = Channels * NumThr;
  localparam int AddrWidth = (Words > 1) ? $clog2(Words) : 1;
  localparam int Stages    = (BinarySearch != 0) ? ABits : 1;

  // ---- threshold table ------------------------------------------------------------------------
  logic [AccWidth-1:0] thr_q [Words];

  if (InitFile != "") begin : gen_init
    initial $readmemh(InitFile, thr_q);
  end

  if (Writable == 1) begin : gen_write
    logic                 cfg_ok;
    logic [AddrWidth-1:0] cfg_addr;
    assign cfg_ok   = (32'(cfg_chan_i) < 32'(Channels)) && (32'(cfg_idx_i) < 32'(NumThr));
    assign cfg_addr = AddrWidth'(32'(cfg_chan_i) * 32'(NumThr) + 32'(cfg_idx_i));
    always_ff @(posedge clk_i) begin
      if (cfg_we_i && cfg_ok) thr_q[cfg_addr] <= cfg_thr_i;
    end
  end else begin : gen_rom
    // The write port exists for a uniform interface; a ROM ignores it.
    logic unused_cfg;
    assign unused_cfg = ^{cfg_we_i, cfg_chan_i, cfg_idx_i, cfg_thr_i};
  end

  // ---- pipeline -------------------------------------------------------------------------------
  // Stage s reads its inputs from *_in[s] (the input port for s = 0, register s-1 otherwise),
  // computes code_d[s] and loads register s. In the binary search, code_in[s] holds the code
  // bits decided by stages 0..s-1. Only the last register drives the output.
  logic                                  enable;
  logic [Stages-1:0]                     valid_in, valid_q;
  logic [Stages-1:0][UserWidth-1:0]      user_in, user_q;
  logic [Stages-1:0][Lanes*ABits-1:0]    code_in, code_d, code_q;
  logic [Stages-1:0][Lanes*AccWidth-1:0] x_in;
  logic [Stages-1:0][GroupWidth-1:0]     grp_in;

  // One global enable: every stage advances when the output register is free or drained.
  assign enable      = ~valid_q[Stages-1] | out_ready_i;
  assign in_ready_o  = enable;
  assign out_valid_o = valid_q[Stages-1];
  assign out_data_o  = code_q[Stages-1];
  assign out_user_o  = user_q[Stages-1];

  assign valid_in[0] = in_valid_i;
  assign x_in[0]     = in_data_i;
  assign grp_in[0]   = (ChanGroups > 1) ? in_chan_i : '0;
  assign user_in[0]  = in_user_i;
  assign code_in[0]  = '0;

  if (Stages > 1) begin : gen_carry
    // Accumulators and channel groups travel with their beat to the later search stages.
    logic [Stages-2:0][Lanes*AccWidth-1:0] x_q;
    logic [Stages-2:0][GroupWidth-1:0]     grp_q;
    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        x_q   <= '0;
        grp_q <= '0;
      end else if (enable) begin
        x_q   <= x_in[Stages-2:0];
        grp_q <= grp_in[Stages-2:0];
      end
    end
    for (genvar s = 1; s < Stages; s++) begin : gen_link
      assign valid_in[s] = valid_q[s-1];
      assign x_in[s]     = x_q[s-1];
      assign grp_in[s]   = grp_q[s-1];
      assign user_in[s]  = user_q[s-1];
      assign code_in[s]  = code_q[s-1];
    end
  end else begin : gen_no_carry
    // The parallel form decides every bit at once and needs no partial code.
    logic unused_code_in;
    assign unused_code_in = ^code_in;
  end

  if (ChanGroups == 1) begin : gen_one_group
    // A single channel group: lane l is channel l, a constant; the group is not needed.
    logic unused_grp;
    assign unused_grp = ^{grp_in, in_chan_i};
  end

  for (genvar s = 0; s < Stages; s++) begin : gen_stage
    for (genvar l = 0; l < Lanes; l++) begin : gen_lane
      logic [AccWidth-1:0] x;
      logic [31:0]         chan;
      logic                chan_ok;
      assign x = x_in[s][l*AccWidth +: AccWidth];
      // With one channel group the channel is a constant and so is every threshold address.
      if (ChanGroups == 1) begin : gen_const_chan
        assign chan = 32'(l);
      end else begin : gen_dyn_chan
        assign chan = 32'(grp_in[s]) * 32'(Lanes) + 32'(l);
      end
      assign chan_ok = chan < 32'(Channels);

      if (BinarySearch == 0) begin : gen_parallel
        logic [NumThr-1:0] ge;
        logic [ABits-1:0]  count;
        for (genvar k = 0; k < NumThr; k++) begin : gen_cmp
          logic [AddrWidth-1:0] addr;
          assign addr  = chan_ok ? AddrWidth'(chan * 32'(NumThr) + 32'(k)) : '0;
          assign ge[k] = (Writable == 0) ? ge_chain(x, thr_q[addr])
                                         : ($signed(x) >= $signed(thr_q[addr]));
        end
        always_comb begin
          count = '0;
          for (int k = 0; k < NumThr; k++) begin
            count = count + ABits'(ge[k]);
          end
        end
        assign code_d[s][l*ABits +: ABits] = chan_ok ? count : '0;
      end else begin : gen_search
        // Decide bit ABits-1-s: y >= prefix + 2^(ABits-1-s)  <=>  x >= T[prefix + 2^(ABits-1-s)].
        localparam logic [ABits-1:0] Probe = ABits'(1 << (ABits - 1 - s));
        logic [ABits-1:0]     prefix, k;
        logic [AddrWidth-1:0] addr;
        logic                 ge;
        assign prefix = code_in[s][l*ABits +: ABits];
        assign k      = prefix | Probe;
        assign addr   = chan_ok ? AddrWidth'(chan * 32'(NumThr) + 32'(k) - 32'd1) : '0;
        assign ge     = (Writable == 0) ? ge_chain(x, thr_q[addr])
                                          : ($signed(x) >= $signed(thr_q[addr]));
        assign code_d[s][l*ABits +: ABits] = (chan_ok && ge) ? k : prefix;
      end
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_q <= '0;
      user_q  <= '0;
      code_q  <= '0;
    end else if (enable) begin
      valid_q <= valid_in;
      user_q  <= user_in;
      code_q  <= code_d;
    end
  end

endmodule
