// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// One-entry pipeline register for a valid/ready stream (the output stage of the quantizers and
// the residual adder). Latency 1, accepts one beat per cycle (II=1) when the output drains:
//   in_ready_o = ~out_valid_o | out_ready_i
// so a full register takes a new beat in the same cycle its old one leaves. Under back-pressure
// the held beat stays stable on out_data_o. Unlike a spill register (PULP common_cells
// spill_register) in_ready_o depends combinationally on out_ready_i; unlike a fall-through
// register the output is always registered (no in-to-out combinational data path).
// The payload register loads only on an accepted beat and resets to 0.
`include "nuq_assert.svh"

module stream_reg #(
  /// Payload width in bits (any bit pattern, passed through unchanged); 1..65536.
  parameter int DataWidth = 1
) (
  /// Clock, rising edge.
  input  logic                 clk_i,
  /// Asynchronous active-low reset; empties the register (the held beat is dropped).
  input  logic                 rst_ni,
  /// Input beat valid.
  input  logic                 in_valid_i,
  /// Input beat accepted when in_valid_i && in_ready_o; high when empty or draining.
  output logic                 in_ready_o,
  /// Input payload, any DataWidth-bit value.
  input  logic [DataWidth-1:0] in_data_i,
  /// Output beat valid (a beat is held).
  output logic                 out_valid_o,
  /// Downstream ready (back-pressure when low).
  input  logic                 out_ready_i,
  /// Output payload: in_data_i of the held beat (0 after reset until the first beat).
  output logic [DataWidth-1:0] out_data_o
);

  // Parameter checks at elaboration.
  if (DataWidth < 1 || DataWidth > 65536) begin : gen_check_data
    `NUQ_ELAB_FATAL((1, "stream_reg: DataWidth=%0d must lie in 1..65536", DataWidth))
  end

  logic                 valid_q;
  logic [DataWidth-1:0] data_q;

  assign in_ready_o  = ~valid_q | out_ready_i;
  assign out_valid_o = valid_q;
  assign out_data_o  = data_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_q <= 1'b0;
      data_q  <= '0;
    end else if (in_ready_o) begin
      valid_q <= in_valid_i;
      if (in_valid_i) begin
        data_q <= in_data_i;
      end
    end
  end

endmodule
