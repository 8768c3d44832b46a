// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Formal stream checker for a one-in one-out valid/ready block (SymbiYosys, `read -formal`).
// The block wrapper (formal/<block>_props.sv) computes, for every input beat, the payload the
// specification says must come out (in_expect_i); this checker proves:
//   * the output is a valid/ready stream: out_valid held until accepted, payload stable while
//     stalled (assert);
//   * no beat is lost, duplicated, made up or reordered: input and output beats are counted
//     modulo 2^CntW; the occupancy in_cnt - out_cnt never exceeds Cap and no output leaves an
//     empty block; a symbolic beat index Idx (anyconst, so every index at once) records the
//     expected payload of input beat Idx and the output beat with index Idx must carry it.
//     Since Idx is free, this is every beat: the k-th output is exactly the spec of the k-th
//     input, i.e. in order, once, unchanged.
// in_data_i (InWidth bits) is the raw input beat, only for the input-protocol assumption.
// The input side is driven by the solver (anyseq) and ASSUMED to obey the protocol (valid held
// until accepted, payload stable while stalled: the contract the block may rely on).
// Reset: rst_ni is free after the first cycle (which is reset): a reset drops the beats inside.
// Exact = 1: the block is one register stage (rtl/stream_reg.sv): out_valid == (occupancy != 0),
// in_ready == !out_valid || out_ready, and the held beat is the oldest, which also makes the
// tracked-beat proof inductive.
module stream_check #(
  parameter int Width = 8,
  parameter int InWidth = Width,
  parameter int Cap   = 1,
  parameter int CntW  = 4,
  parameter int Exact = 1
) (
  input logic             clk_i,
  input logic             rst_ni,
  input logic             in_valid_i,
  input logic             in_ready_i,
  input logic [InWidth-1:0] in_data_i,
  input logic [Width-1:0] in_expect_i,
  input logic             out_valid_i,
  input logic             out_ready_i,
  input logic [Width-1:0] out_data_i,
  /// Index of the tracked beat: a free input, assumed constant (every index at once).
  input logic [CntW-1:0]  idx_i
);
  logic [CntW-1:0] idx;
  assign idx = idx_i;

  logic [CntW-1:0]  in_cnt, out_cnt, occ;
  logic [Width-1:0] track_data;
  logic             track_set;
  logic             past_ok = 1'b0;  // the previous cycle was out of reset
  logic             started = 1'b0;  // not the first cycle
  logic             in_acc, out_acc;

  assign in_acc  = in_valid_i && in_ready_i;
  assign out_acc = out_valid_i && out_ready_i;
  assign occ     = in_cnt - out_cnt;

  // The first cycle is a reset.
  always @(*) begin
    if (!started) assume (!rst_ni);
  end
  always @(posedge clk_i) begin
    if (started) assume (idx == $past(idx));
  end

  always @(posedge clk_i) begin
    started <= 1'b1;
    past_ok <= rst_ni;
    if (!rst_ni) begin
      in_cnt    <= '0;
      out_cnt   <= '0;
      track_set <= 1'b0;
    end else begin
      if (in_acc) in_cnt <= in_cnt + 1'b1;
      if (out_acc) out_cnt <= out_cnt + 1'b1;
      if (out_acc && out_cnt == idx) track_set <= 1'b0;
      if (in_acc && in_cnt == idx) begin
        track_set  <= 1'b1;
        track_data <= in_expect_i;
      end
    end
  end

  always @(*) begin
    if (rst_ni) begin
      // bounded occupancy, nothing out of an empty block
      assert (occ <= Cap);
      if (occ == 0) assert (!out_valid_i);
      // the tracked beat is inside exactly when its index lies between out_cnt and in_cnt
      assert (track_set == (CntW'(idx - out_cnt) < occ));
      // the output beat with index idx carries the tracked beat's expected payload
      if (out_valid_i && out_cnt == idx) begin
        assert (track_set);
        assert (out_data_i == track_data);
      end
      if (Exact) begin
        // one register stage: valid iff a beat is inside; ready rule of rtl/stream_reg.sv
        // (a full register that drains takes a new beat in the same cycle: full throughput)
        assert (out_valid_i == (occ != 0));
        assert (in_ready_i == (!out_valid_i || out_ready_i));
      end
    end
  end

  always @(posedge clk_i) begin
    if (past_ok && rst_ni) begin
      // output protocol: a stalled beat stays valid and unchanged
      if ($past(out_valid_i && !out_ready_i)) begin
        assert (out_valid_i);
        assert (out_data_i == $past(out_data_i));
      end
      // input protocol (environment)
      if ($past(in_valid_i && !in_ready_i)) begin
        assume (in_valid_i);
        assume (in_data_i == $past(in_data_i));
      end
    end
  end
endmodule
