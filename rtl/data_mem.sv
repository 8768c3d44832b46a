// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Banked data memory of the layer-serial engine: Banks instances of ram_sdp (one write port and
// one synchronous read port each), one value per word, flat address a stored in bank a mod Banks
// at word a / Banks (Banks is a power of two, so that is a bit slice). Every access is a run of
// contiguous flat addresses, so each bank serves at most one lane per cycle:
//
//   read:  at a rising edge with re_i, lane l of rd_data_o (l < Banks) becomes the value at
//          rd_addr_i + l; with rd_split_i the upper half of the lanes (l >= Banks/2) comes from
//          rd_addr2_i + (l - Banks/2) instead. The caller guarantees rd_addr2_i = rd_addr_i +
//          Banks/2 (mod Banks) in split mode, so the two runs use complementary bank halves.
//          Latency 1 (registered in the banks), held while !re_i; lanes whose address lies
//          outside 0..Banks*BankDepth-1 return an unspecified word (callers mask them).
//          With OutReg = 1 the lane crossbar's output is registered too (a pipeline stage for
//          Fmax: the block-RAM clock-to-out is not followed by the crossbar in the same cycle):
//          both registers load at an edge with re_i, so the data of a read appears after the
//          second edge with re_i (a stall pipeline: every stage advances with re_i).
//   write: at a rising edge with we_i, the value of lane l goes to wr_addr_i + l for every
//          l < wr_lanes_i.
// Addresses are taken modulo 2^AddrWidth, so a negative read address (a padded window) is fine
// for the lanes that land inside the memory. A read of a word written at the same edge returns
// an unspecified word (ram_sdp): the engine never reads a tensor while writing it.
// The lane <-> bank crossbars are rotations by the low address bits (log2(Banks) mux levels).
`include "nuq_assert.svh"

module data_mem #(
  /// Number of banks (values read or written per cycle); power of two, 2..128.
  parameter int Banks     = 8,
  /// Value (word) width in bits; 1..64.
  parameter int Width     = 16,
  /// Words per bank; a power of two would waste nothing in the address; 2..2^20.
  parameter int BankDepth = 64,
  /// Output register after the lane crossbar: 0 = read latency 1, 1 = two re_i edges; 0..1.
  parameter int OutReg    = 0,
  /// Flat address width, log2(Banks) + $clog2(BankDepth) (derived; do not override).
  parameter int AddrWidth = $clog2(Banks) + $clog2(BankDepth),
  /// Lane-count width (derived; do not override).
  parameter int LaneWidth = $clog2(Banks + 1)
) (
  /// Clock, rising edge.
  input  logic                   clk_i,
  /// Write enable.
  input  logic                   we_i,
  /// Flat address of write lane 0 (modulo 2^AddrWidth).
  input  logic [AddrWidth-1:0]   wr_addr_i,
  /// Number of lanes written, 0..Banks.
  input  logic [LaneWidth-1:0]   wr_lanes_i,
  /// Write data, lane l at [l*Width +: Width].
  input  logic [Banks*Width-1:0] wr_data_i,
  /// Read enable: rd_data_o loads at the next edge when high, holds when low.
  input  logic                   re_i,
  /// Flat address of read lane 0 (modulo 2^AddrWidth).
  input  logic [AddrWidth-1:0]   rd_addr_i,
  /// Flat address of read lane Banks/2 in split mode (modulo 2^AddrWidth).
  input  logic [AddrWidth-1:0]   rd_addr2_i,
  /// Split mode: the upper half of the lanes reads from rd_addr2_i.
  input  logic                   rd_split_i,
  /// Read data (one cycle after re_i), lane l at [l*Width +: Width].
  output logic [Banks*Width-1:0] rd_data_o
);

  localparam int Lg = (Banks > 1) ? $clog2(Banks) : 1;
  localparam int BankAw = AddrWidth - Lg;

  if (Banks < 2 || Banks > 128 || (1 << $clog2(Banks)) != Banks) begin : gen_check_banks
    `NUQ_ELAB_FATAL((1, "data_mem: Banks=%0d must be a power of two in 2..128", Banks))
  end
  if (Width < 1 || Width > 64) begin : gen_check_width
    `NUQ_ELAB_FATAL((1, "data_mem: Width=%0d must lie in 1..64", Width))
  end
  if (BankDepth < 2 || BankDepth > (1 << 20)) begin : gen_check_depth
    `NUQ_ELAB_FATAL((1, "data_mem: BankDepth=%0d must lie in 2..2^20", BankDepth))
  end
  if (OutReg < 0 || OutReg > 1) begin : gen_check_outreg
    `NUQ_ELAB_FATAL((1, "data_mem: OutReg=%0d must be 0 or 1", OutReg))
  end

  logic [Lg-1:0]     rd_lo, rd2_lo, wr_lo, rot_q;
  logic [BankAw-1:0] rd_hi, rd2_hi, wr_hi;
  logic [Banks*Width-1:0] bank_q;  // bank b's registered read word at [b*Width +: Width]

  assign rd_lo  = rd_addr_i[Lg-1:0];
  assign rd_hi  = rd_addr_i[AddrWidth-1:Lg];
  assign rd2_lo = rd_addr2_i[Lg-1:0];
  assign rd2_hi = rd_addr2_i[AddrWidth-1:Lg];
  assign wr_lo  = wr_addr_i[Lg-1:0];
  assign wr_hi  = wr_addr_i[AddrWidth-1:Lg];

  for (genvar b = 0; b < Banks; b++) begin : gen_bank
    logic [Lg-1:0]     rd_rel, wr_rel;
    logic              use2, we, rd_c, rd2_c, wr_c;
    logic [BankAw-1:0] raddr, waddr;
    logic [Width-1:0]  wdata;

    // lane index that bank b serves: (b - lo) mod Banks; its word: hi, +1 past the wrap
    assign rd_rel = Lg'(b) - rd_lo;
    assign wr_rel = Lg'(b) - wr_lo;
    assign use2   = rd_split_i && rd_rel[Lg-1];
    // the lane's address lo + rel carries into the word index when it wraps past Banks
    assign rd_c   = 1'(({1'b0, rd_lo} + {1'b0, rd_rel}) >> Lg);
    assign rd2_c  = 1'(({1'b0, rd2_lo} + {1'b0, Lg'(b) - rd2_lo}) >> Lg);
    assign wr_c   = 1'(({1'b0, wr_lo} + {1'b0, wr_rel}) >> Lg);
    assign raddr  = use2 ? rd2_hi + BankAw'(rd2_c) : rd_hi + BankAw'(rd_c);
    assign waddr  = wr_hi + BankAw'(wr_c);
    assign we     = we_i && (LaneWidth'(wr_rel) < wr_lanes_i);
    // lane wr_rel of the write data (a Banks:1 mux; an equality per lane, no index arithmetic)
    always_comb begin
      wdata = '0;
      for (int l = 0; l < Banks; l++) begin
        if (wr_rel == Lg'(l)) wdata = wr_data_i[l*Width +: Width];
      end
    end

    ram_sdp #(
      .Width(Width),
      .Depth(BankDepth)
    ) u_ram (
      .clk_i,
      .we_i   (we),
      .waddr_i(waddr[$clog2(BankDepth)-1:0]),
      .wdata_i(wdata),
      .re_i,
      .raddr_i(raddr[$clog2(BankDepth)-1:0]),
      .rdata_o(bank_q[b*Width +: Width])
    );
  end

  always_ff @(posedge clk_i) begin
    if (re_i) rot_q <= rd_lo;
  end

  // lane l = bank (rot + l) mod Banks
  logic [Banks*Width-1:0] lanes;
  for (genvar l = 0; l < Banks; l++) begin : gen_lane
    logic [Lg-1:0] sel;
    assign sel = rot_q + Lg'(l);
    always_comb begin
      lanes[l*Width +: Width] = '0;
      for (int b = 0; b < Banks; b++) begin
        if (sel == Lg'(b)) lanes[l*Width +: Width] = bank_q[b*Width +: Width];
      end
    end
  end

  if (OutReg == 1) begin : gen_out_reg
    logic [Banks*Width-1:0] out_q;
    always_ff @(posedge clk_i) begin
      if (re_i) out_q <= lanes;
    end
    assign rd_data_o = out_q;
  end else begin : gen_out_comb
    assign rd_data_o = lanes;
  end

endmodule
