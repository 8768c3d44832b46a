// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Sliding-window generator of the dataflow engine: pixel stream in, window stream out.
//   in:  one beat = one pixel of an (InH, InW, Channels) map in raster order, channel c at
//        bits [c*Bits +: Bits]; images follow each other with no gap and no marker.
//   out: one beat = the Kernel x Kernel x Channels window of one output pixel, element
//        e = (ky*Kernel + kx)*Channels + c at bits [e*Bits +: Bits], exactly the row of
//        golden.ops.im2col(a, Kernel, Stride, Pad); windows in raster order of the OutH x OutW
//        output pixels (OutH/OutW as golden.ops.conv_out_size); zeros outside the image.
//
// How: a scan walks the zero-padded image (InH + 2 Pad) x (InW + 2 Pad) in raster order, one
// position per step. A position inside the image takes one input pixel (the step waits for
// it); a padding position takes none and uses 0. Each step shifts one column of Kernel pixels
// into the Kernel x Kernel window register: the current pixel at the bottom, above it the
// pixels of the Kernel-1 previous (padded) rows at the same column, read from the line buffer.
// The line buffer is ONE rtl/ram_sdp.sv of InW + 2 Pad words of (Kernel-1) pixels (slot j =
// row y-1-j): each step reads the word of the next column (prefetch, 1-cycle read latency)
// and writes back, at the current column, the word shifted by one slot with the current pixel
// in slot 0. The read address (next column) never equals the write address (current column),
// since Kernel >= 2 implies InW + 2 Pad >= 2. A step emits the window when the window's
// bottom-right corner sits on an output position (rtl/window_scan.sv: stride phase counters,
// no multiplies).
// Rows and columns of the remainder (beyond the last window) are consumed, not emitted;
// Stride > Kernel works the same way.
//
// Latency 1 (the window of a step is on out_data_o right after the step's edge). Throughput:
// one step per cycle while the consumer keeps up, i.e. (InH + 2 Pad)(InW + 2 Pad) cycles per
// image for InH*InW input pixels (one per cycle at in-image positions; padding positions cost
// a cycle each) and OutH*OutW windows (at most one per cycle). The window register is the
// output register: while a window waits for out_ready_i, the scan (and the input) stalls.
// in_ready_o depends combinationally on out_ready_i (as in rtl/stream_reg.sv).
// Storage: Kernel*Kernel*Channels*Bits flip-flops (window) + a ram_sdp of
// (InW + 2 Pad) x (Kernel-1)*Channels*Bits bits (none for Kernel = 1) + counters.
// Reset (asynchronous) restarts the scan at the first position of an image; windows in flight
// are dropped; the line buffer needs no clearing (rows of an earlier image never reach an
// emitted window: a window uses only rows of the image being scanned).
`include "nuq_assert.svh"

module sliding_window #(
  /// Bits per element (activation code width); 1..32.
  parameter int Bits     = 4,
  /// Channels per pixel; 1..4096.
  parameter int Channels = 1,
  /// Image height in pixels; 1..4096.
  parameter int InH      = 8,
  /// Image width in pixels; 1..4096.
  parameter int InW      = 8,
  /// Window side K (K x K window); 1..7, at most InH + 2 Pad and InW + 2 Pad.
  parameter int Kernel   = 3,
  /// Stride in both directions; 1..8 (may exceed Kernel).
  parameter int Stride   = 1,
  /// Zero padding on each side; 0..Kernel-1.
  parameter int Pad      = 1,
  /// Pixel width Channels*Bits (derived; do not override).
  parameter int PixW     = Channels * Bits,
  /// Window width Kernel*Kernel*Channels*Bits (derived; do not override).
  parameter int WinW     = Kernel * Kernel * PixW
) (
  /// Clock, rising edge.
  input  logic            clk_i,
  /// Asynchronous active-low reset: restarts the scan at the top of an image.
  input  logic            rst_ni,
  /// Input pixel valid.
  input  logic            in_valid_i,
  /// Input pixel accepted (the scan is at an in-image position and can step).
  output logic            in_ready_o,
  /// Input pixel, channel c at bits [c*Bits +: Bits].
  input  logic [PixW-1:0] in_data_i,
  /// Output window valid.
  output logic            out_valid_o,
  /// Downstream ready.
  input  logic            out_ready_i,
  /// Output window, element (ky*Kernel + kx)*Channels + c at bits [e*Bits +: Bits].
  output logic [WinW-1:0] out_data_o
);

  // ---- parameter checks ----------------------------------------------------------------------
  if (Bits < 1 || Bits > 32) begin : gen_check_bits
    `NUQ_ELAB_FATAL((1, "sliding_window: Bits=%0d must lie in 1..32", Bits))
  end
  if (Channels < 1 || Channels > 4096) begin : gen_check_channels
    `NUQ_ELAB_FATAL((1, "sliding_window: Channels=%0d must lie in 1..4096", Channels))
  end
  if (InH < 1 || InH > 4096) begin : gen_check_inh
    `NUQ_ELAB_FATAL((1, "sliding_window: InH=%0d must lie in 1..4096", InH))
  end
  if (InW < 1 || InW > 4096) begin : gen_check_inw
    `NUQ_ELAB_FATAL((1, "sliding_window: InW=%0d must lie in 1..4096", InW))
  end
  if (Kernel < 1 || Kernel > 7) begin : gen_check_kernel
    `NUQ_ELAB_FATAL((1, "sliding_window: Kernel=%0d must lie in 1..7", Kernel))
  end
  if (Stride < 1 || Stride > 8) begin : gen_check_stride
    `NUQ_ELAB_FATAL((1, "sliding_window: Stride=%0d must lie in 1..8", Stride))
  end
  if (Pad < 0 || Pad >= Kernel) begin : gen_check_pad
    `NUQ_ELAB_FATAL((1, "sliding_window: Pad=%0d must lie in 0..Kernel-1 (Kernel=%0d)", Pad,
                     Kernel))
  end
  if (Kernel > InH + 2 * Pad || Kernel > InW + 2 * Pad) begin : gen_check_fit
    `NUQ_ELAB_FATAL((1, "sliding_window: Kernel=%0d does not fit the padded %0dx%0d image",
                     Kernel, InH + 2 * Pad, InW + 2 * Pad))
  end
  if ((Kernel - 1) * PixW > 4096) begin : gen_check_lbw
    `NUQ_ELAB_FATAL((1, "sliding_window: (Kernel-1)*Channels*Bits=%0d must be <= 4096",
                     (Kernel - 1) * PixW))
  end

  // ---- geometry (elaboration-time constants) -------------------------------------------------
  localparam int K    = (Kernel >= 1) ? Kernel : 1;
  localparam int S    = (Stride >= 1) ? Stride : 1;
  localparam int PadH = InH + 2 * Pad;
  localparam int PadW = InW + 2 * Pad;
  localparam int XW   = (PadW > 1) ? $clog2(PadW) : 1;
  localparam int YW   = (PadH > 1) ? $clog2(PadH) : 1;

  // ---- scan state ----------------------------------------------------------------------------
  logic [XW-1:0] x_q, x_next;
  logic [YW-1:0] y_q;
  logic          col_end, row_end, valid_q;
  logic          in_img, emit, room, step;
  logic [PixW-1:0] pix;

  window_scan #(
    .Cols  (PadW),
    .Rows  (PadH),
    .Kernel(K),
    .Stride(S)
  ) u_scan (
    .clk_i,
    .rst_ni,
    .step_i   (step),
    .x_o      (x_q),
    .x_next_o (x_next),
    .y_o      (y_q),
    .col_end_o(col_end),
    .row_end_o(row_end)
  );

  // Comparisons of the position with constants; some are always true for some parameter sets
  // (e.g. x >= Pad with Pad = 0), which is intended.
  /* verilator lint_off UNSIGNED */
  /* verilator lint_off CMPCONST */
  assign in_img = (32'(y_q) >= Pad) && (32'(y_q) < Pad + InH) &&
                  (32'(x_q) >= Pad) && (32'(x_q) < Pad + InW);
  /* verilator lint_on CMPCONST */
  /* verilator lint_on UNSIGNED */
  assign emit   = col_end & row_end;
  assign room   = ~valid_q | out_ready_i;
  assign step   = room & (~in_img | in_valid_i);
  assign in_ready_o  = room & in_img;
  assign out_valid_o = valid_q;
  assign pix    = in_img ? in_data_i : '0;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_q <= 1'b0;
    end else if (step) begin
      valid_q <= emit;
    end else if (out_ready_i) begin
      valid_q <= 1'b0;
    end
  end

  // ---- column of K pixels entering the window: line buffer rows above, current pixel below ---
  logic [K*PixW-1:0] column;  // pixel ky at [ky*PixW +: PixW], ky = 0 the top row

  if (K == 1) begin : gen_no_lb
    logic unused_x_next;  // no line buffer to prefetch from
    assign unused_x_next = ^x_next;
    assign column = pix;
  end else begin : gen_lb
    localparam int LbW = (K - 1) * PixW;
    logic [LbW-1:0] lb_rd, lb_wr;

    // Slot j of a word = the pixel of row y-1-j; written back shifted by one slot.
    if (K == 2) begin : gen_wr1
      assign lb_wr = pix;
    end else begin : gen_wrn
      assign lb_wr = {lb_rd[(K-2)*PixW-1:0], pix};
    end
    for (genvar ky = 0; ky < K - 1; ky++) begin : gen_col
      assign column[ky*PixW +: PixW] = lb_rd[(K-2-ky)*PixW +: PixW];
    end
    assign column[(K-1)*PixW +: PixW] = pix;

    ram_sdp #(
      .Width(LbW),
      .Depth(PadW)
    ) u_line_buffer (
      .clk_i,
      .we_i   (step),
      .waddr_i(x_q),
      .wdata_i(lb_wr),
      .re_i   (step),
      .raddr_i(x_next),
      .rdata_o(lb_rd)
    );
  end

  // ---- window register: shift left by one column, the new column enters at kx = K-1 ---------
  logic [WinW-1:0] win_q, win_d;

  always_comb begin
    win_d = win_q;
    for (int ky = 0; ky < K; ky++) begin
      for (int kx = 0; kx < K - 1; kx++) begin
        win_d[(ky*K+kx)*PixW +: PixW] = win_q[(ky*K+kx+1)*PixW +: PixW];
      end
      win_d[(ky*K+K-1)*PixW +: PixW] = column[ky*PixW +: PixW];
    end
  end

  always_ff @(posedge clk_i) begin
    if (step) win_q <= win_d;
  end

  assign out_data_o = win_q;

endmodule
