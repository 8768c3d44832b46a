// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Matrix-vector-activation unit (FINN MVAU) of the dataflow engine: one conv2d or dense layer,
// folded onto a Pe x Simd mac_array, with its weights and biases in its own ROMs and its
// activation (threshold_quant / log2_act / shift_quant, or none: the accumulators) behind it.
//
// Input (InMode = 0): one vector of N unsigned ABits-bit codes per beat (a K x K x Cin window of
// rtl/sliding_window.sv in im2col order, element e at [e*ABits +: ABits]). The beat is held at
// the input while the unit reads it as Chunks = ceil(N/Simd) chunks of Simd codes (lanes past N
// feed 0) through a chunk counter, once per channel group; in_ready_o is high with the fetch of
// the last chunk of the last group, so the next vector's first chunk follows in the next cycle
// (no bubble between pixels).
// Input (InMode = 1): one Simd-code chunk per beat, Groups x Chunks beats per output pixel in
// the order (group, chunk) (rtl/dense_buffer.sv replays the dense layer's input this way).
//
// Output: one beat per output pixel, Cout values of OutBits bits, channel c at
// [c*OutBits +: OutBits]: activation codes (Act 1..3, ActBits unsigned) or the accumulators
// (Act = 0, AccBits signed: bias + sum w*a, golden.ops.conv2d / dense).
//
// Cycles per output pixel: Groups * Chunks (Groups = ceil(Cout/Pe)), one MAC beat per cycle with
// no idle cycle in steady state. Pipeline: fetch (counters address the ROMs, the chunk is
// selected) -> issue register (ROM data + chunk) -> mac_array (2 stages + skid; 3 with InReg)
// -> activation
// (1 register stage, ActBits with the binary search) -> collector (channel groups assembled
// into the pixel) -> output register. Back-pressure stalls the issue stage (the ROMs hold
// their word: re_i low); nothing is lost or reordered; a reset drops everything in flight.
//
// ROM images ($readmemh, one word a line, hexadecimal):
//   WgtFile : Groups*Chunks words of Pe*Simd*WBits bits; word g*Chunks + j holds, PE p lane s at
//             [(p*Simd+s)*WBits +: WBits], the weight of output channel g*Pe+p and input
//             element j*Simd+s (two's complement; 0 past Cout or N).
//   BiasFile: Groups words of Pe*BiasWidth bits, PE p at [p*BiasWidth +: BiasWidth].
//   ThrFile : threshold_quant's InitFile (Cout channels, AccWidth bits) when Act = 1.
`include "nuq_assert.svh"

module mvau #(
  /// Output channels computed in parallel (PEs); 1..256.
  parameter int Pe           = 2,
  /// Input codes consumed per PE per cycle (lanes); 1..1024.
  parameter int Simd         = 4,
  /// Dot-product length (K*K*Cin or in_features); 1..2^20.
  parameter int N            = 9,
  /// Output channels; 1..65536.
  parameter int Cout         = 4,
  /// Input code width in bits, unsigned; 1..16.
  parameter int ABits        = 4,
  /// Weight code width in bits, signed symmetric; 2..16.
  parameter int WBits        = 4,
  /// Internal accumulator width in bits (mac_array's AccWidth, at least its bound); ..62.
  parameter int AccWidth     = 20,
  /// Bias width in bits, signed; 1..32.
  parameter int BiasWidth    = 8,
  /// Activation: 0 = none (accumulators), 1 = threshold, 2 = log2, 3 = shift.
  parameter int Act          = 0,
  /// Output code width of the activation in bits (Act 1..3); 1..16.
  parameter int ActBits      = 4,
  /// log2 offset (Act = 2) or shift (Act = 3); 0..AccWidth-1.
  parameter int ActParam     = 0,
  /// Output accumulator width in bits when Act = 0 (values fit it: the export's acc_bits);
  /// 2..AccWidth.
  parameter int AccBits      = 16,
  /// threshold_quant implementation (Act = 1): 0 = parallel, 1 = binary search.
  parameter int BinarySearch = 0,
  /// 0 = one N-code vector per beat; 1 = one Simd-code chunk per beat (see header).
  parameter int InMode       = 0,
  /// mac_array InReg: 1 = the issued beat (ROM words, chunk) is registered once more before
  /// the products (one more cycle of latency; cuts the block-RAM output from the MAC path).
  parameter int InReg        = 0,
  /// mac_array LutMul: 1 = products as shifted partial products (no multiplier / DSP block
  /// inferred); 0 = w*a products (the synthesis tool chooses).
  parameter int LutMul       = 0,
  /// Words of the weight ROM at least (the image fills the first Groups*Chunks): a deeper
  /// ROM makes Yosys's cost model choose block RAM over LUT logic for a wide, shallow ROM
  /// (iCE40: 64 x 36 bits became about 700 LUT4); 1..2^20.
  parameter int WgtMinDepth  = 1,
  /// Weight ROM image (layout above); "" = all weights 0 (lint / elaboration only).
  parameter     WgtFile      = "",
  /// Bias ROM image (layout above); "" = all biases 0.
  parameter     BiasFile     = "",
  /// Threshold image (required with Act = 1).
  parameter     ThrFile      = "",
  /// Chunks per dot product, ceil(N/Simd) (derived; do not override).
  parameter int Chunks       = (N + Simd - 1) / Simd,
  /// Channel groups, ceil(Cout/Pe) (derived; do not override).
  parameter int Groups       = (Cout + Pe - 1) / Pe,
  /// Bits per output value (derived; do not override).
  parameter int OutBits      = (Act == 0) ? AccBits : ActBits,
  /// Input beat width in bits (derived; do not override).
  parameter int InWidth      = ((InMode == 0) ? N : Simd) * ABits
) (
  /// Clock, rising edge.
  input  logic                    clk_i,
  /// Asynchronous active-low reset; drops every beat in flight.
  input  logic                    rst_ni,
  /// Input beat valid (a vector, or a chunk with InMode = 1).
  input  logic                    in_valid_i,
  /// Input beat accepted when in_valid_i && in_ready_o.
  output logic                    in_ready_o,
  /// Input codes, element e at [e*ABits +: ABits].
  input  logic [InWidth-1:0]      in_data_i,
  /// Output pixel valid.
  output logic                    out_valid_o,
  /// Downstream ready (back-pressure when low).
  input  logic                    out_ready_i,
  /// Output pixel, channel c at [c*OutBits +: OutBits].
  output logic [Cout*OutBits-1:0] out_data_o
);

  localparam int Beats   = Groups * Chunks;
  localparam int BeatW   = (Beats > 1) ? $clog2(Beats) : 1;
  localparam int ChunkW  = (Chunks > 1) ? $clog2(Chunks) : 1;
  localparam int GroupW  = (Groups > 1) ? $clog2(Groups) : 1;
  localparam int ChunkB  = Simd * ABits;          // bits of one chunk
  localparam int LaneB   = Pe * OutBits;          // bits of one channel group's results
  localparam int OffW    = $clog2(AccWidth) + 1;  // log2_act's offset port
  localparam int ShiftW  = $clog2(AccWidth);      // shift_quant's shift port

  // ---- parameter checks at elaboration ----------------------------------------------------
  if (N < 1 || N > (1 << 20)) begin : gen_check_n
    `NUQ_ELAB_FATAL((1, "mvau: N=%0d must lie in 1..2^20", N))
  end
  if (Cout < 1 || Cout > 65536) begin : gen_check_cout
    `NUQ_ELAB_FATAL((1, "mvau: Cout=%0d must lie in 1..65536", Cout))
  end
  if (Act < 0 || Act > 3) begin : gen_check_act
    `NUQ_ELAB_FATAL((1, "mvau: Act=%0d must be 0 (none), 1, 2 or 3", Act))
  end
  if (Act == 0 && (AccBits < 2 || AccBits > AccWidth)) begin : gen_check_accbits
    `NUQ_ELAB_FATAL((1, "mvau: AccBits=%0d must lie in 2..AccWidth=%0d", AccBits, AccWidth))
  end
  if (WgtMinDepth < 1 || WgtMinDepth > (1 << 20)) begin : gen_check_rom_depth
    `NUQ_ELAB_FATAL((1, "mvau: WgtMinDepth=%0d must lie in 1..2^20", WgtMinDepth))
  end
  if (InMode != 0 && InMode != 1) begin : gen_check_mode
    `NUQ_ELAB_FATAL((1, "mvau: InMode=%0d must be 0 or 1", InMode))
  end

  // ---- fetch: counters over (group, chunk) and the ROM address -----------------------------
  logic              mac_in_ready;
  logic              iss_valid_q;
  logic              advance, fetch, last_chunk, last_group;
  logic [ChunkW-1:0] chunk_q;
  logic [GroupW-1:0] group_q;
  logic [BeatW-1:0]  addr_q;
  logic [ChunkB-1:0] chunk_d;

  assign advance    = ~iss_valid_q | mac_in_ready;
  assign fetch      = in_valid_i & advance;
  assign last_chunk = (chunk_q == ChunkW'(Chunks - 1));
  assign last_group = (group_q == GroupW'(Groups - 1));

  if (InMode == 0) begin : gen_vector
    // The vector stays at the input; the chunk counter selects Simd codes (zeros past N).
    localparam int VecB = Chunks * ChunkB;
    logic [VecB-1:0] vec;
    assign vec        = VecB'(in_data_i);
    assign chunk_d    = vec[chunk_q*ChunkB +: ChunkB];
    assign in_ready_o = advance & last_chunk & last_group;
  end else begin : gen_chunk
    assign chunk_d    = in_data_i;
    assign in_ready_o = advance;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      chunk_q <= '0;
      group_q <= '0;
      addr_q  <= '0;
    end else if (fetch) begin
      chunk_q <= last_chunk ? '0 : chunk_q + ChunkW'(1);
      if (last_chunk) begin
        group_q <= last_group ? '0 : group_q + GroupW'(1);
      end
      addr_q  <= (last_chunk && last_group) ? '0 : addr_q + BeatW'(1);
    end
  end

  // ---- ROMs (synchronous read at the fetch; the word is in the issue stage) ----------------
  logic [Pe*Simd*WBits-1:0] wgt;
  logic [Pe*BiasWidth-1:0]  bias;

  localparam int RomDepth = (Beats < WgtMinDepth) ? WgtMinDepth : Beats;
  localparam int RomAW    = (RomDepth > 1) ? $clog2(RomDepth) : 1;

  ram_sdp #(
    .Width   (Pe * Simd * WBits),
    .Depth   (RomDepth),
    .InitFile(WgtFile)
  ) u_wgt_rom (
    .clk_i,
    .we_i   (1'b0),
    .waddr_i('0),
    .wdata_i('0),
    .re_i   (fetch),
    .raddr_i(RomAW'(addr_q)),
    .rdata_o(wgt)
  );

  ram_sdp #(
    .Width   (Pe * BiasWidth),
    .Depth   (Groups),
    .InitFile(BiasFile)
  ) u_bias_rom (
    .clk_i,
    .we_i   (1'b0),
    .waddr_i('0),
    .wdata_i('0),
    .re_i   (fetch),
    .raddr_i(group_q),
    .rdata_o(bias)
  );

  // ---- issue stage ---------------------------------------------------------------------------
  logic              iss_last_q;
  logic [GroupW-1:0] iss_group_q;
  logic [ChunkB-1:0] iss_act_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      iss_valid_q <= 1'b0;
      iss_last_q  <= 1'b0;
      iss_group_q <= '0;
      iss_act_q   <= '0;
    end else if (advance) begin
      iss_valid_q <= in_valid_i;
      if (in_valid_i) begin
        iss_last_q  <= last_chunk;
        iss_group_q <= group_q;
        iss_act_q   <= chunk_d;
      end
    end
  end

  // ---- MAC array -----------------------------------------------------------------------------
  logic                   mac_out_valid, mac_out_ready;
  logic [Pe*AccWidth-1:0] mac_out_data;
  logic [GroupW-1:0]      mac_out_group;

  mac_array #(
    .Pe       (Pe),
    .Simd     (Simd),
    .WBits    (WBits),
    .ABits    (ABits),
    .AccWidth (AccWidth),
    .BiasWidth(BiasWidth),
    .MaxBeats (Chunks),
    .UserWidth(GroupW),
    .InReg    (InReg),
    .LutMul   (LutMul)
  ) u_mac (
    .clk_i,
    .rst_ni,
    .in_valid_i (iss_valid_q),
    .in_ready_o (mac_in_ready),
    .in_act_i   (iss_act_q),
    .in_wgt_i   (wgt),
    .in_bias_i  (bias),
    .in_last_i  (iss_last_q),
    .in_user_i  (iss_group_q),
    .out_valid_o(mac_out_valid),
    .out_ready_i(mac_out_ready),
    .out_data_o (mac_out_data),
    .out_user_o (mac_out_group)
  );

  // ---- activation ----------------------------------------------------------------------------
  logic              q_valid, q_ready;
  logic [LaneB-1:0]  q_data;
  logic [GroupW-1:0] q_group;

  if (Act == 0) begin : gen_act_none
    // The accumulators themselves, cut to the layer's width (every value fits AccBits).
    logic [Pe*AccWidth-1:0] unused_high;
    for (genvar l = 0; l < Pe; l++) begin : gen_lane
      assign q_data[l*OutBits +: OutBits] = mac_out_data[l*AccWidth +: OutBits];
    end
    assign unused_high   = mac_out_data;
    assign q_valid       = mac_out_valid;
    assign q_group       = mac_out_group;
    assign mac_out_ready = q_ready;
  end else if (Act == 1) begin : gen_act_thr
    threshold_quant #(
      .AccWidth    (AccWidth),
      .ABits       (ActBits),
      .Channels    (Cout),
      .Lanes       (Pe),
      .UserWidth   (GroupW),
      .BinarySearch(BinarySearch),
      .Writable    (0),
      .InitFile    (ThrFile)
    ) u_thr (
      .clk_i,
      .rst_ni,
      .cfg_we_i   (1'b0),
      .cfg_chan_i ('0),
      .cfg_idx_i  ('0),
      .cfg_thr_i  ('0),
      .in_valid_i (mac_out_valid),
      .in_ready_o (mac_out_ready),
      .in_data_i  (mac_out_data),
      .in_chan_i  (mac_out_group),
      .in_user_i  (mac_out_group),
      .out_valid_o(q_valid),
      .out_ready_i(q_ready),
      .out_data_o (q_data),
      .out_user_o (q_group)
    );
  end else if (Act == 2) begin : gen_act_log2
    log2_act #(
      .AccWidth (AccWidth),
      .ABits    (ActBits),
      .Lanes    (Pe),
      .UserWidth(GroupW)
    ) u_log2 (
      .clk_i,
      .rst_ni,
      .offset_i   (OffW'(ActParam)),
      .in_valid_i (mac_out_valid),
      .in_ready_o (mac_out_ready),
      .in_data_i  (mac_out_data),
      .in_user_i  (mac_out_group),
      .out_valid_o(q_valid),
      .out_ready_i(q_ready),
      .out_data_o (q_data),
      .out_user_o (q_group)
    );
  end else begin : gen_act_shift
    shift_quant #(
      .AccWidth (AccWidth),
      .ABits    (ActBits),
      .Lanes    (Pe),
      .UserWidth(GroupW)
    ) u_shift (
      .clk_i,
      .rst_ni,
      .shift_i    (ShiftW'(ActParam)),
      .in_valid_i (mac_out_valid),
      .in_ready_o (mac_out_ready),
      .in_data_i  (mac_out_data),
      .in_user_i  (mac_out_group),
      .out_valid_o(q_valid),
      .out_ready_i(q_ready),
      .out_data_o (q_data),
      .out_user_o (q_group)
    );
  end

  // ---- collector: channel groups -> one output pixel ----------------------------------------
  // Groups 0..Groups-2 are written into coll_q; the last group completes the pixel, which moves
  // to the output register (it waits there under back-pressure while coll_q fills again).
  logic                    q_last, out_valid_q;
  logic [Groups*LaneB-1:0] pixel_d;
  logic [Cout*OutBits-1:0] out_data_q;
  logic                    unused_pad;  // results of the padding channels (>= Cout)

  assign unused_pad = ^pixel_d;
  assign q_last  = (q_group == GroupW'(Groups - 1));
  assign q_ready = ~q_last | ~out_valid_q | out_ready_i;

  if (Groups > 1) begin : gen_coll
    logic [(Groups-1)*LaneB-1:0] coll_q;
    assign pixel_d = {q_data, coll_q};
    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        coll_q <= '0;
      end else if (q_valid && !q_last) begin
        coll_q[q_group*LaneB +: LaneB] <= q_data;
      end
    end
  end else begin : gen_no_coll
    assign pixel_d = q_data;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      out_valid_q <= 1'b0;
      out_data_q  <= '0;
    end else if (q_valid && q_ready && q_last) begin
      out_valid_q <= 1'b1;
      out_data_q  <= pixel_d[Cout*OutBits-1:0];
    end else if (out_ready_i) begin
      out_valid_q <= 1'b0;
    end
  end

  assign out_valid_o = out_valid_q;
  assign out_data_o  = out_data_q;

endmodule
