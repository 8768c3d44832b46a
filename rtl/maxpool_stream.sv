// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Streaming max pooling of the dataflow engine, golden.ops.maxpool2d semantics exactly:
// Kernel x Kernel windows at Stride (overlapping when Stride < Kernel, gaps when Stride >
// Kernel), no padding, floor mode: OutH = (InH - Kernel) / Stride + 1 (same for W); rows and
// columns of the remainder are consumed and ignored. Channels are pooled independently,
// as unsigned codes (Signed = 0) or signed two's complement accumulators (Signed = 1).
//   in:  one beat = one pixel of an (InH, InW, Channels) map in raster order, channel c at
//        bits [c*Bits +: Bits]; images back to back, no gap, no marker.
//   out: one beat = one pooled pixel, same layout, in raster order of the OutH x OutW map.
//
// How (separable max): the last Kernel-1 pixels of the row sit in a shift register; at a
// column where a window ends (rtl/window_scan.sv, stride phase counters) their maximum with the incoming pixel is
// the row maximum hmax of that window column. A line store keeps, for each of the OutW window
// columns, the row maxima of the last Kernel-1 rows (one word of Kernel-1 slots per column,
// rewritten shifted by one slot with hmax in slot 0). At a row where a window ends, the
// maximum of hmax and the stored slots is the pooled pixel. The line store is a ram_sdp of
// OutW words of (Kernel-1)*Channels*Bits bits (its read is prefetched one window column
// ahead; read and write addresses differ since OutW >= 2), or flip-flops (UseRam = 0, forced
// when OutW = 1, default when the store is under 64 bits) with the same synchronous read and
// write-first forwarding. Comparators: 2(Kernel-1) per channel. No multiplies: counters.
//
// Latency 1 (the pooled pixel is registered at the edge that takes the last pixel of its
// window). Throughput: one input pixel per cycle (II=1); in_ready_o is low only when the
// incoming pixel completes a window and the output register holds a pixel that is not taken
// in this cycle (combinational from out_ready_i, as in rtl/stream_reg.sv).
// Storage: (Kernel-1)*Channels*Bits flip-flops (row shift register) + the line store +
// Channels*Bits output register + counters. Reset (asynchronous) restarts at the top of an
// image; the line store needs no clearing (stale rows never reach an emitted pixel).
`include "nuq_assert.svh"

module maxpool_stream #(
  /// Bits per element; 1..64.
  parameter int Bits     = 4,
  /// Channels per pixel; 1..4096.
  parameter int Channels = 1,
  /// Image height in pixels; Kernel..4096.
  parameter int InH      = 8,
  /// Image width in pixels; Kernel..4096.
  parameter int InW      = 8,
  /// Pooling window side K; 1..7.
  parameter int Kernel   = 2,
  /// Stride in both directions; 1..8.
  parameter int Stride   = 2,
  /// 1: elements are signed two's complement (accumulators); 0: unsigned codes.
  parameter bit Signed   = 1'b0,
  /// Pixel width Channels*Bits (derived; do not override).
  parameter int PixW     = Channels * Bits,
  /// Output columns (InW - Kernel) / Stride + 1 (derived; do not override).
  parameter int OutW     = (InW >= Kernel && Stride >= 1) ? (InW - Kernel) / Stride + 1 : 1,
  /// 1: line store in rtl/ram_sdp.sv; 0: flip-flops (default: RAM when OutW >= 2 and the store
  /// holds at least 64 bits; OutW = 1 always uses flip-flops).
  parameter bit UseRam   = (OutW >= 2) && (OutW * (Kernel - 1) * PixW >= 64)
) (
  /// Clock, rising edge.
  input  logic            clk_i,
  /// Asynchronous active-low reset: restarts at the top of an image, drops the output.
  input  logic            rst_ni,
  /// Input pixel valid.
  input  logic            in_valid_i,
  /// Input pixel accepted.
  output logic            in_ready_o,
  /// Input pixel, channel c at bits [c*Bits +: Bits].
  input  logic [PixW-1:0] in_data_i,
  /// Pooled pixel valid.
  output logic            out_valid_o,
  /// Downstream ready.
  input  logic            out_ready_i,
  /// Pooled pixel, channel c at bits [c*Bits +: Bits] (registered).
  output logic [PixW-1:0] out_data_o
);

  // ---- parameter checks ----------------------------------------------------------------------
  if (Bits < 1 || Bits > 64) begin : gen_check_bits
    `NUQ_ELAB_FATAL((1, "maxpool_stream: Bits=%0d must lie in 1..64", Bits))
  end
  if (Channels < 1 || Channels > 4096) begin : gen_check_channels
    `NUQ_ELAB_FATAL((1, "maxpool_stream: Channels=%0d must lie in 1..4096", Channels))
  end
  if (Kernel < 1 || Kernel > 7) begin : gen_check_kernel
    `NUQ_ELAB_FATAL((1, "maxpool_stream: Kernel=%0d must lie in 1..7", Kernel))
  end
  if (Stride < 1 || Stride > 8) begin : gen_check_stride
    `NUQ_ELAB_FATAL((1, "maxpool_stream: Stride=%0d must lie in 1..8", Stride))
  end
  if (InH < Kernel || InH > 4096) begin : gen_check_inh
    `NUQ_ELAB_FATAL((1, "maxpool_stream: InH=%0d must lie in Kernel..4096 (Kernel=%0d)", InH,
                     Kernel))
  end
  if (InW < Kernel || InW > 4096) begin : gen_check_inw
    `NUQ_ELAB_FATAL((1, "maxpool_stream: InW=%0d must lie in Kernel..4096 (Kernel=%0d)", InW,
                     Kernel))
  end
  if ((Kernel - 1) * PixW > 4096) begin : gen_check_lsw
    `NUQ_ELAB_FATAL((1, "maxpool_stream: (Kernel-1)*Channels*Bits=%0d must be <= 4096",
                     (Kernel - 1) * PixW))
  end
  if (UseRam && OutW < 2) begin : gen_check_useram
    `NUQ_ELAB_FATAL((1, "maxpool_stream: UseRam=1 needs OutW=%0d >= 2", OutW))
  end

  // ---- geometry ------------------------------------------------------------------------------
  localparam int K      = (Kernel >= 1) ? Kernel : 1;
  localparam int S      = (Stride >= 1) ? Stride : 1;
  localparam int XW     = (InW > 1) ? $clog2(InW) : 1;
  localparam int YW     = (InH > 1) ? $clog2(InH) : 1;
  localparam int OW     = (OutW > 1) ? $clog2(OutW) : 1;

  // Element-wise maximum of two pixels.
  function automatic logic [PixW-1:0] pix_max(logic [PixW-1:0] a, logic [PixW-1:0] b);
    logic [PixW-1:0] m;
    for (int c = 0; c < Channels; c++) begin
      if (Signed) begin
        m[c*Bits +: Bits] = ($signed(a[c*Bits +: Bits]) > $signed(b[c*Bits +: Bits])) ?
                            a[c*Bits +: Bits] : b[c*Bits +: Bits];
      end else begin
        m[c*Bits +: Bits] = (a[c*Bits +: Bits] > b[c*Bits +: Bits]) ?
                            a[c*Bits +: Bits] : b[c*Bits +: Bits];
      end
    end
    return m;
  endfunction

  // ---- position counters ---------------------------------------------------------------------
  // Only the window flags of the scan are needed here (ox counts the window columns).
  logic [XW-1:0] unused_x, unused_x_next;
  logic [YW-1:0] unused_y;
  logic [OW-1:0] ox_q, ox_next;
  logic          hend, vend, take, valid_q;
  logic [PixW-1:0] hmax, vmax, data_q;

  window_scan #(
    .Cols  (InW),
    .Rows  (InH),
    .Kernel(K),
    .Stride(S)
  ) u_scan (
    .clk_i,
    .rst_ni,
    .step_i   (take),
    .x_o      (unused_x),
    .x_next_o (unused_x_next),
    .y_o      (unused_y),
    .col_end_o(hend),
    .row_end_o(vend)
  );

  assign in_ready_o  = ~(hend & vend) | ~valid_q | out_ready_i;
  assign take        = in_valid_i & in_ready_o;
  assign out_valid_o = valid_q;
  assign out_data_o  = data_q;
  assign ox_next     = (32'(ox_q) == OutW - 1) ? '0 : ox_q + OW'(1);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      ox_q    <= '0;
      valid_q <= 1'b0;
    end else begin
      if (take && hend) ox_q <= ox_next;
      if (take && hend && vend) begin
        valid_q <= 1'b1;
      end else if (out_ready_i) begin
        valid_q <= 1'b0;
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (take && hend && vend) data_q <= vmax;
  end

  // ---- horizontal: the last K-1 pixels of the row --------------------------------------------
  if (K == 1) begin : gen_no_row
    assign hmax = in_data_i;
    assign vmax = hmax;
  end else begin : gen_rows
    localparam int LsW = (K - 1) * PixW;
    logic [LsW-1:0] row_q;  // pixel x-K+1+j at [j*PixW +: PixW]
    logic [LsW-1:0] ls_rd, ls_wr;  // line store word: slot j = hmax of row y-1-j

    always_comb begin
      hmax = in_data_i;
      for (int j = 0; j < K - 1; j++) hmax = pix_max(hmax, row_q[j*PixW +: PixW]);
      vmax = hmax;
      for (int j = 0; j < K - 1; j++) vmax = pix_max(vmax, ls_rd[j*PixW +: PixW]);
    end

    if (K == 2) begin : gen_row1
      always_ff @(posedge clk_i) begin
        if (take) row_q <= in_data_i;
      end
      assign ls_wr = hmax;
    end else begin : gen_rown
      always_ff @(posedge clk_i) begin
        if (take) row_q <= {in_data_i, row_q[LsW-1:PixW]};
      end
      assign ls_wr = {ls_rd[(K-2)*PixW-1:0], hmax};
    end

    // ---- vertical: line store of OutW words, read one window column ahead ------------------
    logic ls_we;
    assign ls_we = take & hend;

    if (UseRam) begin : gen_ram
      ram_sdp #(
        .Width(LsW),
        .Depth(OutW)
      ) u_line_store (
        .clk_i,
        .we_i   (ls_we),
        .waddr_i(ox_q),
        .wdata_i(ls_wr),
        .re_i   (ls_we),
        .raddr_i(ox_next),
        .rdata_o(ls_rd)
      );
    end else begin : gen_ff
      logic [LsW-1:0] mem_q [OutW];
      logic [LsW-1:0] rd_q;
      always_ff @(posedge clk_i) begin
        if (ls_we) begin
          mem_q[ox_q] <= ls_wr;
          // Write-first: with OutW = 1 the next read is of the word written now.
          rd_q <= (ox_next == ox_q) ? ls_wr : mem_q[ox_next];
        end
      end
      assign ls_rd = rd_q;
    end
  end

endmodule
