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
// Data memory: MemDepth words of AccWidth bits, one value (code or accumulator) per word,
// tensors in (H, W, C) order at descriptor base addresses. It is a simulation model of a banked
// memory with max(Simd, 2*Pe) read ports and a Pe-lane (max(Pe, InC)) contiguous write port.
// MAC beats: the im2col vector of a dot product (order ky, kx, c) is cut into chunks of Simd
// contiguous elements; the kernel table gives each lane (valid, dy, dx, offset), so lanes with
// Cin < Simd are not wasted and padding lanes read zero. One beat per cycle, back to back
// across dot products, output channel groups and pixels; between passes the pipeline drains.
// Beats carry {group, lanes, address} as user bits through the blocks to the writer.
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
  /// Data-memory depth in words; 1..2^24.
  parameter int MemDepth     = 1024,
  /// Number of passes in the descriptor ROM (32 words each); 2..4096.
  parameter int NumPasses    = 2,
  /// Weight ROM depth in words of Pe*Simd*WBits bits; >= 1.
  parameter int WgtDepth     = 1,
  /// Kernel-table ROM depth in words of Simd*64 bits; >= 1.
  parameter int TabDepth     = 1,
  /// Bias ROM depth in words of Pe*BiasWidth bits; >= 1.
  parameter int BiasDepth    = 1,
  /// Threshold channels (a multiple of Pe); >= Pe.
  parameter int ThrChannels  = 4,
  /// Input image height in pixels; >= 1.
  parameter int InH          = 2,
  /// Input image width in pixels; >= 1.
  parameter int InW          = 2,
  /// Input channels per pixel (one pixel per input beat); 1..64.
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
  /// Descriptor ROM image ($readmemh, 32-bit words); "" leaves it empty (lint only).
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
  if (InBits < 1 || InBits > CodeBits || InC < 1 || InC > 64) begin : gen_check_in
    `NUQ_ELAB_FATAL((1, "nuq_engine: InBits=%0d must lie in 1..CodeBits, InC=%0d in 1..64",
                     InBits, InC))
  end
  if (MemDepth < 1 || MemDepth > (1 << 24)) begin : gen_check_mem
    `NUQ_ELAB_FATAL((1, "nuq_engine: MemDepth=%0d must lie in 1..2^24", MemDepth))
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
  localparam int OpLoad = 0, OpMac = 1, OpAct = 2, OpAdd = 3, OpPool = 4, OpOut = 5;
  localparam int ActNone = 0, ActThr = 1, ActLog2 = 2, ActShift = 3;
  localparam int AddrWidth  = (MemDepth > 1) ? $clog2(MemDepth) : 1;
  localparam int LaneW      = $clog2(Pe + 1);
  localparam int ThrGroups  = ThrChannels / Pe;
  localparam int GroupWidth = (ThrGroups > 1) ? $clog2(ThrGroups) : 1;
  localparam int UserWidth  = GroupWidth + LaneW + AddrWidth;
  localparam int Wl         = (Pe > InC) ? Pe : InC;     // write-port lanes
  localparam int Nr         = (Simd > 2 * Pe) ? Simd : 2 * Pe;  // read ports
  localparam int PassW      = $clog2(NumPasses);
  localparam int DescDepth  = NumPasses * 32;
  localparam int ShiftWidth = $clog2(AccWidth);
  localparam int OffWidth   = $clog2(AccWidth) + 1;
  // Without a threshold image (lint, no threshold layer) the table is writable and stays unused.
  localparam int ThrChanW   = (ThrChannels > 1) ? $clog2(ThrChannels) : 1;
  localparam int ThrWritable = (ThrFile == "") ? 1 : 0;

  // ---- memories (ROMs from the generated images) ---------------------------------------------
  logic [31:0]                desc_mem [DescDepth];
  logic [Pe*Simd*WBits-1:0]   wgt_mem  [WgtDepth];
  logic [Pe*BiasWidth-1:0]    bias_mem [BiasDepth];
  logic [Simd*64-1:0]         tab_mem  [TabDepth];
  logic [AccWidth-1:0]        mem_q    [MemDepth];

  initial begin
    if (DescFile != "") $readmemh(DescFile, desc_mem);
    if (WgtFile != "") $readmemh(WgtFile, wgt_mem);
    if (BiasFile != "") $readmemh(BiasFile, bias_mem);
    if (TabFile != "") $readmemh(TabFile, tab_mem);
  end

  // ---- sequencer state -----------------------------------------------------------------------
  logic [PassW-1:0] pass_q;
  int               oy_q, ox_q, g_q, j_q, ky_q, kx_q, cnt_q, wr_cnt_q;
  logic             issued_q;  // every beat of the pass has been issued

  // Descriptor fields of the current pass.
  int d_op, d_act, d_act_param, d_code_max, d_thr_group, d_src, d_in_h, d_in_w, d_in_c;
  int d_dst, d_out_h, d_out_w, d_out_c, d_kernel, d_stride, d_pad, d_tab, d_chunks, d_groups;
  int d_wgt, d_bias, d_src2, d_m_shift, d_r_shift, d_add_sel;

  always_comb begin
    d_op        = $signed(desc_mem[{pass_q, 5'd0}]);
    d_act       = $signed(desc_mem[{pass_q, 5'd1}]);
    d_act_param = $signed(desc_mem[{pass_q, 5'd2}]);
    d_code_max  = $signed(desc_mem[{pass_q, 5'd3}]);
    d_thr_group = $signed(desc_mem[{pass_q, 5'd4}]);
    d_src       = $signed(desc_mem[{pass_q, 5'd5}]);
    d_in_h      = $signed(desc_mem[{pass_q, 5'd6}]);
    d_in_w      = $signed(desc_mem[{pass_q, 5'd7}]);
    d_in_c      = $signed(desc_mem[{pass_q, 5'd8}]);
    d_dst       = $signed(desc_mem[{pass_q, 5'd9}]);
    d_out_h     = $signed(desc_mem[{pass_q, 5'd10}]);
    d_out_w     = $signed(desc_mem[{pass_q, 5'd11}]);
    d_out_c     = $signed(desc_mem[{pass_q, 5'd12}]);
    d_kernel    = $signed(desc_mem[{pass_q, 5'd13}]);
    d_stride    = $signed(desc_mem[{pass_q, 5'd14}]);
    d_pad       = $signed(desc_mem[{pass_q, 5'd15}]);
    d_tab       = $signed(desc_mem[{pass_q, 5'd16}]);
    d_chunks    = $signed(desc_mem[{pass_q, 5'd17}]);
    d_groups    = $signed(desc_mem[{pass_q, 5'd18}]);
    d_wgt       = $signed(desc_mem[{pass_q, 5'd19}]);
    d_bias      = $signed(desc_mem[{pass_q, 5'd20}]);
    d_src2      = $signed(desc_mem[{pass_q, 5'd21}]);
    d_m_shift   = $signed(desc_mem[{pass_q, 5'd22}]);
    d_r_shift   = $signed(desc_mem[{pass_q, 5'd23}]);
    d_add_sel   = $signed(desc_mem[{pass_q, 5'd24}]);
  end

  // ---- loop nest: oy, ox, g, then j (MAC chunk) or ky, kx (pool window) ----------------------
  logic last_inner, last_g, last_px, last_beat, step, running;
  int   pix, nlanes, grp_off, expected;

  always_comb begin
    last_inner = 1'b1;
    if (d_op == OpMac) last_inner = (j_q == d_chunks - 1);
    if (d_op == OpPool) last_inner = (kx_q == d_kernel - 1) && (ky_q == d_kernel - 1);
    last_g    = (d_op == OpLoad) || (d_op == OpOut) || (g_q == d_groups - 1);
    last_px   = (ox_q == d_out_w - 1) && (oy_q == d_out_h - 1);
    last_beat = (d_op == OpOut) ? (cnt_q == d_out_c - 1) : (last_inner && last_g && last_px);
    pix       = oy_q * d_out_w + ox_q;
    grp_off   = g_q * Pe;
    nlanes    = (d_out_c - grp_off < Pe) ? d_out_c - grp_off : Pe;
    expected  = (d_op == OpLoad) ? d_out_h * d_out_w
              : (d_op == OpOut) ? 0 : d_out_h * d_out_w * d_groups;
  end

  // User side band of a beat: {channel group for the thresholds, lanes, write address}.
  logic [UserWidth-1:0] seq_user;
  int                   seq_addr;
  assign seq_addr = d_dst + pix * d_out_c + grp_off;
  assign seq_user = {GroupWidth'(d_thr_group + g_q), LaneW'(nlanes), AddrWidth'(seq_addr)};

  // ---- data-memory read ports ----------------------------------------------------------------
  logic signed [31:0]  rd_addr [Nr];  // not an int array: Icarus 11 mis-handles those
  logic [AccWidth-1:0] rd_data [Nr];
  logic [Simd*64-1:0]  tab_word;
  logic [Simd-1:0]     lane_inb;
  int                  win_y, win_x, win_base, iy, ix, dy, dx, off, pool_base;

  assign tab_word = tab_mem[d_tab + j_q];

  always_comb begin
    win_y     = oy_q * d_stride - d_pad;
    win_x     = ox_q * d_stride - d_pad;
    win_base  = d_src + (win_y * d_in_w + win_x) * d_in_c;
    pool_base = d_src + ((oy_q * d_stride + ky_q) * d_in_w + ox_q * d_stride + kx_q) * d_in_c
              + grp_off;
    lane_inb  = '0;
    for (int p = 0; p < Nr; p++) rd_addr[p] = 0;
    case (d_op)
      OpMac: begin
        for (int s = 0; s < Simd; s++) begin
          dy  = 32'(tab_word[s*64+48 +: 8]);
          dx  = 32'(tab_word[s*64+40 +: 8]);
          off = $signed(tab_word[s*64 +: 32]);
          iy  = win_y + dy;
          ix  = win_x + dx;
          lane_inb[s] = tab_word[s*64+63] && iy >= 0 && iy < d_in_h && ix >= 0 && ix < d_in_w;
          rd_addr[s]  = win_base + off;
        end
      end
      OpAct, OpAdd: begin
        for (int l = 0; l < Pe; l++) begin
          rd_addr[l]      = d_src + pix * d_in_c + grp_off + l;
          rd_addr[Pe + l] = d_src2 + pix * d_in_c + grp_off + l;
        end
      end
      OpPool: begin
        for (int l = 0; l < Pe; l++) rd_addr[l] = pool_base + l;
      end
      OpOut: rd_addr[0] = d_src + cnt_q;
      default: ;
    endcase
  end

  for (genvar p = 0; p < Nr; p++) begin : gen_rd
    logic                 ok;
    logic [AddrWidth-1:0] rd_idx;  // unsigned: Icarus reads a signed index >= 2^(AW-1) as < 0
    assign rd_idx     = AddrWidth'($unsigned(rd_addr[p]));
    assign ok         = (rd_addr[p] >= 0) && (rd_addr[p] < MemDepth);
    assign rd_data[p] = ok ? mem_q[rd_idx] : '0;
  end

  // Pe-lane views of the read ports (lanes beyond the channel count read as zero).
  logic [Pe*AccWidth-1:0] rd_m, rd_r;
  for (genvar l = 0; l < Pe; l++) begin : gen_rd_lanes
    assign rd_m[l*AccWidth +: AccWidth] = (l < nlanes) ? rd_data[l] : '0;
    assign rd_r[l*AccWidth +: AccWidth] = (l < nlanes) ? rd_data[Pe + l] : '0;
  end

  logic [Simd*CodeBits-1:0] rd_act;
  for (genvar s = 0; s < Simd; s++) begin : gen_act
    assign rd_act[s*CodeBits +: CodeBits] = lane_inb[s] ? rd_data[s][CodeBits-1:0] : '0;
  end

  // ---- issue stage: the registered read (a synchronous-read memory) --------------------------
  // One beat of whichever pass runs: MAC operands, Pe stored values (ACT/ADD/POOL/OUT), flags.
  // Registering here also gives every block one input change per cycle.
  logic                     st_valid_q, st_ready, st_last_q, st_first_q;
  logic [Simd*CodeBits-1:0] st_act_q;
  logic [Pe*Simd*WBits-1:0] st_wgt_q;
  logic [Pe*BiasWidth-1:0]  st_bias_q;
  logic [Pe*AccWidth-1:0]   st_m_q, st_r_q;
  logic [UserWidth-1:0]     st_user_q;
  logic [ClsWidth-1:0]      st_idx_q;
  logic                     st_take;  // the consumer of the current pass takes the stage's beat

  assign st_ready = !st_valid_q || st_take;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      st_valid_q <= 1'b0;
      st_last_q  <= 1'b0;
      st_first_q <= 1'b0;
      st_act_q   <= '0;
      st_wgt_q   <= '0;
      st_bias_q  <= '0;
      st_m_q     <= '0;
      st_r_q     <= '0;
      st_user_q  <= '0;
      st_idx_q   <= '0;
    end else if (st_ready) begin
      st_valid_q <= step && (d_op != OpLoad);
      if (step && (d_op != OpLoad)) begin
        st_last_q  <= (d_op == OpMac) ? (j_q == d_chunks - 1)
                    : (d_op == OpOut) ? last_beat : last_inner;
        st_first_q <= (ky_q == 0) && (kx_q == 0);
        // operands load only in the passes that use them (fewer toggles into idle blocks)
        if (d_op == OpMac) begin
          st_act_q  <= rd_act;
          st_wgt_q  <= wgt_mem[d_wgt + g_q * d_chunks + j_q];
          st_bias_q <= bias_mem[d_bias + g_q];
        end else begin
          st_m_q    <= rd_m;
        end
        if (d_op == OpAdd) st_r_q <= rd_r;
        st_user_q  <= seq_user;
        st_idx_q   <= ClsWidth'(cnt_q);
      end
    end
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
    .in_act_i   (st_act_q),
    .in_wgt_i   (st_wgt_q),
    .in_bias_i  (st_bias_q),
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

  assign q_in_data   = (d_op == OpAct) ? st_m_q : mac_out_data;
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

  threshold_quant #(
    .AccWidth    (AccWidth),
    .ABits       (ActBits),
    .Channels    (ThrChannels),
    .Lanes       (Pe),
    .UserWidth   (UserWidth),
    .BinarySearch(BinarySearch),
    .Writable    (ThrWritable),
    .InitFile    (ThrFile)
  ) u_thr (
    .clk_i,
    .rst_ni,
    .cfg_we_i   (1'b0),
    .cfg_chan_i (ThrChanW'(0)),
    .cfg_idx_i  (ActBits'(0)),
    .cfg_thr_i  (AccWidth'(0)),
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
      .in_m_i     (st_m_q),
      .in_r_i     (st_r_q),
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
    assign nxt = st_m_q[l*AccWidth +: AccWidth];
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
  logic                   wr_valid;
  logic [AddrWidth-1:0]   wr_addr;
  logic [LaneW-1:0]       wr_lanes;
  logic [Wl*AccWidth-1:0] wr_data;
  logic [UserWidth-1:0]   wr_user;
  logic [Pe*ActBits-1:0]  q_codes;

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
      if (32'(q_codes[l*ActBits +: ActBits]) > d_code_max) begin
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
      wr_addr  = AddrWidth'(d_dst + pix * InC);
      wr_lanes = LaneW'(InC);
      for (int c = 0; c < InC; c++) begin
        wr_data[c*AccWidth +: AccWidth] = AccWidth'(in_data_i[c*InBits +: InBits]);
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (wr_valid) begin
      for (int l = 0; l < Wl; l++) begin
        if (l < 32'(wr_lanes)) mem_q[wr_addr + AddrWidth'(l)] <= wr_data[l*AccWidth +: AccWidth];
      end
    end
  end

  // Fields wider than their use (descriptor words are 32 bits) and the group bits the writer
  // does not need.
  logic unused_bits;
  assign unused_bits = ^{d_act_param[31:OffWidth], d_m_shift[31:5], d_r_shift[31:5],
                         seq_addr[31:AddrWidth], wr_user[UserWidth-1 -: GroupWidth]};

  // ---- logits out (OUT pass) -----------------------------------------------------------------
  logic [NumLogits*AccWidth-1:0] logits_q;
  logic [AccWidth-1:0]           best_q;
  logic [ClsWidth-1:0]           cls_q;
  logic                          out_valid_q;

  logic [AccWidth-1:0]           out_val;

  assign out_val     = st_m_q[AccWidth-1:0];
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
        logits_q[32'(st_idx_q)*AccWidth +: AccWidth] <= out_val;
        if (st_idx_q == '0 || $signed(out_val) > $signed(best_q)) begin
          best_q <= out_val;
          cls_q  <= st_idx_q;
        end
        if (st_last_q) out_valid_q <= 1'b1;
      end
    end
  end

  // ---- sequencing ----------------------------------------------------------------------------
  logic pass_done;

  assign running    = !issued_q;
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
  assign pass_done = issued_q && !st_valid_q && (wr_cnt_q == expected);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      pass_q   <= '0;
      issued_q <= 1'b0;
      oy_q     <= 0;
      ox_q     <= 0;
      g_q      <= 0;
      j_q      <= 0;
      ky_q     <= 0;
      kx_q     <= 0;
      cnt_q    <= 0;
      wr_cnt_q <= 0;
    end else if (pass_done) begin
      pass_q   <= (32'(pass_q) == NumPasses - 1) ? '0 : pass_q + 1'b1;
      issued_q <= 1'b0;
      wr_cnt_q <= 0;
      oy_q     <= 0;
      ox_q     <= 0;
      g_q      <= 0;
      j_q      <= 0;
      ky_q     <= 0;
      kx_q     <= 0;
      cnt_q    <= 0;
    end else begin
      if (wr_valid) wr_cnt_q <= wr_cnt_q + 1;
      if (step) begin
        if (last_beat) issued_q <= 1'b1;
        cnt_q <= last_beat ? 0 : cnt_q + 1;
        if (!last_inner) begin
          if (d_op == OpPool) begin
            if (kx_q == d_kernel - 1) begin
              kx_q <= 0;
              ky_q <= ky_q + 1;
            end else begin
              kx_q <= kx_q + 1;
            end
          end else begin
            j_q <= j_q + 1;
          end
        end else begin
          j_q  <= 0;
          ky_q <= 0;
          kx_q <= 0;
          if (!last_g) begin
            g_q <= g_q + 1;
          end else begin
            g_q <= 0;
            if (ox_q == d_out_w - 1) begin
              ox_q <= 0;
              oy_q <= (oy_q == d_out_h - 1) ? 0 : oy_q + 1;
            end else begin
              ox_q <= ox_q + 1;
            end
          end
        end
      end
    end
  end

endmodule
