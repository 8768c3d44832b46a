// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Saturating residual adder of seed 003 (Figure 2a), golden.ops.residual_add:
//   out = sat(align(m, m_shift) + align(r, r_shift), OutWidth)
//   align(v, s) = v * 2^s for s >= 0, floor(v / 2^-s) (arithmetic right shift) for s < 0
// for Lanes pairs of signed values per beat; sat clamps to the signed OutWidth-bit range.
// The sum is formed exactly (no intermediate overflow). One register stage; accepts one beat
// per cycle; the UserWidth side-band travels with its beat.
`include "nuq_assert.svh"

module residual_add #(
  /// Width of m (the block's second-convolution accumulator) in bits, signed; 2..62.
  parameter int MWidth    = 16,
  /// Width of r (the incoming residual stream) in bits, signed; 2..62.
  parameter int RWidth    = 16,
  /// Width of the saturated result in bits, signed; 2..62.
  parameter int OutWidth  = 16,
  /// Values per beat (parallel lanes); 1..1024.
  parameter int Lanes     = 1,
  /// Width of the user side-band in bits (passed through unchanged, in order); 1..1024.
  parameter int UserWidth = 1
) (
  /// Clock, rising edge.
  input  logic                      clk_i,
  /// Asynchronous active-low reset; empties the stage.
  input  logic                      rst_ni,
  /// Alignment shift of m, signed -15..15 (-16 also works: floor(m / 2^16)); quasi-static.
  input  logic [4:0]                m_shift_i,
  /// Alignment shift of r, signed -15..15 (-16 also works: floor(r / 2^16)); quasi-static.
  input  logic [4:0]                r_shift_i,
  /// Input beat valid.
  input  logic                      in_valid_i,
  /// Input beat accepted when in_valid_i && in_ready_o.
  output logic                      in_ready_o,
  /// Lanes signed m values, lane l at bits [l*MWidth +: MWidth].
  input  logic [Lanes*MWidth-1:0]   in_m_i,
  /// Lanes signed r values, lane l at bits [l*RWidth +: RWidth].
  input  logic [Lanes*RWidth-1:0]   in_r_i,
  /// Input side-band (e.g. an output address), any value; leaves with this beat's result.
  input  logic [UserWidth-1:0]      in_user_i,
  /// Output beat valid.
  output logic                      out_valid_o,
  /// Downstream ready (back-pressure when low).
  input  logic                      out_ready_i,
  /// Lanes signed saturated sums, lane l at bits [l*OutWidth +: OutWidth].
  output logic [Lanes*OutWidth-1:0] out_data_o,
  /// Output side-band: in_user_i of the beat that produced out_data_o.
  output logic [UserWidth-1:0]      out_user_o
);

  // Parameter checks at elaboration.
  if (MWidth < 2 || MWidth > 62) begin : gen_check_m
    `NUQ_ELAB_FATAL((1, "residual_add: MWidth=%0d must lie in 2..62", MWidth))
  end
  if (RWidth < 2 || RWidth > 62) begin : gen_check_r
    `NUQ_ELAB_FATAL((1, "residual_add: RWidth=%0d must lie in 2..62", RWidth))
  end
  if (OutWidth < 2 || OutWidth > 62) begin : gen_check_out
    `NUQ_ELAB_FATAL((1, "residual_add: OutWidth=%0d must lie in 2..62", OutWidth))
  end
  if (Lanes < 1 || Lanes > 1024) begin : gen_check_lanes
    `NUQ_ELAB_FATAL((1, "residual_add: Lanes=%0d must lie in 1..1024", Lanes))
  end
  if (UserWidth < 1 || UserWidth > 1024) begin : gen_check_user
    `NUQ_ELAB_FATAL((1, "residual_add: UserWidth=%0d must lie in 1..1024", UserWidth))
  end

  // The widths below, clamped to their legal range: an illegal MWidth, RWidth or OutWidth then
  // stops at its check above (the first and only error) instead of at a zero replication or a
  // zero-width select (OutWidth=1 used to crash iverilog).
  localparam int MW   = (MWidth < 2) ? 2 : MWidth;
  localparam int RW   = (RWidth < 2) ? 2 : RWidth;
  localparam int OutW = (OutWidth < 2) ? 2 : OutWidth;

  // An aligned operand needs its width + 15 bits (left shift by up to 15); the sum one more.
  // The saturation compares at SumWidth, which also holds the OutWidth bounds.
  localparam int InWidth  = (MW > RW) ? MW : RW;
  localparam int AlWidth  = InWidth + 15;
  localparam int SumWidth = ((AlWidth > OutW) ? AlWidth : OutW) + 1;
  localparam logic signed [SumWidth-1:0] OutMax = $signed(SumWidth'({(OutW - 1){1'b1}}));
  localparam logic signed [SumWidth-1:0] OutMin = -OutMax - 1;

  // Align a sign-extended value by a signed 5-bit shift.
  function automatic logic signed [SumWidth-1:0] align(logic signed [SumWidth-1:0] v,
                                                       logic [4:0] sh);
    if (sh[4]) begin
      return v >>> (~sh + 5'd1);
    end else begin
      return v <<< sh;
    end
  endfunction

  logic [Lanes*OutW-1:0] sum_d;

  for (genvar l = 0; l < Lanes; l++) begin : gen_lane
    logic signed [SumWidth-1:0] m, r, sum;
    assign m   = SumWidth'($signed(in_m_i[l*MW +: MW]));
    assign r   = SumWidth'($signed(in_r_i[l*RW +: RW]));
    assign sum = align(m, m_shift_i) + align(r, r_shift_i);
    assign sum_d[l*OutW +: OutW] =
        (sum > OutMax) ? OutMax[OutW-1:0] :
        (sum < OutMin) ? OutMin[OutW-1:0] : sum[OutW-1:0];
  end

  // Output register (stream_reg): one pipeline stage that holds its beat under back-pressure;
  // the payload is {user, result}.
  logic [UserWidth+Lanes*OutW-1:0] out_payload;

  stream_reg #(
    .DataWidth(UserWidth + Lanes*OutW)
  ) u_out_reg (
    .clk_i,
    .rst_ni,
    .in_valid_i,
    .in_ready_o,
    .in_data_i  ({in_user_i, sum_d}),
    .out_valid_o,
    .out_ready_i,
    .out_data_o (out_payload)
  );

  assign {out_user_o, out_data_o} = out_payload;

endmodule
