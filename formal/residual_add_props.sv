// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// residual_add against its formula, for every operand pair, every pair of 5-bit alignment shifts
// (-16..15), every stall pattern and resets anywhere: the k-th output beat is {user_k, s_k} of
// the k-th input beat with, per lane,
//   s = sat(align(m, m_shift) + align(r, r_shift), OutWidth)
//   align(v, k) = v * 2^k (k >= 0), floor(v / 2^-k) (k < 0)
// written with a multiplication, a rounding-down division and explicit bounds (the RTL uses
// arithmetic shifts and compares at its own sum width), plus the stream properties of
// formal/stream_check.sv (with the ready rule of its output register).
module residual_add_props #(
  parameter int MWidth    = 6,
  parameter int RWidth    = 5,
  parameter int OutWidth  = 6,
  parameter int Lanes     = 1,
  parameter int UserWidth = 2
) (
  input logic clk_i,
  // Free inputs (the solver chooses them every cycle).
  input logic rst_ni,
  input logic in_valid,
  input logic out_ready,
  input logic [Lanes*MWidth-1:0] in_m,
  input logic [Lanes*RWidth-1:0] in_r,
  input logic [UserWidth-1:0] in_user,
  input logic [4:0] m_shift,
  input logic [4:0] r_shift,
  input logic [3:0] idx_i
);
  localparam int OutW = UserWidth + Lanes * OutWidth;

  logic                      in_ready, out_valid;
  logic [Lanes*OutWidth-1:0] out_data;
  logic [UserWidth-1:0]      out_user;

  residual_add #(.MWidth(MWidth), .RWidth(RWidth), .OutWidth(OutWidth), .Lanes(Lanes),
                 .UserWidth(UserWidth)) dut (
    .clk_i, .rst_ni, .m_shift_i(m_shift), .r_shift_i(r_shift),
    .in_valid_i(in_valid), .in_ready_o(in_ready), .in_m_i(in_m), .in_r_i(in_r),
    .in_user_i(in_user),
    .out_valid_o(out_valid), .out_ready_i(out_ready), .out_data_o(out_data),
    .out_user_o(out_user)
  );

  // Exact sums need the operand width + 15 (left shift) + 1 (sum) bits; SW leaves room.
  localparam int InW = (MWidth > RWidth) ? MWidth : RWidth;
  localparam int SW  = ((InW + 17 > OutWidth) ? InW + 17 : OutWidth) + 1;

  function automatic logic signed [SW-1:0] align(logic signed [SW-1:0] v, logic [4:0] k);
    logic [SW-1:0] d;
    if (!k[4]) return v * (SW'(1) << k);
    d = SW'(1) << (6'd32 - 6'(k));  // 2^-k for k in -16..-1
    // floor(v / d) with an unsigned division: v >= 0: v / d; v < 0: -1 - (-v - 1) / d
    return (v >= 0) ? $signed(SW'(v) / d) : ~$signed((~SW'(v)) / d);
  endfunction

  localparam logic signed [SW-1:0] Hi = (SW'(1) << (OutWidth - 1)) - 1;
  localparam logic signed [SW-1:0] Lo = -(SW'(1) << (OutWidth - 1));

  logic [Lanes*OutWidth-1:0] spec;
  always @(*) begin
    for (int l = 0; l < Lanes; l++) begin
      logic signed [SW-1:0] s;
      s = align(SW'($signed(in_m[l*MWidth +: MWidth])), m_shift)
        + align(SW'($signed(in_r[l*RWidth +: RWidth])), r_shift);
      spec[l*OutWidth +: OutWidth] = (s > Hi) ? Hi[OutWidth-1:0] :
                                     (s < Lo) ? Lo[OutWidth-1:0] : s[OutWidth-1:0];
    end
  end

  stream_check #(.Width(OutW),
                 .InWidth(UserWidth + Lanes*(MWidth + RWidth) + 10), .Cap(1)) u_check (
    .clk_i, .rst_ni,
    .in_valid_i(in_valid), .in_ready_i(in_ready),
    .in_data_i({in_user, in_m, in_r, m_shift, r_shift}), .in_expect_i({in_user, spec}),
    .idx_i, .out_valid_i(out_valid), .out_ready_i(out_ready), .out_data_i({out_user, out_data})
  );

endmodule
