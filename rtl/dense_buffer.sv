// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Input buffer of a dense layer in the dataflow engine: takes the layer's input tensor as a
// pixel stream (Pixels beats of Channels codes, raster order = golden's flatten order) and
// replays it, once per channel group of the mvau behind it (rtl/mvau.sv, InMode = 1), as a
// stream of Simd-code chunks: Groups x Chunks beats per image, chunk j = flattened elements
// j*Simd .. j*Simd+Simd-1 (zeros past Pixels*Channels), Chunks = ceil(Pixels*Channels/Simd).
//
// Storage: one ram_sdp of 2 x Words words (ping-pong banks): the next image is written into one
// bank while the current one is read from the other, so the dense layer's input never needs a
// Pixels*Channels-code register. A word holds WordCodes = Pack*Channels = Split*Simd codes:
//   Simd a multiple of Channels: Pack = Simd/Channels pixels per word (gathered in a register),
//                                one word = one chunk;
//   Channels a multiple of Simd: one pixel per word, read Split = Channels/Simd times (one
//                                chunk each, selected by a counter).
// Write side: one pixel per cycle (in_ready_o low only while both banks hold an image not yet
// read out). Read side: one chunk per cycle (II=1) while a full bank is being replayed; output
// register with the RAM's enable as the hold (re_i low under back-pressure). A bank is written
// only while not full and read only while full, so a read never meets a write of the same word.
`include "nuq_assert.svh"

module dense_buffer #(
  /// Code width in bits, unsigned; 1..16.
  parameter int Bits      = 4,
  /// Channels per input pixel; 1..4096.
  parameter int Channels  = 2,
  /// Pixels per image (H*W); 1..2^20.
  parameter int Pixels    = 4,
  /// Codes per output chunk; a multiple or a divisor of Channels; 1..1024.
  parameter int Simd      = 4,
  /// Replays per image (the mvau's channel groups); 1..65536.
  parameter int Groups    = 2,
  /// Pixels per word (derived; do not override).
  parameter int Pack      = (Simd % Channels == 0) ? Simd / Channels : 1,
  /// Chunks per word (derived; do not override).
  parameter int Split     = (Channels % Simd == 0) ? Channels / Simd : 1,
  /// Words per image (derived; do not override).
  parameter int Words     = (Pixels + Pack - 1) / Pack
) (
  /// Clock, rising edge.
  input  logic                     clk_i,
  /// Asynchronous active-low reset; empties both banks (drops the images in flight).
  input  logic                     rst_ni,
  /// Input pixel valid.
  input  logic                     in_valid_i,
  /// Input pixel accepted when in_valid_i && in_ready_o.
  output logic                     in_ready_o,
  /// Input pixel, channel c at [c*Bits +: Bits].
  input  logic [Channels*Bits-1:0] in_data_i,
  /// Output chunk valid.
  output logic                     out_valid_o,
  /// Downstream ready (back-pressure when low).
  input  logic                     out_ready_i,
  /// Output chunk, element s at [s*Bits +: Bits].
  output logic [Simd*Bits-1:0]     out_data_o
);

  localparam int WordB  = Pack * Channels * Bits;
  localparam int PixB   = Channels * Bits;
  localparam int ChunkB = Simd * Bits;
  localparam int Depth  = 2 * Words;
  localparam int AddrW  = (Depth > 1) ? $clog2(Depth) : 1;
  localparam int PackW  = (Pack > 1) ? $clog2(Pack) : 1;
  localparam int SplitW = (Split > 1) ? $clog2(Split) : 1;
  localparam int GroupW = (Groups > 1) ? $clog2(Groups) : 1;
  localparam int LastPk = (Pixels - 1) % Pack;  // slot of the image's last pixel

  if (Bits < 1 || Bits > 16) begin : gen_check_bits
    `NUQ_ELAB_FATAL((1, "dense_buffer: Bits=%0d must lie in 1..16", Bits))
  end
  if (Simd % Channels != 0 && Channels % Simd != 0) begin : gen_check_simd
    `NUQ_ELAB_FATAL((1, "dense_buffer: Simd=%0d must divide or be a multiple of Channels=%0d",
                     Simd, Channels))
  end
  if (Pixels < 1 || Pixels > (1 << 20)) begin : gen_check_pixels
    `NUQ_ELAB_FATAL((1, "dense_buffer: Pixels=%0d must lie in 1..2^20", Pixels))
  end
  if (Groups < 1 || Groups > 65536) begin : gen_check_groups
    `NUQ_ELAB_FATAL((1, "dense_buffer: Groups=%0d must lie in 1..65536", Groups))
  end

  logic [1:0]       full_q;      // bank b holds a complete image not yet replayed
  logic             wbank_q, rbank_q;
  logic             we, re, wr_done, rd_done;
  logic [AddrW-1:0] waddr, raddr;
  logic [WordB-1:0] wdata, rdata;

  // ---- write side ------------------------------------------------------------------------------
  logic [AddrW-1:0] wword_q;     // word within the bank
  logic [PackW-1:0] wslot_q;     // pixel slot within the word
  logic             accept, last_px, word_full;

  assign in_ready_o = ~full_q[wbank_q];
  assign accept     = in_valid_i & in_ready_o;
  assign last_px    = (wword_q == AddrW'(Words - 1)) && (wslot_q == PackW'(LastPk));
  assign word_full  = (wslot_q == PackW'(Pack - 1)) | last_px;
  assign we         = accept & word_full;
  assign wr_done    = accept & last_px;
  assign waddr      = (wbank_q ? AddrW'(Words) : AddrW'(0)) + wword_q;

  if (Pack > 1) begin : gen_gather
    // Pixels of one word gather here; the word is written with its last pixel (the image's
    // last word may be partial: its free slots stay 0).
    logic [WordB-1:0] gather_q;
    always_comb begin
      wdata = gather_q;
      wdata[wslot_q*PixB +: PixB] = in_data_i;
    end
    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        gather_q <= '0;
      end else if (accept) begin
        gather_q <= word_full ? '0 : wdata;
      end
    end
  end else begin : gen_no_gather
    assign wdata = in_data_i;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      wword_q <= '0;
      wslot_q <= '0;
      wbank_q <= 1'b0;
    end else if (accept) begin
      wslot_q <= word_full ? '0 : wslot_q + PackW'(1);
      if (word_full) begin
        wword_q <= last_px ? '0 : wword_q + AddrW'(1);
      end
      if (last_px) begin
        wbank_q <= ~wbank_q;
      end
    end
  end

  // ---- read side -------------------------------------------------------------------------------
  logic [AddrW-1:0]  rword_q;
  logic [SplitW-1:0] rsub_q, out_sub_q;
  logic [GroupW-1:0] rgroup_q;
  logic              out_valid_q, advance, last_sub, last_word, last_group;

  assign advance    = ~out_valid_q | out_ready_i;
  assign re         = full_q[rbank_q] & advance;
  assign last_sub   = (rsub_q == SplitW'(Split - 1));
  assign last_word  = (rword_q == AddrW'(Words - 1));
  assign last_group = (rgroup_q == GroupW'(Groups - 1));
  assign rd_done    = re & last_sub & last_word & last_group;
  assign raddr      = (rbank_q ? AddrW'(Words) : AddrW'(0)) + rword_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      rword_q     <= '0;
      rsub_q      <= '0;
      rgroup_q    <= '0;
      rbank_q     <= 1'b0;
      out_valid_q <= 1'b0;
      out_sub_q   <= '0;
    end else if (advance) begin
      out_valid_q <= re;
      if (re) begin
        out_sub_q <= rsub_q;
        rsub_q    <= last_sub ? '0 : rsub_q + SplitW'(1);
        if (last_sub) begin
          rword_q <= last_word ? '0 : rword_q + AddrW'(1);
          if (last_word) begin
            rgroup_q <= last_group ? '0 : rgroup_q + GroupW'(1);
          end
        end
        if (rd_done) begin
          rbank_q <= ~rbank_q;
        end
      end
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      full_q <= '0;
    end else begin
      for (int b = 0; b < 2; b++) begin
        if (wr_done && (wbank_q == b[0])) begin
          full_q[b] <= 1'b1;
        end else if (rd_done && (rbank_q == b[0])) begin
          full_q[b] <= 1'b0;
        end
      end
    end
  end

  ram_sdp #(
    .Width(WordB),
    .Depth(Depth)
  ) u_ram (
    .clk_i,
    .we_i   (we),
    .waddr_i(waddr),
    .wdata_i(wdata),
    .re_i   (re),
    .raddr_i(raddr),
    .rdata_o(rdata)
  );

  // Split > 1: the word is one pixel, read Split times; Split = 1: the word is the chunk.
  assign out_valid_o = out_valid_q;
  assign out_data_o  = rdata[out_sub_q*ChunkB +: ChunkB];

endmodule
