// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Raster position counters of a Kernel x Kernel window scan at Stride (shared by
// sliding_window and maxpool_stream): x (column) and y (row) of the current position in a
// Cols x Rows map, advanced by one position per step_i, wrapping to (0, 0) after the last
// position (images back to back), and two flags from stride phase counters (no multiplies):
//   col_end_o: a window's last column is x, i.e. x = Kernel-1 + ox*Stride for an ox in
//              0..OutW-1 with OutW = (Cols - Kernel) / Stride + 1 (floor mode);
//   row_end_o: the same for y and the rows.
// Latency 0 (outputs are the registered position and decodes of it), one step per cycle,
// storage: the x, y counters and two phase counters of $clog2(Stride) bits.
`include "nuq_assert.svh"

module window_scan #(
  /// Positions per row; Kernel..65536.
  parameter int Cols   = 8,
  /// Rows per map; Kernel..65536.
  parameter int Rows   = 8,
  /// Window side; 1..16.
  parameter int Kernel = 3,
  /// Window stride; 1..16.
  parameter int Stride = 1,
  /// Width of x_o, max(1, $clog2(Cols)) (derived; do not override).
  parameter int XWidth = (Cols > 1) ? $clog2(Cols) : 1,
  /// Width of y_o, max(1, $clog2(Rows)) (derived; do not override).
  parameter int YWidth = (Rows > 1) ? $clog2(Rows) : 1
) (
  /// Clock, rising edge.
  input  logic              clk_i,
  /// Asynchronous active-low reset: position (0, 0).
  input  logic              rst_ni,
  /// Advance to the next position at this edge.
  input  logic              step_i,
  /// Current column, 0..Cols-1.
  output logic [XWidth-1:0] x_o,
  /// Column of the next position, 0..Cols-1.
  output logic [XWidth-1:0] x_next_o,
  /// Current row, 0..Rows-1.
  output logic [YWidth-1:0] y_o,
  /// x is the last column of a window.
  output logic              col_end_o,
  /// y is the last row of a window.
  output logic              row_end_o
);

  if (Kernel < 1 || Kernel > 16) begin : gen_check_kernel
    `NUQ_ELAB_FATAL((1, "window_scan: Kernel=%0d must lie in 1..16", Kernel))
  end
  if (Stride < 1 || Stride > 16) begin : gen_check_stride
    `NUQ_ELAB_FATAL((1, "window_scan: Stride=%0d must lie in 1..16", Stride))
  end
  if (Cols < Kernel || Cols > 65536) begin : gen_check_cols
    `NUQ_ELAB_FATAL((1, "window_scan: Cols=%0d must lie in Kernel..65536", Cols))
  end
  if (Rows < Kernel || Rows > 65536) begin : gen_check_rows
    `NUQ_ELAB_FATAL((1, "window_scan: Rows=%0d must lie in Kernel..65536", Rows))
  end

  localparam int K      = (Kernel >= 1) ? Kernel : 1;
  localparam int S      = (Stride >= 1) ? Stride : 1;
  localparam int OutW   = (Cols >= K) ? (Cols - K) / S + 1 : 1;
  localparam int OutH   = (Rows >= K) ? (Rows - K) / S + 1 : 1;
  localparam int LastX  = K - 1 + (OutW - 1) * S;
  localparam int LastY  = K - 1 + (OutH - 1) * S;
  localparam int SW     = (S > 1) ? $clog2(S) : 1;
  // Stride phase at column / row 0, chosen so that phase 0 falls on column / row K-1.
  localparam int Phase0 = (S - (K - 1) % S) % S;

  logic [XWidth-1:0] x_q;
  logic [YWidth-1:0] y_q;
  logic [SW-1:0]     sx_q, sy_q;
  logic              x_last, y_last;

  assign x_last   = (32'(x_q) == Cols - 1);
  assign y_last   = (32'(y_q) == Rows - 1);
  assign x_o      = x_q;
  assign y_o      = y_q;
  assign x_next_o = x_last ? '0 : x_q + XWidth'(1);
  // Some of these comparisons are constant for some parameter sets (x >= 0 with Kernel = 1).
  /* verilator lint_off UNSIGNED */
  /* verilator lint_off CMPCONST */
  assign col_end_o = (32'(x_q) >= K - 1) && (32'(x_q) <= LastX) && (sx_q == '0);
  assign row_end_o = (32'(y_q) >= K - 1) && (32'(y_q) <= LastY) && (sy_q == '0);
  /* verilator lint_on CMPCONST */
  /* verilator lint_on UNSIGNED */

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      x_q  <= '0;
      y_q  <= '0;
      sx_q <= SW'(Phase0);
      sy_q <= SW'(Phase0);
    end else if (step_i) begin
      x_q  <= x_next_o;
      sx_q <= x_last ? SW'(Phase0) : (32'(sx_q) == S - 1) ? '0 : sx_q + SW'(1);
      if (x_last) begin
        y_q  <= y_last ? '0 : y_q + YWidth'(1);
        sy_q <= y_last ? SW'(Phase0) : (32'(sy_q) == S - 1) ? '0 : sy_q + SW'(1);
      end
    end
  end

endmodule
