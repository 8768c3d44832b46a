// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// First-word-fall-through FIFO for a valid/ready stream: holds up to Depth beats, out_data_o is
// the oldest beat whenever out_valid_o is high, one push and one pop per cycle at the same time
// (II=1 on both sides). in_ready_o, out_valid_o and level_o come straight from flip-flops (no
// combinational path from out_ready_i to in_ready_o nor from in_valid_i to out_valid_o), so a
// FIFO also cuts the handshake timing paths between two units. Because in_ready_o is
// registered, a full FIFO takes no beat in the cycle it pops one (it is ready again the cycle
// after); Depth = 1 therefore passes at most one beat every two cycles: use Depth >= 2 for
// II=1.
//
// Storage (UseRam, derived from the size, may be overridden):
// * flip-flops (UseRam = 0, default when Depth < 8, or Depth <= 16 with Width*Depth < 256
//   bits): Depth words of flip-flops written at the write pointer and read through a mux at the
//   read pointer; latency 1 (a beat pushed at an edge is at the output right after it).
// * RAM (UseRam = 1, default when Depth > 16, or Depth >= 8 with Width*Depth >= 256 bits):
//   Depth words in rtl/ram_sdp.sv (block / LUT RAM, synchronous read; payloads wider than
//   4096 bits in several side-by-side instances) whose read-data register is the head of the
//   queue: out_data_o comes straight from the RAM output (ram_sdp holds the word while no
//   read is issued), no flip-flop buffer and no output mux. A RAM read is issued when the RAM
//   holds a word written at an earlier edge and the head is empty or popped, so a sustained
//   pop reads the next word in the cycle of the pop (II=1). The read address always points at
//   a word written at an earlier edge (the write address equals the read address only when
//   the RAM holds 0 or Depth unread words: no read, or a full FIFO that takes no push), so the
//   RAM's unspecified same-address read-during-write never happens. Latency 2 (write, then
//   read). Capacity Depth beats in all (RAM + head); with the registered in_ready_o, II=1
//   needs Depth >= 3 here (Depth 1 / 2 forced onto RAM pass 1 / 2 beats in 3 cycles).
// Reset empties the FIFO (asynchronous; the stored words themselves are not cleared).
`include "nuq_assert.svh"

module stream_fifo #(
  /// Payload width in bits (passed through unchanged); 1..65536.
  parameter int Width     = 8,
  /// Capacity in beats; 1..2^20 (Depth >= 2 for one beat per cycle).
  parameter int Depth     = 16,
  /// 1: words in rtl/ram_sdp.sv; 0: flip-flops (default derived from Depth and Width).
  parameter bit UseRam    = (Depth > 16) || (Depth >= 8 && Width * Depth >= 256),
  /// Width of level_o, $clog2(Depth + 1) (derived; do not override).
  parameter int LevelWidth = (Depth >= 1) ? $clog2(Depth + 1) : 1
) (
  /// Clock, rising edge.
  input  logic                  clk_i,
  /// Asynchronous active-low reset: empties the FIFO.
  input  logic                  rst_ni,
  /// Input beat valid.
  input  logic                  in_valid_i,
  /// Input ready: the FIFO holds fewer than Depth beats (registered).
  output logic                  in_ready_o,
  /// Input payload.
  input  logic [Width-1:0]      in_data_i,
  /// Output beat valid: the FIFO presents its oldest beat (registered).
  output logic                  out_valid_o,
  /// Downstream ready.
  input  logic                  out_ready_i,
  /// Output payload: the oldest beat while out_valid_o is high.
  output logic [Width-1:0]      out_data_o,
  /// Beats held, 0..Depth (registered; counts a pushed beat from the edge that takes it).
  output logic [LevelWidth-1:0] level_o
);

  if (Width < 1 || Width > 65536) begin : gen_check_width
    `NUQ_ELAB_FATAL((1, "stream_fifo: Width=%0d must lie in 1..65536", Width))
  end
  if (Depth < 1 || Depth > (1 << 20)) begin : gen_check_depth
    `NUQ_ELAB_FATAL((1, "stream_fifo: Depth=%0d must lie in 1..2^20", Depth))
  end

  // Depth clamped to >= 1 so that a bad Depth reaches the check above, not a sizing error.
  localparam int Words = (Depth >= 1) ? Depth : 1;
  localparam int AddrWidth = (Words > 1) ? $clog2(Words) : 1;
  localparam logic [AddrWidth-1:0] LastAddr = AddrWidth'(Words - 1);

  logic push, pop;
  logic [LevelWidth-1:0] level_q, level_d;
  logic full_q, valid_q;
  logic [AddrWidth-1:0] waddr_q, waddr_d;

  assign push        = in_valid_i & ~full_q;
  assign in_ready_o  = ~full_q;
  assign out_valid_o = valid_q;
  assign pop         = valid_q & out_ready_i;
  assign level_o     = level_q;

  always_comb begin
    level_d = level_q;
    if (push && !pop) level_d = level_q + LevelWidth'(1);
    if (pop && !push) level_d = level_q - LevelWidth'(1);
  end

  assign waddr_d = !push ? waddr_q : (waddr_q == LastAddr) ? '0 : waddr_q + AddrWidth'(1);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      level_q <= '0;
      full_q  <= 1'b0;
      waddr_q <= '0;
    end else begin
      level_q <= level_d;
      full_q  <= (level_d == LevelWidth'(Depth));
      waddr_q <= waddr_d;
    end
  end

  if (!UseRam) begin : gen_ff
    // Flip-flop storage, read through a mux at the read pointer.
    logic [Width-1:0] mem_q [Words];
    logic [AddrWidth-1:0] raddr_q;

    always_ff @(posedge clk_i) begin
      if (push) mem_q[waddr_q] <= in_data_i;
    end

    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        raddr_q <= '0;
        valid_q <= 1'b0;
      end else begin
        if (pop) raddr_q <= (raddr_q == LastAddr) ? '0 : raddr_q + AddrWidth'(1);
        valid_q <= (level_d != '0);
      end
    end

    assign out_data_o = mem_q[raddr_q];
  end else begin : gen_ram
    // RAM storage; the RAM's read-data register is the head of the queue (ram_sdp holds its
    // word while re_i is low), so no buffer of flip-flops or output mux is needed: a word is
    // read when the RAM holds one written at an earlier edge and the head is empty or leaves.
    logic [AddrWidth-1:0] raddr_q;
    logic [LevelWidth-1:0] ram_cnt_q, ram_cnt_d;
    logic ram_nonempty_q;
    logic re, head_d;

    assign re     = ram_nonempty_q & (~valid_q | pop);
    assign head_d = re | (valid_q & ~pop);

    // ram_sdp words are at most 4096 bits: a wider payload is stored in side-by-side slices.
    localparam int SliceW = 4096;
    localparam int Slices = (Width + SliceW - 1) / SliceW;
    for (genvar i = 0; i < Slices; i++) begin : gen_slice
      localparam int Lo = i * SliceW;
      localparam int W  = (Width - Lo > SliceW) ? SliceW : Width - Lo;
      ram_sdp #(
        .Width(W),
        .Depth(Words)
      ) u_ram (
        .clk_i,
        .we_i   (push),
        .waddr_i(waddr_q),
        .wdata_i(in_data_i[Lo +: W]),
        .re_i   (re),
        .raddr_i(raddr_q),
        .rdata_o(out_data_o[Lo +: W])
      );
    end

    always_comb begin
      ram_cnt_d = ram_cnt_q;
      if (push && !re) ram_cnt_d = ram_cnt_q + LevelWidth'(1);
      if (re && !push) ram_cnt_d = ram_cnt_q - LevelWidth'(1);
    end

    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        raddr_q        <= '0;
        ram_cnt_q      <= '0;
        ram_nonempty_q <= 1'b0;
        valid_q        <= 1'b0;
      end else begin
        if (re) raddr_q <= (raddr_q == LastAddr) ? '0 : raddr_q + AddrWidth'(1);
        ram_cnt_q      <= ram_cnt_d;
        ram_nonempty_q <= (ram_cnt_d != '0);
        valid_q        <= head_d;
      end
    end
  end

endmodule
