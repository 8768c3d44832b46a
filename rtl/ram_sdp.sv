// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Simple dual-port RAM: one write port and one synchronous read port on one clock, the
// template that Yosys maps to block RAM (Xilinx 7-series RAMB18/36, iCE40 SB_RAM40_4K, ECP5
// DP16KD) or, when small, to LUT RAM. Every memory of rtl/ (data-memory banks, line buffers,
// FIFOs, weight / bias / threshold / descriptor ROMs) is an instance of this module, so that
// nothing in rtl/ is a multi-port array.
//
//   write: at a rising edge with we_i, mem[waddr_i] <= wdata_i;
//   read:  at a rising edge with re_i, rdata_o <= mem[raddr_i] (latency 1; held while !re_i).
// A read and a write of the same address at the same edge return an unspecified word (the
// simulators return the old word; `no_rw_check` lets Yosys drop the bypass logic it would add
// otherwise): callers never read the word being written in the same cycle.
// Addresses >= Depth are ignored on write and read an unspecified word (callers keep them in
// range). rdata_o has no reset and no initial value (block RAM output registers have none that
// all families share): it is unspecified until the first read. InitFile preloads the memory with $readmemh (one word a
// line, hexadecimal); with we_i tied low the memory is a ROM.
`include "nuq_assert.svh"

module ram_sdp #(
  /// Word width in bits; 1..4096.
  parameter int Width     = 8,
  /// Number of words; 1..2^24.
  parameter int Depth     = 512,
  /// $readmemh image loaded at time 0 ("" = none: the words start unspecified; X in Icarus).
  parameter     InitFile  = "",
  /// Memory style for Yosys (ram_style / rom_style attribute): 0 = "auto" (block RAM where it
  /// pays), 1 = "logic" (LUTs and flip-flops: a small sparse ROM that would otherwise take whole
  /// block RAMs); simulation is the same; 0..1.
  parameter int Logic     = 0,
  /// Address width in bits, max(1, $clog2(Depth)) (derived; do not override).
  parameter int AddrWidth = (Depth > 1) ? $clog2(Depth) : 1
) (
  /// Clock, rising edge (both ports).
  input  logic                 clk_i,
  /// Write enable.
  input  logic                 we_i,
  /// Write address, 0..Depth-1.
  input  logic [AddrWidth-1:0] waddr_i,
  /// Write data.
  input  logic [Width-1:0]     wdata_i,
  /// Read enable: rdata_o loads mem[raddr_i] at the next edge when high, holds when low.
  input  logic                 re_i,
  /// Read address, 0..Depth-1.
  input  logic [AddrWidth-1:0] raddr_i,
  /// Read data, one cycle after the read (registered, no reset; unspecified before a read).
  output logic [Width-1:0]     rdata_o
);

  if (Width < 1 || Width > 4096) begin : gen_check_width
    `NUQ_ELAB_FATAL((1, "ram_sdp: Width=%0d must lie in 1..4096", Width))
  end
  if (Depth < 1 || Depth > (1 << 24)) begin : gen_check_depth
    `NUQ_ELAB_FATAL((1, "ram_sdp: Depth=%0d must lie in 1..2^24", Depth))
  end
  if (Logic < 0 || Logic > 1) begin : gen_check_logic
    `NUQ_ELAB_FATAL((1, "ram_sdp: Logic=%0d must be 0 or 1", Logic))
  end

  /* verilator lint_off UNUSEDPARAM */  // used by the attributes only
  localparam Style = (Logic == 1) ? "logic" : "auto";
  /* verilator lint_on UNUSEDPARAM */
  (* no_rw_check, ram_style = Style, rom_style = Style *) logic [Width-1:0] mem_q [Depth];
  logic [Width-1:0] rdata_q;

  if (InitFile != "") begin : gen_init
    initial $readmemh(InitFile, mem_q);
  end

  always_ff @(posedge clk_i) begin
    if (we_i && (32'(waddr_i) < Depth)) mem_q[waddr_i] <= wdata_i;
  end

  always_ff @(posedge clk_i) begin
    if (re_i) rdata_q <= mem_q[raddr_i];
  end

  assign rdata_o = rdata_q;

endmodule
