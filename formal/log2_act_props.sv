// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// log2_act against its formula, for every input, every run-time offset (the whole port range,
// also offsets >= AccWidth), every stall pattern and resets anywhere: the k-th output beat is
// {user_k, y_k} of the k-th input beat with, per lane,
//   y = 0 if x <= 0, else clamp(bitlen(x) - s, 0, 2^ABits - 1),  bitlen(x) = #{i >= 0: x >= 2^i}
// (the RTL uses a leading-one priority encoder), plus the stream properties of
// formal/stream_check.sv (with the ready rule of its output register).
module log2_act_props #(
  parameter int AccWidth  = 8,
  parameter int ABits     = 2,
  parameter int Lanes     = 2,
  parameter int UserWidth = 2,
  localparam int OffsetWidth = $clog2(AccWidth) + 1
) (
  input logic clk_i,
  // Free inputs (the solver chooses them every cycle).
  input logic rst_ni,
  input logic in_valid,
  input logic out_ready,
  input logic [Lanes*AccWidth-1:0] in_data,
  input logic [UserWidth-1:0] in_user,
  input logic [OffsetWidth-1:0] offset,
  input logic [3:0] idx_i
);
  localparam int OutW = UserWidth + Lanes * ABits;

  logic                   in_ready, out_valid;
  logic [Lanes*ABits-1:0] out_data;
  logic [UserWidth-1:0]   out_user;

  log2_act #(.AccWidth(AccWidth), .ABits(ABits), .Lanes(Lanes), .UserWidth(UserWidth)) dut (
    .clk_i, .rst_ni, .offset_i(offset),
    .in_valid_i(in_valid), .in_ready_o(in_ready), .in_data_i(in_data), .in_user_i(in_user),
    .out_valid_o(out_valid), .out_ready_i(out_ready), .out_data_o(out_data),
    .out_user_o(out_user)
  );

  logic [Lanes*ABits-1:0] spec;
  always @(*) begin
    for (int l = 0; l < Lanes; l++) begin
      logic signed [63:0] x, d;
      logic [7:0]         bl;
      x  = 64'($signed(in_data[l*AccWidth +: AccWidth]));
      bl = 8'd0;
      for (int i = 0; i < AccWidth; i++) bl = bl + 8'(x >= (64'sd1 <<< i));
      d = 64'(bl) - 64'(offset);
      spec[l*ABits +: ABits] = (x <= 0 || d <= 0) ? '0 :
                               (d >= (64'sd1 <<< ABits) - 1) ? {ABits{1'b1}} : d[ABits-1:0];
    end
  end

  stream_check #(.Width(OutW), .InWidth(UserWidth + Lanes*AccWidth + OffsetWidth),
                 .Cap(1)) u_check (
    .clk_i, .rst_ni,
    .in_valid_i(in_valid), .in_ready_i(in_ready), .in_data_i({in_user, in_data, offset}),
    .in_expect_i({in_user, spec}),
    .idx_i, .out_valid_i(out_valid), .out_ready_i(out_ready), .out_data_i({out_user, out_data})
  );

endmodule
