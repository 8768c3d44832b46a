// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// The two threshold_quant implementations against the specification and against each other,
// for ANY ascending thresholds: the thresholds are free inputs (held constant, assumed
// T[c][1] <= ... <= T[c][L] per channel, L = 2^ABits - 1), loaded after every reset through the
// cfg_* write port into both
//   u_par: BinarySearch = 0 (parallel comparators, writable register table), and
//   u_bs:  BinarySearch = 1 (pipelined binary search, per-stage memories, output FIFO).
// Then both take the same beats in lock step (a beat is offered only when both are ready) with
// free accumulators, free user tags and independent free back-pressure on each output.
// Proved (bounded, see the .sby depth): for every beat index k (formal/stream_check.sv, a
// symbolic index) each unit's k-th output is {user_k, y_k} with
//   y_k[l] = #{j : x_k[l] >= T[l][j]}   (QONNX MultiThreshold, lane l = channel l),
// both outputs are valid/ready streams (held until accepted, stable while stalled) that lose,
// duplicate and reorder nothing, and the k-th codes of the two units are equal.
module threshold_quant_props #(
  parameter int AccWidth  = 5,
  parameter int ABits     = 2,
  parameter int Lanes     = 1,
  parameter int UserWidth = 1,
  localparam int NumThr   = (1 << ABits) - 1,
  localparam int CfgChanW = (Lanes > 1) ? $clog2(Lanes) : 1
) (
  input logic clk_i,
  // Free inputs (the solver chooses them every cycle).
  input logic                             rst_ni,
  input logic                             in_valid,
  input logic [Lanes*AccWidth-1:0]        in_data,
  input logic [UserWidth-1:0]             in_user,
  input logic                             par_out_ready,
  input logic                             bs_out_ready,
  input logic [Lanes*NumThr*AccWidth-1:0] thr_i,   // T[c][k] at ((c*NumThr)+k-1)*AccWidth
  input logic [3:0]                       idx_i
);
  localparam int OutW  = UserWidth + Lanes * ABits;
  localparam int Words = Lanes * NumThr;
  localparam int WcW   = $clog2(Words + 1);

  logic started = 1'b0;
  always @(posedge clk_i) started <= 1'b1;

  // Thresholds: constant, ascending per channel.
  always @(posedge clk_i) begin
    if (started) assume (thr_i == $past(thr_i));
  end
  always @(*) begin
    for (int c = 0; c < Lanes; c++) begin
      for (int k = 1; k < NumThr; k++) begin
        assume ($signed(thr_i[(c*NumThr + k - 1)*AccWidth +: AccWidth])
                <= $signed(thr_i[(c*NumThr + k)*AccWidth +: AccWidth]));
      end
    end
  end

  // Load phase after every reset: word w = c*NumThr + k-1 in cycle w; no beats meanwhile.
  logic [WcW-1:0] wcnt;
  logic           loading, cfg_we;
  logic [CfgChanW-1:0] cfg_chan;
  logic [ABits-1:0]    cfg_idx;
  logic [AccWidth-1:0] cfg_thr;
  always @(posedge clk_i) begin
    if (!rst_ni) wcnt <= '0;
    else if (loading) wcnt <= wcnt + 1'b1;
  end
  assign loading  = rst_ni && (wcnt < WcW'(Words));
  assign cfg_we   = loading;
  assign cfg_chan = CfgChanW'(32'(wcnt) / NumThr);
  assign cfg_idx  = ABits'(32'(wcnt) % NumThr);
  assign cfg_thr  = thr_i[32'(wcnt) * AccWidth +: AccWidth];

  // Lock step: a beat is offered to both units only when both are ready.
  logic par_ready, bs_ready, valid;
  assign valid = in_valid && !loading && !cfg_we && par_ready && bs_ready;

  logic                   par_valid, bs_valid;
  logic [Lanes*ABits-1:0] par_data, bs_data;
  logic [UserWidth-1:0]   par_user, bs_user;

  threshold_quant #(.AccWidth(AccWidth), .ABits(ABits), .Channels(Lanes), .Lanes(Lanes),
                    .UserWidth(UserWidth), .BinarySearch(0), .Writable(1)) u_par (
    .clk_i, .rst_ni, .cfg_we_i(cfg_we), .cfg_chan_i(cfg_chan), .cfg_idx_i(cfg_idx),
    .cfg_thr_i(cfg_thr), .in_valid_i(valid), .in_ready_o(par_ready), .in_data_i(in_data),
    .in_chan_i(1'b0), .in_user_i(in_user), .out_valid_o(par_valid),
    .out_ready_i(par_out_ready), .out_data_o(par_data), .out_user_o(par_user)
  );

  threshold_quant #(.AccWidth(AccWidth), .ABits(ABits), .Channels(Lanes), .Lanes(Lanes),
                    .UserWidth(UserWidth), .BinarySearch(1), .Writable(1)) u_bs (
    .clk_i, .rst_ni, .cfg_we_i(cfg_we), .cfg_chan_i(cfg_chan), .cfg_idx_i(cfg_idx),
    .cfg_thr_i(cfg_thr), .in_valid_i(valid), .in_ready_o(bs_ready), .in_data_i(in_data),
    .in_chan_i(1'b0), .in_user_i(in_user), .out_valid_o(bs_valid),
    .out_ready_i(bs_out_ready), .out_data_o(bs_data), .out_user_o(bs_user)
  );

  // Specification: y[l] = #{k : x[l] >= T[l][k]}.
  logic [Lanes*ABits-1:0] spec;
  always @(*) begin
    for (int l = 0; l < Lanes; l++) begin
      logic [ABits-1:0] n;
      n = '0;
      for (int k = 0; k < NumThr; k++) begin
        if ($signed(in_data[l*AccWidth +: AccWidth])
            >= $signed(thr_i[(l*NumThr + k)*AccWidth +: AccWidth])) n = n + 1'b1;
      end
      spec[l*ABits +: ABits] = n;
    end
  end

  stream_check #(.Width(OutW), .InWidth(OutW - Lanes*ABits + Lanes*AccWidth), .Cap(1))
  u_check_par (
    .clk_i, .rst_ni,
    .in_valid_i(valid), .in_ready_i(par_ready), .in_data_i({in_user, in_data}),
    .in_expect_i({in_user, spec}), .idx_i,
    .out_valid_i(par_valid), .out_ready_i(par_out_ready), .out_data_i({par_user, par_data})
  );

  stream_check #(.Width(OutW), .InWidth(OutW - Lanes*ABits + Lanes*AccWidth), .Cap(ABits + 1),
                 .Exact(0)) u_check_bs (
    .clk_i, .rst_ni,
    .in_valid_i(valid), .in_ready_i(bs_ready), .in_data_i({in_user, in_data}),
    .in_expect_i({in_user, spec}), .idx_i,
    .out_valid_i(bs_valid), .out_ready_i(bs_out_ready), .out_data_i({bs_user, bs_data})
  );

  // Direct equivalence: the k-th output codes of the two units (same k-th input) are equal.
  logic [3:0]             par_cnt, bs_cnt;
  logic [Lanes*ABits-1:0] par_rec, bs_rec;
  logic                   par_seen, bs_seen;
  always @(posedge clk_i) begin
    if (!rst_ni) begin
      par_cnt  <= '0;
      bs_cnt   <= '0;
      par_seen <= 1'b0;
      bs_seen  <= 1'b0;
    end else begin
      if (par_valid && par_out_ready) begin
        par_cnt <= par_cnt + 1'b1;
        if (par_cnt == idx_i) begin
          par_seen <= 1'b1;
          par_rec  <= par_data;
        end
      end
      if (bs_valid && bs_out_ready) begin
        bs_cnt <= bs_cnt + 1'b1;
        if (bs_cnt == idx_i) begin
          bs_seen <= 1'b1;
          bs_rec  <= bs_data;
        end
      end
    end
  end
  always @(*) begin
    if (rst_ni && par_seen && bs_seen) assert (par_rec == bs_rec);
  end
endmodule
