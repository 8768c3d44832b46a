// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// stream_reg against its specification (formal/stream_check.sv): the identity, in order, one
// beat inside at most, out_valid == occupancy, stable while stalled, plus the documented ready
// rule in_ready_o == ~out_valid_o | out_ready_i and full throughput (a full register that drains
// takes a new beat in the same cycle).
module stream_reg_props #(
  parameter int DataWidth = 4
) (
  input logic clk_i,
  // Free inputs (the solver chooses them every cycle).
  input logic rst_ni,
  input logic in_valid,
  input logic out_ready,
  input logic [DataWidth-1:0] in_data,
  input logic [3:0] idx_i
);
  logic                 in_ready, out_valid;
  logic [DataWidth-1:0] out_data;

  stream_reg #(.DataWidth(DataWidth)) dut (
    .clk_i, .rst_ni,
    .in_valid_i(in_valid), .in_ready_o(in_ready), .in_data_i(in_data),
    .out_valid_o(out_valid), .out_ready_i(out_ready), .out_data_o(out_data)
  );

  stream_check #(.Width(DataWidth), .Cap(1)) u_check (
    .clk_i, .rst_ni,
    .in_valid_i(in_valid), .in_ready_i(in_ready), .in_data_i(in_data), .in_expect_i(in_data),
    .idx_i, .out_valid_i(out_valid), .out_ready_i(out_ready), .out_data_i(out_data)
  );

endmodule
