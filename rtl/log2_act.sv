// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Log2 (priority-encoder) activation of seed 003, golden.ops.log2_act:
//   y = 0                                           if x <= 0
//   y = clamp(floor(log2 x) + 1 - s, 0, 2^ABits - 1) otherwise
// for Lanes signed accumulators per beat. floor(log2 x) + 1 is the position of the leading one
// counted from 1 (a leading-one detector on the non-negative accumulator); s is the run-time
// offset. One register stage; accepts one beat per cycle; the UserWidth side-band travels with
// its beat.
`include "nuq_assert.svh"

module log2_act #(
  /// Accumulator (input) width in bits, signed two's complement; 2..62.
  parameter int AccWidth    = 16,
  /// Output code width A in bits, unsigned; 1..16.
  parameter int ABits       = 4,
  /// Values per beat (parallel lanes); 1..1024.
  parameter int Lanes       = 1,
  /// Width of the user side-band in bits (passed through unchanged, in order); 1..1024.
  parameter int UserWidth   = 1,
  /// Width of the run-time offset port in bits, $clog2(AccWidth)+1 (derived; do not override).
  parameter int OffsetWidth = $clog2(AccWidth) + 1
) (
  /// Clock, rising edge.
  input  logic                      clk_i,
  /// Asynchronous active-low reset; empties the stage.
  input  logic                      rst_ni,
  /// Run-time offset s, unsigned 0..2^OffsetWidth-1 (>= AccWidth gives code 0 everywhere);
  /// quasi-static (change it only while idle).
  input  logic [OffsetWidth-1:0]    offset_i,
  /// Input beat valid.
  input  logic                      in_valid_i,
  /// Input beat accepted when in_valid_i && in_ready_o.
  output logic                      in_ready_o,
  /// Lanes signed accumulators, lane l at bits [l*AccWidth +: AccWidth].
  input  logic [Lanes*AccWidth-1:0] in_data_i,
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
    `NUQ_ELAB_FATAL((1, "log2_act: AccWidth=%0d must lie in 2..62", AccWidth))
  end
  if (ABits < 1 || ABits > 16) begin : gen_check_abits
    `NUQ_ELAB_FATAL((1, "log2_act: ABits=%0d must lie in 1..16", ABits))
  end
  if (Lanes < 1 || Lanes > 1024) begin : gen_check_lanes
    `NUQ_ELAB_FATAL((1, "log2_act: Lanes=%0d must lie in 1..1024", Lanes))
  end
  if (UserWidth < 1 || UserWidth > 1024) begin : gen_check_user
    `NUQ_ELAB_FATAL((1, "log2_act: UserWidth=%0d must lie in 1..1024", UserWidth))
  end

  // The widths below, clamped to their legal range: an illegal ABits or AccWidth then stops at
  // its check above (the first and only error) instead of at a zero-width select further down.
  localparam int AW   = (ABits < 1) ? 1 : ABits;
  localparam int AccW = (AccWidth < 2) ? 2 : AccWidth;

  // Leading-one position of a positive AccWidth-bit value lies in 1..AccWidth-1.
  localparam int PosWidth = $clog2(AccW) + 1;
  localparam int DiffWidth = ((PosWidth > OffsetWidth) ? PosWidth : OffsetWidth) + 1;
  localparam logic signed [DiffWidth-1:0] MaxCode = DiffWidth'((1 << AW) - 1);
  // When 2^AW-1 exceeds every possible difference (AccW-1), the upper clamp never acts.
  localparam bit ClampHigh = (AccW - 1) > ((1 << AW) - 1);

  // Position (from 1) of the leading one of a non-negative x; 0 for x <= 0.
  function automatic logic [PosWidth-1:0] lead_one(logic [AccW-1:0] x);
    logic [PosWidth-1:0] p;
    p = '0;
    if (!x[AccW-1]) begin
      for (int i = 0; i < AccW - 1; i++) begin
        if (x[i]) p = PosWidth'(i + 1);
      end
    end
    return p;
  endfunction

  logic [Lanes*AW-1:0] code_d;

  for (genvar l = 0; l < Lanes; l++) begin : gen_lane
    logic [AccW-1:0]             x;
    logic [PosWidth-1:0]         pos;
    logic signed [DiffWidth-1:0] diff;
    assign x = in_data_i[l*AccW +: AccW];

    // Priority encoder: the highest set magnitude bit wins; x <= 0 gives position 0.
    assign pos = lead_one(x);

    assign diff = $signed(DiffWidth'(pos)) - $signed(DiffWidth'(offset_i));
    if (ClampHigh) begin : gen_clamp
      assign code_d[l*AW +: AW] =
          (diff <= 0)       ? '0 :
          (diff >= MaxCode) ? MaxCode[AW-1:0] : diff[AW-1:0];
    end else begin : gen_no_clamp
      logic [AW-1:0] d;
      assign d = AW'(diff);
      assign code_d[l*AW +: AW] = (diff <= 0) ? '0 : d;
    end
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
