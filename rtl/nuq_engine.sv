// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Layer-serial whole-network engine: one Pe x Simd mac_array reused layer after layer, the
// activation blocks (threshold_quant, log2_act, shift_quant) and residual_add instantiated once
// (one residual_add per distinct saturation width), all driven by a generated pass-descriptor
// ROM (hwgen/engine_image.py writes every memory image and the parameters from an export).
//
// Passes (descriptor field "op"): LOAD pixels -> data memory; MAC conv2d/dense (optionally
// fused with one quantizer) -> data memory; ACT, ADD, POOL on stored tensors; OUT logits ->
// output stream (with argmax, lowest index on ties). After the last pass the engine starts over
// with the next image; no reset is needed between images.
//
// Hardware (docs/engine.md): every memory is a ram_sdp (one write port, one synchronous read
// port). Data memory (data_mem): Banks banks of AccWidth-bit words, one value per word, tensors
// in (H, W, C) order, flat address a in bank a mod Banks; every access is a run of contiguous
// addresses (Simd im2col elements of one kernel row for a MAC beat, Pe channels of one pixel
// otherwise, the two operands of an ADD in complementary bank halves), so each bank serves one
// lane per cycle. ROMs: descriptor (prefetched for the next pass while the current one runs,
// two 32-bit fields a word), kernel table, weights, biases. Addresses come from counters that
// add descriptor steps (no multiplier). A MAC dot product is ceil(K*Cin/Simd) beats per kernel
// row; the kernel table gives each lane (valid, dx) for the padding test. One beat per cycle,
// back to back across dot products, channel groups and pixels; between passes the pipeline
// drains. Beats carry {group, lanes, address} as user bits through the blocks to the writer.
`include "nuq_assert.svh"

module nuq_engine #(
  /// Processing elements (output channels per dot product); 1..64.
  parameter int Pe           = 4,
  /// Activation lanes per MAC beat; 1..64.
  parameter int Simd         = 4,
  /// Activation code width fed to the MAC array (max of input and activation bits); 1..16.
  parameter int CodeBits     = 4,
  /// Activation quantizer output width (largest a_bits of the model); 1..8.
  parameter int ActBits      = 2,
  /// Weight code width in bits (largest w_bits; narrower layers sign-extended); 2..16.
  parameter int WBits        = 3,
  /// Accumulator and data-memory word width in bits, signed; mac_array bound..62.
  parameter int AccWidth     = 24,
  /// Bias width in bits, signed; 2..32.
  parameter int BiasWidth    = 8,
  /// Largest number of MAC beats in one dot product; 1..65536.
  parameter int MaxBeats     = 16,
  /// Data-memory banks: a power of two >= max(Simd, 2*Pe, InC); 2..128.
  parameter int Banks        = 8,
  /// Words per data-memory bank; 2..2^20.
  parameter int BankDepth    = 128,
  /// Number of passes in the descriptor ROM (16 words of 64 bits each); 2..4096.
  parameter int NumPasses    = 2,
  /// Weight ROM depth in words of Pe*Simd*WBits bits; >= 1.
  parameter int WgtDepth     = 1,
  /// Kernel-table ROM depth in words of Simd*9 bits; >= 1.
  parameter int TabDepth     = 1,
  /// Bias ROM depth in words of Pe*BiasWidth bits; >= 1.
  parameter int BiasDepth    = 1,
  /// Threshold channels (a multiple of Pe); >= Pe.
  parameter int ThrChannels  = 4,
  /// Input image height in pixels; >= 1.
  parameter int InH          = 2,
  /// Input image width in pixels; >= 1.
  parameter int InW          = 2,
  /// Input channels per pixel (one pixel per input beat); 1..Banks.
  parameter int InC          = 1,
  /// Input pixel width in bits, unsigned; 1..CodeBits.
  parameter int InBits       = 4,
  /// Number of logits (values of the output tensor); 1..1024.
  parameter int NumLogits    = 2,
  /// Threshold quantizer implementation: 0 = parallel comparators, 1 = binary search.
  parameter int BinarySearch = 0,
  /// Number of residual_add instances (distinct saturation widths); 1..4.
  parameter int NumAddWidths = 1,
  /// Saturation width of residual_add instance i at bits [8*i +: 8]; each 2..62.
  parameter logic [8*NumAddWidths-1:0] AddWidths = 8'd16,
  /// Descriptor ROM image ($readmemh, 64-bit words); "" leaves it empty (lint only).
  parameter      DescFile     = "",
  /// Weight ROM image ($readmemh).
  parameter      WgtFile      = "",
  /// Bias ROM image ($readmemh).
  parameter      BiasFile     = "",
  /// Kernel-table ROM image ($readmemh).
  parameter      TabFile      = "",
  /// Threshold image for threshold_quant's InitFile (channel-major, AccWidth bits a line).
  parameter      ThrFile      = "",
  /// Width of out_class_o (derived; do not override).
  parameter int ClsWidth     = (NumLogits > 1) ? $clog2(NumLogits) : 1
) (
  /// Clock, rising edge.
  input  logic                          clk_i,
  /// Asynchronous active-low reset; drops the image in flight, restarts at the LOAD pass.
  input  logic                          rst_ni,
  /// Input pixel valid.
  input  logic                          in_valid_i,
  /// Input pixel accepted when in_valid_i && in_ready_o (high only during a LOAD pass).
  output logic                          in_ready_o,
  /// One pixel, raster order (row-major): channel c at [c*InBits +: InBits], unsigned.
  input  logic [InC*InBits-1:0]         in_data_i,
  /// Logits valid (one beat per image).
  output logic                          out_valid_o,
  /// Downstream ready (back-pressure when low).
  input  logic                          out_ready_i,
  /// NumLogits signed logits, logit i at [i*AccWidth +: AccWidth].
  output logic [NumLogits*AccWidth-1:0] out_data_o,
  /// Index of the largest logit (lowest index on ties), 0..NumLogits-1.
  output logic [ClsWidth-1:0]           out_class_o
);

  // ---- parameter checks ----------------------------------------------------------------------
  if (Pe < 1 || Pe > 64 || Simd < 1 || Simd > 64) begin : gen_check_array
    `NUQ_ELAB_FATAL((1, "nuq_engine: Pe=%0d and Simd=%0d must lie in 1..64", Pe, Simd))
  end
  if (ActBits < 1 || ActBits > 8 || CodeBits < ActBits || CodeBits > 16) begin : gen_check_bits
    `NUQ_ELAB_FATAL((1, "nuq_engine: ActBits=%0d must lie in 1..8, CodeBits=%0d in ActBits..16",
                     ActBits, CodeBits))
  end
  if (InBits < 1 || InBits > CodeBits || InC < 1 || InC > Banks) begin : gen_check_in
    `NUQ_ELAB_FATAL((1, "nuq_engine: InBits=%0d must lie in 1..CodeBits, InC=%0d in 1..Banks",
                     InBits, InC))
  end
  if (Banks < Simd || Banks < 2 * Pe || (1 << $clog2(Banks)) != Banks) begin : gen_check_banks
    `NUQ_ELAB_FATAL((1, "nuq_engine: Banks=%0d must be a power of two >= Simd=%0d and 2*Pe=%0d",
                     Banks, Simd, 2 * Pe))
  end
  if (NumPasses < 2 || NumPasses > 4096) begin : gen_check_passes
    `NUQ_ELAB_FATAL((1, "nuq_engine: NumPasses=%0d must lie in 2..4096", NumPasses))
  end
  if (ThrChannels < Pe || (ThrChannels % Pe) != 0) begin : gen_check_thr
    `NUQ_ELAB_FATAL((1, "nuq_engine: ThrChannels=%0d must be a positive multiple of Pe=%0d",
                     ThrChannels, Pe))
  end
  if (NumAddWidths < 1 || NumAddWidths > 4) begin : gen_check_add
    `NUQ_ELAB_FATAL((1, "nuq_engine: NumAddWidths=%0d must lie in 1..4", NumAddWidths))
  end
  if (InH < 1 || InW < 1 || NumLogits < 1 || NumLogits > 1024) begin : gen_check_shape
    `NUQ_ELAB_FATAL((1, "nuq_engine: InH=%0d, InW=%0d, NumLogits=%0d out of range", InH, InW,
                     NumLogits))
  end
  if (AccWidth <= CodeBits + 1 || AccWidth > 62) begin : gen_check_acc
    `NUQ_ELAB_FATAL((1, "nuq_engine: AccWidth=%0d must lie in CodeBits+2..62", AccWidth))
  end

  // ---- constants -----------------------------------------------------------------------------
  localparam logic [2:0] OpLoad = 3'd0, OpMac = 3'd1, OpAct = 3'd2, OpAdd = 3'd3;
  localparam logic [2:0] OpPool = 3'd4, OpOut = 3'd5;
  localparam logic [1:0] ActNone = 2'd0, ActThr = 2'd1, ActLog2 = 2'd2, ActShift = 2'd3;
  localparam int AddrWidth  = $clog2(Banks) + $clog2(BankDepth);  // flat data address
  localparam int LaneW      = $clog2(Banks + 1);
  localparam int ThrGroups  = ThrChannels / Pe;
  localparam int GroupWidth = (ThrGroups > 1) ? $clog2(ThrGroups) : 1;
  localparam int UserWidth  = GroupWidth + LaneW + AddrWidth;
  localparam int PassW      = $clog2(NumPasses);
  localparam int DescWords  = 16;            // 64-bit words per pass: two 32-bit fields each
  localparam int NumFields  = 2 * DescWords;
  localparam int ShiftWidth = $clog2(AccWidth);
  localparam int OffWidth   = $clog2(AccWidth) + 1;
  localparam int CntW       = 24;            // loop counters
  localparam int DimW       = 18;            // signed window coordinates
  localparam int TabLaneW   = 9;             // kernel-table lane: {valid, dx[7:0]}
  localparam int WgtAw      = (WgtDepth > 1) ? $clog2(WgtDepth) : 1;
  localparam int TabAw      = (TabDepth > 1) ? $clog2(TabDepth) : 1;
  localparam int BiasAw     = (BiasDepth > 1) ? $clog2(BiasDepth) : 1;
  // Without a threshold image (lint, no threshold layer) the table is writable and stays unused.
  // With the binary search the thresholds are written once after reset from a ROM (ram_sdp,
  // ThrFile) through the write port into threshold_quant's per-stage memories, which map to LUT
  // RAM / block RAM; a ROM read by every stage at a run-time address would become logic.
  localparam int ThrChanW   = (ThrChannels > 1) ? $clog2(ThrChannels) : 1;
  localparam int ThrBoot    = (BinarySearch == 1 && ThrFile != "") ? 1 : 0;
  localparam int ThrWritable = (ThrFile == "" || ThrBoot == 1) ? 1 : 0;
  localparam int NumThr     = (1 << ActBits) - 1;
  localparam int ThrWords   = ThrChannels * NumThr;
  localparam int ThrAw      = (ThrWords > 1) ? $clog2(ThrWords) : 1;
  // Descriptor field indices (hwgen.engine_image.FIELDS, same order).
  localparam int FOp = 0, FAct = 1, FActParam = 2, FCodeMax = 3, FThrGroup = 4, FOutH = 5;
  localparam int FOutW = 6, FOutC = 7, FGroups = 8, FRows = 9, FInner = 10, FInH = 11;
  localparam int FInW = 12, FWinY0 = 13, FWinX0 = 14, FStride = 15, FOrg0 = 16, FOxStep = 17;
  localparam int FOyStep = 18, FRowStep = 19, FInStep = 20, FGStep = 21, FSrc2Off = 22;
  localparam int FDst = 23, FPxStep = 24, FTab = 25, FWgt = 26, FBias = 27, FMShift = 28;
  localparam int FRShift = 29, FAddSel = 30, FWrites = 31;

  // ---- descriptor prefetch: the next pass's 16 words, one per cycle, into a shadow ----------
  logic [PassW-1:0]        pass_q, pf_pass_q;
  logic [4:0]              pf_idx_q;    // next word to request, 0..DescWords
  logic                    pf_got_q;    // a word requested in the previous cycle arrives now
  logic [3:0]              pf_widx_q;   // its index
  logic [63:0]             desc_word;
  logic [32*NumFields-1:0] sh_q;        // shadow descriptor of the next pass
  logic                    pf_done, act_valid_q, pass_done, sw;

  // a small sparse ROM (most field bits are 0): LUTs rather than whole block RAMs
  ram_sdp #(
    .Width   (64),
    .Depth   (NumPasses * DescWords),
    .InitFile(DescFile),
    .Logic   (1)
  ) u_desc (
    .clk_i,
    .we_i   (1'b0),
    .waddr_i('0),
    .wdata_i('0),
    .re_i   (pf_idx_q < 5'(DescWords)),
    .raddr_i({pf_pass_q, pf_idx_q[3:0]}),
    .rdata_o(desc_word)
  );

  assign pf_done = (pf_idx_q == 5'(DescWords)) && !pf_got_q;
  assign sw      = pf_done && (!act_valid_q || pass_done);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      pf_pass_q   <= '0;
      pf_idx_q    <= '0;
      pf_got_q    <= 1'b0;
      pf_widx_q   <= '0;
      sh_q        <= '0;
      pass_q      <= '0;
      act_valid_q <= 1'b0;
    end else begin
      pf_got_q  <= pf_idx_q < 5'(DescWords);
      pf_widx_q <= pf_idx_q[3:0];
      for (int i = 0; i < DescWords; i++) begin
        if (pf_got_q && pf_widx_q == 4'(i)) sh_q[64*i +: 64] <= desc_word;
      end
      if (sw) begin
        pass_q      <= pf_pass_q;
        act_valid_q <= 1'b1;
        pf_pass_q   <= (32'(pf_pass_q) == NumPasses - 1) ? '0 : pf_pass_q + 1'b1;
        pf_idx_q    <= '0;
      end else if (pf_idx_q < 5'(DescWords)) begin
        pf_idx_q <= pf_idx_q + 1'b1;
      end
    end
  end

  function automatic logic [31:0] fld(logic [32*NumFields-1:0] d, int i);
    return d[32*i +: 32];
  endfunction

  // Active descriptor fields (loaded from the shadow when the pass starts), at their widths.
  logic [2:0]            d_op;
  logic [1:0]            d_act, d_add_sel;
  logic [OffWidth-1:0]   d_act_param;
  logic [ActBits-1:0]    d_code_max;
  logic [4:0]            d_m_shift, d_r_shift;
  logic [CntW-1:0]       d_out_h, d_out_w, d_out_c, d_groups, d_rows, d_inner, d_writes;
  logic [DimW-1:0]       d_in_h, d_in_w, d_win_x0, d_stride;
  logic [AddrWidth-1:0]  d_ox_step, d_oy_step, d_row_step, d_in_step, d_g_step, d_src2_off;
  logic [AddrWidth-1:0]  d_px_step;
  logic [TabAw-1:0]      d_tab;
  logic [WgtAw-1:0]      d_wgt;
  logic [BiasAw-1:0]     d_bias;
  logic [GroupWidth-1:0] d_thr_group;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      {d_op, d_act, d_add_sel, d_act_param, d_code_max, d_m_shift, d_r_shift} <= '0;
      {d_out_h, d_out_w, d_out_c, d_groups, d_rows, d_inner, d_writes} <= '0;
      {d_in_h, d_in_w, d_win_x0, d_stride} <= '0;
      {d_ox_step, d_oy_step, d_row_step, d_in_step, d_g_step, d_src2_off, d_px_step} <= '0;
      {d_tab, d_wgt, d_bias, d_thr_group} <= '0;
    end else if (sw) begin
      d_op        <= 3'(fld(sh_q, FOp));
      d_act       <= 2'(fld(sh_q, FAct));
      d_add_sel   <= 2'(fld(sh_q, FAddSel));
      d_act_param <= OffWidth'(fld(sh_q, FActParam));
      d_code_max  <= ActBits'(fld(sh_q, FCodeMax));
      d_m_shift   <= 5'(fld(sh_q, FMShift));
      d_r_shift   <= 5'(fld(sh_q, FRShift));
      d_out_h     <= CntW'(fld(sh_q, FOutH));
      d_out_w     <= CntW'(fld(sh_q, FOutW));
      d_out_c     <= CntW'(fld(sh_q, FOutC));
      d_groups    <= CntW'(fld(sh_q, FGroups));
      d_rows      <= CntW'(fld(sh_q, FRows));
      d_inner     <= CntW'(fld(sh_q, FInner));
      d_writes    <= CntW'(fld(sh_q, FWrites));
      d_in_h      <= DimW'(fld(sh_q, FInH));
      d_in_w      <= DimW'(fld(sh_q, FInW));
      d_win_x0    <= DimW'(fld(sh_q, FWinX0));
      d_stride    <= DimW'(fld(sh_q, FStride));
      d_ox_step   <= AddrWidth'(fld(sh_q, FOxStep));
      d_oy_step   <= AddrWidth'(fld(sh_q, FOyStep));
      d_row_step  <= AddrWidth'(fld(sh_q, FRowStep));
      d_in_step   <= AddrWidth'(fld(sh_q, FInStep));
      d_g_step    <= AddrWidth'(fld(sh_q, FGStep));
      d_src2_off  <= AddrWidth'(fld(sh_q, FSrc2Off));
      d_px_step   <= AddrWidth'(fld(sh_q, FPxStep));
      d_tab       <= TabAw'(fld(sh_q, FTab));
      d_wgt       <= WgtAw'(fld(sh_q, FWgt));
      d_bias      <= BiasAw'(fld(sh_q, FBias));
      d_thr_group <= GroupWidth'(fld(sh_q, FThrGroup));
    end
  end

  // writer side (driven by the writer below)
  logic                      wr_valid;
  logic [AddrWidth-1:0]      wr_addr;
  logic [LaneW-1:0]          wr_lanes;
  logic [Banks*AccWidth-1:0] wr_data;

  // ---- loop nest: (oy, ox), group g, kernel row ky, inner index (MAC segment / pool kx) ------
  // Every address is a counter that adds a descriptor step; nothing is multiplied.
  logic [CntW-1:0]      oy_q, ox_q, g_q, ky_q, in_q, wr_cnt_q, rem_q;
  logic [AddrWidth-1:0] org_row_q, org_q, grp_q, rrow_q, rd_q, wr_px_q, wr_q;
  logic [DimW-1:0]      win_y_q, win_x_q, iy_q;   // signed window coordinates
  logic [WgtAw-1:0]     wgt_q;
  logic [TabAw-1:0]     tab_q;
  logic [BiasAw-1:0]    bias_q;
  logic [GroupWidth-1:0] thr_q;
  logic                 issued_q;  // every beat of the pass has been issued
  logic last_in, last_row, last_g, last_x, last_y, last_dot, last_beat, step, running, row_ok;
  logic [LaneW-1:0]     nlanes;

  assign last_in   = in_q == d_inner - 1'b1;
  assign last_row  = ky_q == d_rows - 1'b1;
  assign last_g    = g_q == d_groups - 1'b1;
  assign last_x    = ox_q == d_out_w - 1'b1;
  assign last_y    = oy_q == d_out_h - 1'b1;
  assign last_dot  = last_in && last_row;
  assign last_beat = last_dot && last_g && last_x && last_y;
  assign nlanes    = (rem_q < CntW'(Pe)) ? LaneW'(rem_q) : LaneW'(Pe);
  assign row_ok    = !iy_q[DimW-1] && ($signed(iy_q) < $signed(d_in_h));

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      {oy_q, ox_q, g_q, ky_q, in_q, wr_cnt_q, rem_q} <= '0;
      {org_row_q, org_q, grp_q, rrow_q, rd_q, wr_px_q, wr_q} <= '0;
      {win_y_q, win_x_q, iy_q} <= '0;
      wgt_q    <= '0;
      tab_q    <= '0;
      bias_q   <= '0;
      thr_q    <= '0;
      issued_q <= 1'b1;
    end else if (sw) begin
      {oy_q, ox_q, g_q, ky_q, in_q, wr_cnt_q} <= '0;
      rem_q     <= CntW'(fld(sh_q, FOutC));
      org_row_q <= AddrWidth'(fld(sh_q, FOrg0));
      org_q     <= AddrWidth'(fld(sh_q, FOrg0));
      grp_q     <= AddrWidth'(fld(sh_q, FOrg0));
      rrow_q    <= AddrWidth'(fld(sh_q, FOrg0));
      rd_q      <= AddrWidth'(fld(sh_q, FOrg0));
      wr_px_q   <= AddrWidth'(fld(sh_q, FDst));
      wr_q      <= AddrWidth'(fld(sh_q, FDst));
      win_y_q   <= DimW'(fld(sh_q, FWinY0));
      iy_q      <= DimW'(fld(sh_q, FWinY0));
      win_x_q   <= DimW'(fld(sh_q, FWinX0));
      wgt_q     <= WgtAw'(fld(sh_q, FWgt));
      tab_q     <= TabAw'(fld(sh_q, FTab));
      bias_q    <= BiasAw'(fld(sh_q, FBias));
      thr_q     <= GroupWidth'(fld(sh_q, FThrGroup));
      issued_q  <= 1'b0;
    end else begin
      if (wr_valid) wr_cnt_q <= wr_cnt_q + 1'b1;
      if (step) begin
        if (last_beat) issued_q <= 1'b1;
        wgt_q <= (last_dot && last_g) ? d_wgt : wgt_q + 1'b1;
        if (!last_in) begin                       // next segment / pool column
          in_q  <= in_q + 1'b1;
          rd_q  <= rd_q + d_in_step;
          tab_q <= tab_q + 1'b1;
        end else if (!last_row) begin             // next kernel row
          in_q   <= '0;
          ky_q   <= ky_q + 1'b1;
          rrow_q <= rrow_q + d_row_step;
          rd_q   <= rrow_q + d_row_step;
          iy_q   <= iy_q + 1'b1;
          tab_q  <= d_tab;
        end else if (!last_g) begin               // next channel group, same window
          in_q   <= '0;
          ky_q   <= '0;
          g_q    <= g_q + 1'b1;
          grp_q  <= grp_q + d_g_step;
          rrow_q <= grp_q + d_g_step;
          rd_q   <= grp_q + d_g_step;
          iy_q   <= win_y_q;
          tab_q  <= d_tab;
          wr_q   <= wr_q + AddrWidth'(Pe);
          rem_q  <= rem_q - CntW'(Pe);
          bias_q <= bias_q + 1'b1;
          thr_q  <= thr_q + 1'b1;
        end else begin                            // next pixel
          in_q    <= '0;
          ky_q    <= '0;
          g_q     <= '0;
          tab_q   <= d_tab;
          wr_px_q <= wr_px_q + d_px_step;
          wr_q    <= wr_px_q + d_px_step;
          rem_q   <= d_out_c;
          bias_q  <= d_bias;
          thr_q   <= d_thr_group;
          if (!last_x) begin
            ox_q    <= ox_q + 1'b1;
            org_q   <= org_q + d_ox_step;
            grp_q   <= org_q + d_ox_step;
            rrow_q  <= org_q + d_ox_step;
            rd_q    <= org_q + d_ox_step;
            win_x_q <= win_x_q + d_stride;
            iy_q    <= win_y_q;
          end else begin
            ox_q      <= '0;
            oy_q      <= oy_q + 1'b1;
            org_row_q <= org_row_q + d_oy_step;
            org_q     <= org_row_q + d_oy_step;
            grp_q     <= org_row_q + d_oy_step;
            rrow_q    <= org_row_q + d_oy_step;
            rd_q      <= org_row_q + d_oy_step;
            win_x_q   <= d_win_x0;
            win_y_q   <= win_y_q + d_stride;
            iy_q      <= win_y_q + d_stride;
          end
        end
      end
    end
  end

  // User side band of a beat: {channel group for the thresholds, lanes, write address}.
  logic [UserWidth-1:0] seq_user;
  assign seq_user = {thr_q, nlanes, wr_q};

  // ---- memories read by a beat: data banks, kernel table, weights, biases (all synchronous) --
  // Two issue stages that advance together (st_ready): s1 = the memories' read registers, st =
  // the data memory's crossbar output register and registered copies of the ROM words (the
  // block-RAM clock-to-out and the lane crossbar are not in the same cycle as the consumers).
  logic                     s1_valid_q, s1_last_q, s1_first_q, s1_row_ok_q;
  logic [UserWidth-1:0]     s1_user_q;
  logic [ClsWidth-1:0]      s1_idx_q;
  logic [DimW-1:0]          s1_win_x_q;
  logic                     st_valid_q, st_ready, st_last_q, st_first_q, st_row_ok_q;
  logic [UserWidth-1:0]     st_user_q;
  logic [ClsWidth-1:0]      st_idx_q;
  logic [DimW-1:0]          st_win_x_q;
  logic                     st_take;  // the consumer of the current pass takes the stage's beat
  logic [Banks*AccWidth-1:0] mem_rd;
  logic [Simd*TabLaneW-1:0] tab_rd, tab_word;
  logic [Pe*Simd*WBits-1:0] wgt_rd, st_wgt;
  logic [Pe*BiasWidth-1:0]  bias_rd, st_bias;

  assign st_ready = !st_valid_q || st_take;

  data_mem #(
    .Banks    (Banks),
    .Width    (AccWidth),
    .BankDepth(BankDepth),
    .OutReg   (1)
  ) u_mem (
    .clk_i,
    .we_i      (wr_valid),
    .wr_addr_i (wr_addr),
    .wr_lanes_i(wr_lanes),
    .wr_data_i (wr_data),
    .re_i      (st_ready),
    .rd_addr_i (rd_q),
    .rd_addr2_i(rd_q + d_src2_off),
    .rd_split_i(d_op == OpAdd),
    .rd_data_o (mem_rd)
  );

  ram_sdp #(
    .Width   (Simd * TabLaneW),
    .Depth   (TabDepth),
    .InitFile(TabFile)
  ) u_tab (
    .clk_i,
    .we_i   (1'b0),
    .waddr_i('0),
    .wdata_i('0),
    .re_i   (st_ready),
    .raddr_i(tab_q),
    .rdata_o(tab_rd)
  );

  ram_sdp #(
    .Width   (Pe * Simd * WBits),
    .Depth   (WgtDepth),
    .InitFile(WgtFile)
  ) u_wgt (
    .clk_i,
    .we_i   (1'b0),
    .waddr_i('0),
    .wdata_i('0),
    .re_i   (st_ready),
    .raddr_i(wgt_q),
    .rdata_o(wgt_rd)
  );

  ram_sdp #(
    .Width   (Pe * BiasWidth),
    .Depth   (BiasDepth),
    .InitFile(BiasFile)
  ) u_bias (
    .clk_i,
    .we_i   (1'b0),
    .waddr_i('0),
    .wdata_i('0),
    .re_i   (st_ready),
    .raddr_i(bias_q),
    .rdata_o(bias_rd)
  );

  // ---- issue stages: the beat's control alongside the memories' two read registers ----------
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      {s1_valid_q, s1_last_q, s1_first_q, s1_row_ok_q} <= '0;
      {st_valid_q, st_last_q, st_first_q, st_row_ok_q} <= '0;
      {s1_win_x_q, s1_user_q, s1_idx_q} <= '0;
      {st_win_x_q, st_user_q, st_idx_q} <= '0;
    end else if (st_ready) begin
      s1_valid_q <= step && (d_op != OpLoad);
      if (step && (d_op != OpLoad)) begin
        s1_last_q   <= (d_op == OpOut) ? last_beat : last_dot;
        s1_first_q  <= (ky_q == '0) && (in_q == '0);
        s1_row_ok_q <= row_ok;
        s1_win_x_q  <= win_x_q;
        s1_user_q   <= seq_user;
        s1_idx_q    <= ClsWidth'(ox_q);
      end
      st_valid_q <= s1_valid_q;
      if (s1_valid_q) begin
        {st_last_q, st_first_q, st_row_ok_q} <= {s1_last_q, s1_first_q, s1_row_ok_q};
        {st_win_x_q, st_user_q, st_idx_q} <= {s1_win_x_q, s1_user_q, s1_idx_q};
      end
    end
  end

  // the ROM words, registered like the data memory's lanes (data registers: no reset)
  always_ff @(posedge clk_i) begin
    if (st_ready) begin
      tab_word <= tab_rd;
      st_wgt   <= wgt_rd;
      st_bias  <= bias_rd;
    end
  end

  // MAC lanes: the element of lane s lies dx columns right of the window origin; padding lanes
  // (outside the image) and lanes past the kernel row feed 0.
  logic [Simd*CodeBits-1:0] st_act;
  for (genvar s = 0; s < Simd; s++) begin : gen_act
    logic [DimW-1:0] ix;
    logic            ok;
    assign ix = st_win_x_q + DimW'(tab_word[s*TabLaneW +: 8]);
    assign ok = tab_word[s*TabLaneW + 8] && st_row_ok_q && !ix[DimW-1]
             && ($signed(ix) < $signed(d_in_w));
    assign st_act[s*CodeBits +: CodeBits] = ok ? mem_rd[s*AccWidth +: CodeBits] : '0;
  end

  // Pe-lane views (lanes beyond the channel count read as zero): m from lanes 0.., r (ADD's
  // second operand) from lanes Banks/2..
  logic [Pe*AccWidth-1:0] st_m, st_r;
  logic [LaneW-1:0]       st_nlanes;
  assign st_nlanes = st_user_q[AddrWidth +: LaneW];
  for (genvar l = 0; l < Pe; l++) begin : gen_rd_lanes
    assign st_m[l*AccWidth +: AccWidth] = (LaneW'(l) < st_nlanes) ? mem_rd[l*AccWidth +: AccWidth]
                                                                : '0;
    assign st_r[l*AccWidth +: AccWidth] = (LaneW'(l) < st_nlanes)
                                        ? mem_rd[(Banks/2 + l)*AccWidth +: AccWidth] : '0;
  end

  // ---- MAC array ------------------------------------------------------------------------------
  logic                    mac_in_valid, mac_in_ready, mac_out_valid, mac_out_ready;
  logic [Pe*AccWidth-1:0]  mac_out_data;
  logic [UserWidth-1:0]    mac_out_user;

  assign mac_in_valid = st_valid_q && (d_op == OpMac);

  mac_array #(
    .Pe       (Pe),
    .Simd     (Simd),
    .WBits    (WBits),
    .ABits    (CodeBits),
    .AccWidth (AccWidth),
    .BiasWidth(BiasWidth),
    .MaxBeats (MaxBeats),
    .UserWidth(UserWidth)
  ) u_mac (
    .clk_i,
    .rst_ni,
    .in_valid_i (mac_in_valid),
    .in_ready_o (mac_in_ready),
    .in_act_i   (st_act),
    .in_wgt_i   (st_wgt),
    .in_bias_i  (st_bias),
    .in_last_i  (st_last_q),
    .in_user_i  (st_user_q),
    .out_valid_o(mac_out_valid),
    .out_ready_i(mac_out_ready),
    .out_data_o (mac_out_data),
    .out_user_o (mac_out_user)
  );

  // ---- activation quantizers (input: MAC results, or stored accumulators in an ACT pass) ----
  logic [Pe*AccWidth-1:0] q_in_data;
  logic [UserWidth-1:0]   q_in_user;
  logic                   q_src_valid;
  logic [3:0]             q_in_valid, q_in_ready, q_out_valid;
  logic [Pe*ActBits-1:0]  q_out_data [4];
  logic [UserWidth-1:0]   q_out_user [4];

  assign q_in_data   = (d_op == OpAct) ? st_m : mac_out_data;
  assign q_in_user   = (d_op == OpAct) ? st_user_q : mac_out_user;
  assign q_src_valid = (d_op == OpAct) ? st_valid_q : (d_op == OpMac) && mac_out_valid;
  for (genvar a = 0; a < 4; a++) begin : gen_q_valid
    assign q_in_valid[a] = q_src_valid && (d_act == a) && (a != ActNone);
  end
  assign mac_out_ready = (d_act == ActNone) ? 1'b1 : q_in_ready[d_act[1:0]];
  assign q_in_ready[ActNone]  = 1'b1;
  assign q_out_valid[ActNone] = 1'b0;
  assign q_out_data[ActNone]  = '0;
  assign q_out_user[ActNone]  = '0;

  // ---- threshold load after reset (binary search only) ---------------------------------------
  // One threshold a cycle: ROM word t is read in cycle t and written (channel t / NumThr, index
  // t mod NumThr, counters) in cycle t + 1. No pass issues a beat before the load is done.
  logic                thr_we, thr_ready;
  logic [ThrChanW-1:0] thr_chan;
  logic [ActBits-1:0]  thr_idx;
  logic [AccWidth-1:0] thr_val;

  if (ThrBoot == 1) begin : gen_thr_boot
    logic [ThrAw-1:0]    ld_rd_q;    // ROM word read this cycle
    logic                ld_last_q;  // ld_rd_q is the last word
    logic                ld_act_q;   // a read is in progress (ld_rd_q valid)
    logic                ld_wr_q;    // the word read last cycle is written this cycle
    logic [ThrChanW-1:0] chan_q, wchan_q;
    logic [ActBits-1:0]  idx_q, widx_q;
    logic                done_q;

    ram_sdp #(
      .Width   (AccWidth),
      .Depth   (ThrWords),
      .InitFile(ThrFile)
    ) u_thr_rom (
      .clk_i,
      .we_i   (1'b0),
      .waddr_i(ThrAw'(0)),
      .wdata_i(AccWidth'(0)),
      .re_i   (ld_act_q),
      .raddr_i(ld_rd_q),
      .rdata_o(thr_val)
    );

    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        ld_rd_q      <= '0;
        ld_last_q <= (ThrWords == 1);
        ld_act_q  <= 1'b1;
        ld_wr_q      <= 1'b0;
        chan_q    <= '0;
        idx_q     <= '0;
        wchan_q   <= '0;
        widx_q    <= '0;
        done_q    <= 1'b0;
      end else begin
        ld_wr_q    <= ld_act_q;
        wchan_q <= chan_q;
        widx_q  <= idx_q;
        if (ld_wr_q && !ld_act_q) done_q <= 1'b1;
        if (ld_act_q) begin
          if (ld_last_q) ld_act_q <= 1'b0;
          ld_rd_q      <= ld_rd_q + 1'b1;
          ld_last_q <= (32'(ld_rd_q) + 2 == ThrWords);
          if (32'(idx_q) == NumThr - 1) begin
            idx_q  <= '0;
            chan_q <= chan_q + 1'b1;
          end else begin
            idx_q <= idx_q + 1'b1;
          end
        end
      end
    end
    assign thr_we    = ld_wr_q;
    assign thr_chan  = wchan_q;
    assign thr_idx   = widx_q;
    assign thr_ready = done_q;
  end else begin : gen_thr_rom
    assign thr_we    = 1'b0;
    assign thr_chan  = '0;
    assign thr_idx   = '0;
    assign thr_val   = '0;
    assign thr_ready = 1'b1;
  end

  threshold_quant #(
    .AccWidth    (AccWidth),
    .ABits       (ActBits),
    .Channels    (ThrChannels),
    .Lanes       (Pe),
    .UserWidth   (UserWidth),
    .BinarySearch(BinarySearch),
    .Writable    (ThrWritable),
    .InitFile    ((ThrBoot == 1) ? "" : ThrFile)
  ) u_thr (
    .clk_i,
    .rst_ni,
    .cfg_we_i   (thr_we),
    .cfg_chan_i (thr_chan),
    .cfg_idx_i  (thr_idx),
    .cfg_thr_i  (thr_val),
    .in_valid_i (q_in_valid[ActThr]),
    .in_ready_o (q_in_ready[ActThr]),
    .in_data_i  (q_in_data),
    .in_chan_i  (q_in_user[UserWidth-1 -: GroupWidth]),
    .in_user_i  (q_in_user),
    .out_valid_o(q_out_valid[ActThr]),
    .out_ready_i(1'b1),
    .out_data_o (q_out_data[ActThr]),
    .out_user_o (q_out_user[ActThr])
  );

  log2_act #(
    .AccWidth (AccWidth),
    .ABits    (ActBits),
    .Lanes    (Pe),
    .UserWidth(UserWidth)
  ) u_log2 (
    .clk_i,
    .rst_ni,
    .offset_i   (OffWidth'(d_act_param)),
    .in_valid_i (q_in_valid[ActLog2]),
    .in_ready_o (q_in_ready[ActLog2]),
    .in_data_i  (q_in_data),
    .in_user_i  (q_in_user),
    .out_valid_o(q_out_valid[ActLog2]),
    .out_ready_i(1'b1),
    .out_data_o (q_out_data[ActLog2]),
    .out_user_o (q_out_user[ActLog2])
  );

  shift_quant #(
    .AccWidth (AccWidth),
    .ABits    (ActBits),
    .Lanes    (Pe),
    .UserWidth(UserWidth)
  ) u_shift (
    .clk_i,
    .rst_ni,
    .shift_i    (ShiftWidth'(d_act_param)),
    .in_valid_i (q_in_valid[ActShift]),
    .in_ready_o (q_in_ready[ActShift]),
    .in_data_i  (q_in_data),
    .in_user_i  (q_in_user),
    .out_valid_o(q_out_valid[ActShift]),
    .out_ready_i(1'b1),
    .out_data_o (q_out_data[ActShift]),
    .out_user_o (q_out_user[ActShift])
  );

  // ---- residual adders (one per saturation width) --------------------------------------------
  logic [NumAddWidths-1:0] add_in_valid, add_in_ready, add_out_valid;
  logic [Pe*AccWidth-1:0]  add_out_data [NumAddWidths];
  logic [UserWidth-1:0]    add_out_user [NumAddWidths];

  for (genvar i = 0; i < NumAddWidths; i++) begin : gen_add
    localparam int OutW = 32'(AddWidths[8*i +: 8]);
    logic [Pe*OutW-1:0] sum;
    assign add_in_valid[i] = st_valid_q && (d_op == OpAdd) && (d_add_sel == i);
    residual_add #(
      .MWidth   (AccWidth),
      .RWidth   (AccWidth),
      .OutWidth (OutW),
      .Lanes    (Pe),
      .UserWidth(UserWidth)
    ) u_add (
      .clk_i,
      .rst_ni,
      .m_shift_i  (5'(d_m_shift)),
      .r_shift_i  (5'(d_r_shift)),
      .in_valid_i (add_in_valid[i]),
      .in_ready_o (add_in_ready[i]),
      .in_m_i     (st_m),
      .in_r_i     (st_r),
      .in_user_i  (st_user_q),
      .out_valid_o(add_out_valid[i]),
      .out_ready_i(1'b1),
      .out_data_o (sum),
      .out_user_o (add_out_user[i])
    );
    for (genvar l = 0; l < Pe; l++) begin : gen_ext
      assign add_out_data[i][l*AccWidth +: AccWidth] =
          AccWidth'($signed(sum[l*OutW +: OutW]));
    end
  end

  // ---- max pooling (running maximum over the window, per lane) ------------------------------
  logic                   pool_valid_q;
  logic [UserWidth-1:0]   pool_user_q;
  logic [Pe*AccWidth-1:0] pool_max_q, pool_max_d;
  logic                   pool_take;

  assign pool_take = st_valid_q && (d_op == OpPool);
  for (genvar l = 0; l < Pe; l++) begin : gen_pool
    logic [AccWidth-1:0] cur, nxt;
    assign cur = pool_max_q[l*AccWidth +: AccWidth];
    assign nxt = st_m[l*AccWidth +: AccWidth];
    assign pool_max_d[l*AccWidth +: AccWidth] =
        (st_first_q || $signed(nxt) > $signed(cur)) ? nxt : cur;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      pool_valid_q <= 1'b0;
      pool_user_q  <= '0;
      pool_max_q   <= '0;
    end else begin
      pool_valid_q <= pool_take && st_last_q;
      if (pool_take) begin
        pool_max_q  <= pool_max_d;
        pool_user_q <= st_user_q;
      end
    end
  end

  // ---- the writer: one multi-lane write per cycle from whichever source is active ------------
  logic [UserWidth-1:0]  wr_user;
  logic [Pe*ActBits-1:0] q_codes;

  always_comb begin
    wr_valid = 1'b0;
    wr_user  = '0;
    wr_data  = '0;
    q_codes  = '0;
    for (int a = 1; a < 4; a++) begin
      if (q_out_valid[a]) begin
        wr_valid = 1'b1;
        wr_user  = q_out_user[a];
        q_codes  = q_out_data[a];
      end
    end
    for (int l = 0; l < Pe; l++) begin
      // codes of a layer with fewer than ActBits bits saturate at its own code_max
      if (q_codes[l*ActBits +: ActBits] > d_code_max) begin
        wr_data[l*AccWidth +: AccWidth] = AccWidth'(d_code_max);
      end else begin
        wr_data[l*AccWidth +: AccWidth] = AccWidth'(q_codes[l*ActBits +: ActBits]);
      end
    end
    if (mac_out_valid && d_act == ActNone) begin
      wr_valid = 1'b1;
      wr_user  = mac_out_user;
      wr_data[Pe*AccWidth-1:0] = mac_out_data;
    end
    for (int i = 0; i < NumAddWidths; i++) begin
      if (add_out_valid[i]) begin
        wr_valid = 1'b1;
        wr_user  = add_out_user[i];
        wr_data[Pe*AccWidth-1:0] = add_out_data[i];
      end
    end
    if (pool_valid_q) begin
      wr_valid = 1'b1;
      wr_user  = pool_user_q;
      wr_data[Pe*AccWidth-1:0] = pool_max_q;
    end
    wr_addr  = wr_user[AddrWidth-1:0];
    wr_lanes = wr_user[AddrWidth +: LaneW];
    if (d_op == OpLoad) begin
      wr_valid = step;
      wr_addr  = wr_q;
      wr_lanes = LaneW'(InC);
      for (int c = 0; c < InC; c++) begin
        wr_data[c*AccWidth +: AccWidth] = AccWidth'(in_data_i[c*InBits +: InBits]);
      end
    end
  end

  // ---- logits out (OUT pass) -----------------------------------------------------------------
  logic [NumLogits*AccWidth-1:0] logits_q;
  logic [AccWidth-1:0]           best_q;
  logic [ClsWidth-1:0]           cls_q;
  logic                          out_valid_q;

  logic [AccWidth-1:0]           out_val;

  assign out_val     = st_m[AccWidth-1:0];
  assign out_valid_o = out_valid_q;
  assign out_data_o  = logits_q;
  assign out_class_o = cls_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      logits_q    <= '0;
      best_q      <= '0;
      cls_q       <= '0;
      out_valid_q <= 1'b0;
    end else begin
      if (out_valid_q && out_ready_i) out_valid_q <= 1'b0;
      if (st_valid_q && d_op == OpOut) begin
        for (int i = 0; i < NumLogits; i++) begin
          if (st_idx_q == ClsWidth'(i)) logits_q[i*AccWidth +: AccWidth] <= out_val;
        end
        if (st_idx_q == '0 || $signed(out_val) > $signed(best_q)) begin
          best_q <= out_val;
          cls_q  <= st_idx_q;
        end
        if (st_last_q) out_valid_q <= 1'b1;
      end
    end
  end

  // ---- sequencing ----------------------------------------------------------------------------
  assign running    = !issued_q && thr_ready;
  assign in_ready_o = running && (d_op == OpLoad);
  always_comb begin
    case (d_op)
      OpMac:   st_take = mac_in_ready;
      OpAct:   st_take = q_in_ready[d_act[1:0]];
      OpAdd:   st_take = |(add_in_ready & (NumAddWidths'(1) << d_add_sel));
      default: st_take = 1'b1;
    endcase
    case (d_op)
      OpLoad:  step = in_valid_i && in_ready_o;
      OpOut:   step = running && st_ready && !out_valid_q;
      default: step = running && st_ready;
    endcase
  end
  assign pass_done = act_valid_q && issued_q && !s1_valid_q && !st_valid_q &&
                     (wr_cnt_q == d_writes);

  // Fields wider than their use (descriptor words are 32 bits) and the group bits the writer
  // does not need.
  logic unused_bits;
  assign unused_bits = ^{sh_q, pass_q, wr_user[UserWidth-1 -: GroupWidth]};

endmodule
