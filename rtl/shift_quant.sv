// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Linear shift quantizer (the uniform baseline of seed 003):
//   y = min(floor(max(x, 0) / 2^s), 2^ABits - 1)
// for Lanes signed accumulators per beat. One register stage; accepts one beat per cycle. The
// UserWidth side-band travels with its beat.
`include "nuq_assert.svh"

module shift_quant #(
  /// Accumulator (input) width in bits, signed two's complement; 2..62.
  parameter int AccWidth   = 16,
  /// Output code width A in bits, unsigned; 1..16 and below AccWidth.
  parameter int ABits      = 4,
  /// Values per beat (parallel lanes); 1..1024.
  parameter int Lanes      = 1,
  /// Width of the user side-band in bits (passed through unchanged, in order); 1..1024.
  parameter int UserWidth  = 1,
  /// Width of the run-time shift port in bits (derived; do not override).
  parameter int ShiftWidth = $clog2(AccWidth)
) (
  /// Clock, rising edge.
  input  logic                      clk_i,
  /// Asynchronous active-low reset; empties the stage.
  input  logic                      rst_ni,
  /// Run-time shift s in bits, 0..AccWidth-1; quasi-static (change it only while idle).
  input  logic [ShiftWidth-1:0]     shift_i,
  /// Input beat valid.
  input  logic                      in_valid_i,
  /// Input beat accepted when in_valid_i && in_ready_o.
  output logic                      in_ready_o,
  /// Lanes signed accumulators, lane i at bits [i*AccWidth +: AccWidth].
  input  logic [Lanes*AccWidth-1:0] in_data_i,
  /// Input side-band (e.g. an output address), any value; leaves with this beat's result.
  input  logic [UserWidth-1:0]      in_user_i,
  /// Output beat valid.
  output logic                      out_valid_o,
  /// Downstream ready (back-pressure when low).
  input  logic                      out_ready_i,
  /// Lanes unsigned codes 0..2^ABits-1, lane i at bits [i*ABits +: ABits].
  output logic [Lanes*ABits-1:0]    out_data_o,
  /// Output side-band: in_user_i of the beat that produced out_data_o.
  output logic [UserWidth-1:0]      out_user_o
);

  // Parameter checks at elaboration.
  if (AccWidth < 2 || AccWidth > 62) begin : gen_check_acc
    `NUQ_ELAB_FATAL((1, "shift_quant: AccWidth=%0d must lie in 2..62", AccWidth))
  end
  if (ABits < 1 || ABits > 16 || ABits >= AccWidth) begin : gen_check_abits
    `NUQ_ELAB_FATAL((1, "shift_quant: ABits=%0d must lie in 1..16 and below AccWidth=%0d",
                     ABits, AccWidth))
  end
  if (Lanes < 1 || Lanes > 1024) begin : gen_check_lanes
    `NUQ_ELAB_FATAL((1, "shift_quant: Lanes=%0d must lie in 1..1024", Lanes))
  end
  if (UserWidth < 1 || UserWidth > 1024) begin : gen_check_user
    `NUQ_ELAB_FATAL((1, "shift_quant: UserWidth=%0d must lie in 1..1024", UserWidth))
  end

  // The widths below, clamped to their legal range: an illegal ABits or AccWidth then stops at
  // its check above (the first and only error) instead of at a zero-width select or cast.
  localparam int AW   = (ABits < 1) ? 1 : ABits;
  localparam int AccW = (AccWidth < 2) ? 2 : AccWidth;

  localparam logic [AccW-1:0] MaxCode = AccW'((1 << AW) - 1);

  logic [Lanes*AW-1:0] code_d;

  for (genvar l = 0; l < Lanes; l++) begin : gen_lane
    logic [AccW-1:0] x, q;
    assign x = in_data_i[l*AccW +: AccW];
    // Negative inputs give 0 (ReLU); the shift is logical on the non-negative value.
    assign q = x[AccW-1] ? '0 : (x >> shift_i);
    assign code_d[l*AW +: AW] = (q > MaxCode) ? MaxCode[AW-1:0] : q[AW-1:0];
  end

  // Output register (stream_reg): one pipeline stage that holds its beat under back-pressure;
  // the payload is {user, result}.
  logic [UserWidth+Lanes*AW-1:0] out_payload;

  stream_reg #(
    .DataWidth(UserWidth + Lanes*AW)
  ) u_out_reg (
    .clk_i,
    .rst_ni,
    .in_valid_i,
    .in_ready_o,
    .in_data_i  ({in_user_i, code_d}),
    .out_valid_o,
    .out_ready_i,
    .out_data_o (out_payload)
  );

  assign {out_user_o, out_data_o} = out_payload;

endmodule
