// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// shift_quant against its formula, for every input, every run-time shift, every stall pattern
// and resets anywhere: the k-th output beat is {user_k, y_k} of the k-th input beat with
//   y = min(floor(max(x, 0) / 2^s), 2^ABits - 1)  per lane,
// written here with a division (the RTL uses a shift and a compare), plus the stream properties
// of formal/stream_check.sv (with the ready rule of its output register).
module shift_quant_props #(
  parameter int AccWidth  = 8,
  parameter int ABits     = 3,
  parameter int Lanes     = 2,
  parameter int UserWidth = 2,
  localparam int ShiftWidth = $clog2(AccWidth)
) (
  input logic clk_i,
  // Free inputs (the solver chooses them every cycle).
  input logic rst_ni,
  input logic in_valid,
  input logic out_ready,
  input logic [Lanes*AccWidth-1:0] in_data,
  input logic [UserWidth-1:0] in_user,
  input logic [ShiftWidth-1:0] shift,
  input logic [3:0] idx_i
);
  localparam int OutW = UserWidth + Lanes * ABits;

  logic                   in_ready, out_valid;
  logic [Lanes*ABits-1:0] out_data;
  logic [UserWidth-1:0]   out_user;

  shift_quant #(.AccWidth(AccWidth), .ABits(ABits), .Lanes(Lanes), .UserWidth(UserWidth)) dut (
    .clk_i, .rst_ni, .shift_i(shift),
    .in_valid_i(in_valid), .in_ready_o(in_ready), .in_data_i(in_data), .in_user_i(in_user),
    .out_valid_o(out_valid), .out_ready_i(out_ready), .out_data_o(out_data),
    .out_user_o(out_user)
  );

  // Specification of one beat, evaluated when it enters (the shift is read with the beat).
  logic [Lanes*ABits-1:0] spec;
  always @(*) begin
    for (int l = 0; l < Lanes; l++) begin
      logic signed [63:0] x, q;
      x = 64'($signed(in_data[l*AccWidth +: AccWidth]));
      q = (x < 0) ? 64'sd0 : x / (64'sd1 <<< shift);
      spec[l*ABits +: ABits] = (q > (64'sd1 <<< ABits) - 1) ? {ABits{1'b1}} : q[ABits-1:0];
    end
  end

  stream_check #(.Width(OutW), .InWidth(UserWidth + Lanes*AccWidth + ShiftWidth), .Cap(1)) u_check (
    .clk_i, .rst_ni,
    .in_valid_i(in_valid), .in_ready_i(in_ready), .in_data_i({in_user, in_data, shift}),
    .in_expect_i({in_user, spec}),
    .idx_i, .out_valid_i(out_valid), .out_ready_i(out_ready), .out_data_i({out_user, out_data})
  );

endmodule
