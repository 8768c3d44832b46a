// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// 1 -> 2 broadcast of a valid/ready stream (PULP common_cells stream_fork semantics): both
// outputs present the input beat (out_data_o is in_data_i, shared); output i takes it when
// out_valid_o[i] && out_ready_i[i], and a "taken" flag per output remembers that it did, so
// that an output that has already taken the beat sees out_valid_o[i] low until the other one
// has taken it too. The input beat is accepted (in_ready_o high) in the cycle where the last
// of the two outputs takes it; the flags then clear. No output runs ahead of the other by a
// beat, and no beat is lost or duplicated under any stall pattern.
//
// Latency 0 (combinational valid/data/ready paths: in_ready_o depends on out_ready_i and
// out_valid_o on in_valid_i), throughput one beat per cycle when both outputs are ready (II=1),
// storage 2 flip-flops (the taken flags). As on any valid/ready stream, a source keeps
// in_valid_i high and in_data_i stable until the beat is accepted.
`include "nuq_assert.svh"

module stream_fork #(
  /// Payload width in bits (passed through unchanged); 1..65536.
  parameter int Width = 8
) (
  /// Clock, rising edge.
  input  logic             clk_i,
  /// Asynchronous active-low reset: clears the taken flags (everything in flight is dropped;
  /// the source is reset too under the stream contract).
  input  logic             rst_ni,
  /// Input beat valid.
  input  logic             in_valid_i,
  /// Input beat accepted: high when each output has taken the beat (now or earlier).
  output logic             in_ready_o,
  /// Input payload.
  input  logic [Width-1:0] in_data_i,
  /// Output beat valid, one bit per output: in_valid_i and the output has not taken it yet.
  output logic [1:0]       out_valid_o,
  /// Output ready, one bit per output.
  input  logic [1:0]       out_ready_i,
  /// Output payload, shared by both outputs (in_data_i).
  output logic [Width-1:0] out_data_o
);

  if (Width < 1 || Width > 65536) begin : gen_check_width
    `NUQ_ELAB_FATAL((1, "stream_fork: Width=%0d must lie in 1..65536", Width))
  end

  logic [1:0] taken_q, taken_d, done;

  assign out_valid_o = {2{in_valid_i}} & ~taken_q;
  assign out_data_o  = in_data_i;
  // An output is done with the current beat once it took it earlier or takes it now.
  assign done        = taken_q | (out_valid_o & out_ready_i);
  assign in_ready_o  = &done;

  always_comb begin
    taken_d = taken_q;
    if (in_valid_i) begin
      taken_d = in_ready_o ? 2'b00 : done;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      taken_q <= 2'b00;
    end else begin
      taken_q <= taken_d;
    end
  end

endmodule
