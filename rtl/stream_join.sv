// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// 2 -> 1 join of two valid/ready streams into one beat carrying both payloads (the residual
// adder's main and shortcut operands): a beat leaves when both inputs hold one, and both
// inputs are accepted in that same cycle.
//   out_valid_o = a_valid_i & b_valid_i;   out_data_o = {b_data_i, a_data_i}
//   a_ready_o   = b_ready_o = out_valid_o & out_ready_i
// Registered = 0 (default): the combinational join above, latency 0, II=1, no storage
// (clk_i / rst_ni unused). Registered = 1: the joined beat passes through rtl/stream_reg.sv
// (latency 1, II=1, WidthA+WidthB+1 flip-flops; out_valid_o / out_data_o registered, ready
// still combinational from out_ready_i as in stream_reg). A source keeps its valid high and its
// data stable until accepted; a_ready_o may depend on a_valid_i (through b_valid_i) and vice
// versa, never on the own valid alone being low.
`include "nuq_assert.svh"

module stream_join #(
  /// Width of input a in bits (low part of out_data_o); 1..32768.
  parameter int WidthA     = 8,
  /// Width of input b in bits (high part of out_data_o); 1..32768.
  parameter int WidthB     = 8,
  /// 0: combinational join (latency 0); 1: output register stage (latency 1).
  parameter bit Registered = 1'b0
) (
  /// Clock, rising edge (used only with Registered = 1).
  input  logic                     clk_i,
  /// Asynchronous active-low reset (used only with Registered = 1: empties the register).
  input  logic                     rst_ni,
  /// Input a beat valid.
  input  logic                     a_valid_i,
  /// Input a beat accepted (together with b).
  output logic                     a_ready_o,
  /// Input a payload.
  input  logic [WidthA-1:0]        a_data_i,
  /// Input b beat valid.
  input  logic                     b_valid_i,
  /// Input b beat accepted (together with a).
  output logic                     b_ready_o,
  /// Input b payload.
  input  logic [WidthB-1:0]        b_data_i,
  /// Joined beat valid.
  output logic                     out_valid_o,
  /// Downstream ready.
  input  logic                     out_ready_i,
  /// Joined payload {b, a}: a at bits [WidthA-1:0], b above it.
  output logic [WidthA+WidthB-1:0] out_data_o
);

  if (WidthA < 1 || WidthA > 32768) begin : gen_check_width_a
    `NUQ_ELAB_FATAL((1, "stream_join: WidthA=%0d must lie in 1..32768", WidthA))
  end
  if (WidthB < 1 || WidthB > 32768) begin : gen_check_width_b
    `NUQ_ELAB_FATAL((1, "stream_join: WidthB=%0d must lie in 1..32768", WidthB))
  end

  logic both_valid, join_ready;

  assign both_valid = a_valid_i & b_valid_i;
  assign a_ready_o  = both_valid & join_ready;
  assign b_ready_o  = both_valid & join_ready;

  if (Registered) begin : gen_reg
    stream_reg #(
      .DataWidth(WidthA + WidthB)
    ) u_out_reg (
      .clk_i,
      .rst_ni,
      .in_valid_i (both_valid),
      .in_ready_o (join_ready),
      .in_data_i  ({b_data_i, a_data_i}),
      .out_valid_o,
      .out_ready_i,
      .out_data_o
    );
  end else begin : gen_comb
    // clk_i / rst_ni are not used by the combinational join.
    logic unused_clk_rst;
    assign unused_clk_rst = clk_i ^ rst_ni;
    assign join_ready  = out_ready_i;
    assign out_valid_o = both_valid;
    assign out_data_o  = {b_data_i, a_data_i};
  end

endmodule
