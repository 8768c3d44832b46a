// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Requantizer (seed 002; docs/arithmetic.md section 10, golden.ops.requantize):
//   y = clamp((x * M[c] + round) >> n[c], 0, 2^ABits - 1),  round = 2^(n-1) for n > 0, else 0
// for Lanes signed accumulators per beat: a per-channel fixed-point rescale with round half up
// and saturation at both ends. Lane l of a beat with in_chan_i = g is channel g*Lanes + l.
//
// Datapath per lane: a negative x gives 0 (with M >= 0 the rounded value is <= 0), so only the
// (AccWidth-1)-bit magnitude of a non-negative x is multiplied by the unsigned M; the rounding
// is ((p << 1) >> n) + 1) >> 1, equal to (p + 2^(n-1)) >> n for n > 0 and to p for n = 0.
// Pipeline (latency 3, one beat per cycle, global enable: in_ready_o = (!out_valid_o ||
// out_ready_i) && !cfg_we_i):
//   stage 1: the beat and its group's coefficients (synchronous read of the coefficient memory)
//   stage 2: product p = x * M (registered)
//   stage 3: round, shift, clamp (the output register)
// Coefficient memory (ram_sdp): ChanGroups words of Lanes*(MBits+NBits) bits, word g holds the
// Lanes channels of group g, lane l at bits [l*(MBits+NBits) +: MBits+NBits] as {n, M} (M in
// the low MBits; golden.ops.requant_words). InitFile preloads it with $readmemh (one word a
// line, hexadecimal, group 0 first); lanes of the last group past Channels should hold M = 0.
//   Writable=0: a ROM that only InitFile fills.
//   Writable=1: also the write port cfg_* (one group per cycle). Without InitFile the words are
//     unspecified until written. Write rule: a beat accepted in cycle k uses every write
//     presented before cycle k (no beat is accepted in a cycle with cfg_we_i high); rst_ni
//     keeps the memory.
`include "nuq_assert.svh"

module requantizer #(
  /// Accumulator (input) width in bits, signed two's complement; 2..61, AccWidth+MBits <= 62.
  parameter int AccWidth   = 16,
  /// Output code width A in bits, unsigned; 1..16.
  parameter int ABits      = 4,
  /// Multiplier width in bits, unsigned M in 0..2^MBits-1; 1..32.
  parameter int MBits      = 8,
  /// Shift width in bits, n in 0..min(2^NBits-1, 62); 1..6.
  parameter int NBits      = 6,
  /// Number of channels (coefficient pairs); 1..65536.
  parameter int Channels   = 1,
  /// Values per beat (parallel lanes); 1..256.
  parameter int Lanes      = 1,
  /// Width of the user side-band in bits (passed through unchanged, in order); 1..1024.
  parameter int UserWidth  = 1,
  /// 1 = run-time coefficient write port; 0 = ROM filled only from InitFile.
  parameter int Writable   = 1,
  /// $readmemh image of the coefficients (layout above); "" = none (Writable=1 only).
  parameter     InitFile   = "",
  /// Channel groups per pass, ceil(Channels/Lanes) (derived; do not override).
  parameter int ChanGroups = (Channels + Lanes - 1) / Lanes,
  /// Width of in_chan_i and cfg_group_i in bits, max(1, $clog2(ChanGroups)) (derived).
  parameter int GroupWidth = (ChanGroups > 1) ? $clog2(ChanGroups) : 1
) (
  /// Clock, rising edge.
  input  logic                      clk_i,
  /// Asynchronous active-low reset; empties the pipeline (the coefficients are kept).
  input  logic                      rst_ni,
  /// Coefficient write enable, one group per cycle (ignored when Writable=0).
  input  logic                      cfg_we_i,
  /// Group written, 0..ChanGroups-1 (other values: write ignored).
  input  logic [GroupWidth-1:0]     cfg_group_i,
  /// Multipliers of the group's Lanes channels, unsigned, lane l at [l*MBits +: MBits].
  input  logic [Lanes*MBits-1:0]    cfg_m_i,
  /// Shifts of the group's Lanes channels, 0..62, lane l at [l*NBits +: NBits].
  input  logic [Lanes*NBits-1:0]    cfg_n_i,
  /// Input beat valid.
  input  logic                      in_valid_i,
  /// Input beat accepted when in_valid_i && in_ready_o.
  output logic                      in_ready_o,
  /// Lanes signed accumulators, lane l at bits [l*AccWidth +: AccWidth].
  input  logic [Lanes*AccWidth-1:0] in_data_i,
  /// Channel group g of the beat, 0..ChanGroups-1; lane l is channel g*Lanes + l.
  input  logic [GroupWidth-1:0]     in_chan_i,
  /// Input side-band (e.g. an output address), any value; leaves with this beat's result.
  input  logic [UserWidth-1:0]      in_user_i,
  /// Output beat valid.
  output logic                      out_valid_o,
  /// Downstream ready (back-pressure when low).
  input  logic                      out_ready_i,
  /// Lanes unsigned codes 0..2^ABits-1, lane l at bits [l*ABits +: ABits].
  output logic [Lanes*ABits-1:0]    out_data_o,
  /// Output side-band: in_user_i of the beat that produced out_data_o.
  output logic [UserWidth-1:0]      out_user_o
);

  // Parameter checks at elaboration.
  if (AccWidth < 2 || AccWidth > 61) begin : gen_check_acc
    `NUQ_ELAB_FATAL((1, "requantizer: AccWidth=%0d must lie in 2..61", AccWidth))
  end
  if (ABits < 1 || ABits > 16) begin : gen_check_abits
    `NUQ_ELAB_FATAL((1, "requantizer: ABits=%0d must lie in 1..16", ABits))
  end
  if (MBits < 1 || MBits > 32 || AccWidth + MBits > 62) begin : gen_check_mbits
    `NUQ_ELAB_FATAL((1, "requantizer: MBits=%0d must lie in 1..32 with AccWidth+MBits <= 62",
                     MBits))
  end
  if (NBits < 1 || NBits > 6) begin : gen_check_nbits
    `NUQ_ELAB_FATAL((1, "requantizer: NBits=%0d must lie in 1..6", NBits))
  end
  if (Channels < 1 || Channels > 65536) begin : gen_check_chan
    `NUQ_ELAB_FATAL((1, "requantizer: Channels=%0d must lie in 1..65536", Channels))
  end
  if (Lanes < 1 || Lanes > 256) begin : gen_check_lanes
    `NUQ_ELAB_FATAL((1, "requantizer: Lanes=%0d must lie in 1..256", Lanes))
  end
  if (UserWidth < 1 || UserWidth > 1024) begin : gen_check_user
    `NUQ_ELAB_FATAL((1, "requantizer: UserWidth=%0d must lie in 1..1024", UserWidth))
  end
  if (Writable != 0 && Writable != 1) begin : gen_check_wr
    `NUQ_ELAB_FATAL((1, "requantizer: Writable=%0d must be 0 or 1", Writable))
  end
  if (Writable == 0 && InitFile == "") begin : gen_check_rom
    `NUQ_ELAB_FATAL((1, "requantizer: Writable=0 needs an InitFile (a ROM with no image)"))
  end

  localparam int PW = AccWidth - 1 + MBits;            // magnitude product width
  localparam int CW = MBits + NBits;                   // one lane's {n, M}

  // Global enable: every stage moves when the output register can take a beat.
  logic en, accept;
  logic s1_valid_q, s2_valid_q, s3_valid_q;
  assign en         = ~s3_valid_q | out_ready_i;
  assign in_ready_o = en & ~(cfg_we_i & (Writable != 0));
  assign accept     = in_valid_i & in_ready_o;

  // ---- coefficient memory (read with the beat's acceptance) ---------------------------------
  logic [Lanes*CW-1:0] cfg_word, coef;
  for (genvar l = 0; l < Lanes; l++) begin : gen_cfg_word
    assign cfg_word[l*CW +: CW] = {cfg_n_i[l*NBits +: NBits], cfg_m_i[l*MBits +: MBits]};
  end

  ram_sdp #(
    .Width   (Lanes*CW),
    .Depth   (ChanGroups),
    .InitFile(InitFile)
  ) u_coef (
    .clk_i,
    .we_i   (cfg_we_i && (Writable != 0)),
    .waddr_i(cfg_group_i),
    .wdata_i(cfg_word),
    .re_i   (en),
    .raddr_i(in_chan_i),
    .rdata_o(coef)
  );

  // ---- pipeline registers ----------------------------------------------------------------
  logic [Lanes*AccWidth-1:0] s1_x_q;
  logic [Lanes*PW-1:0]       s2_p_d, s2_p_q;
  logic [Lanes*NBits-1:0]    s2_n_q;
  logic [Lanes*ABits-1:0]    s3_code_d, s3_code_q;
  logic [UserWidth-1:0]      s1_user_q, s2_user_q, s3_user_q;

  for (genvar l = 0; l < Lanes; l++) begin : gen_lane
    logic [AccWidth-1:0] x;
    logic [MBits-1:0]    m;
    logic [PW:0]         shifted, rounded;
    logic [PW-1:0]       y;
    logic                unused_half;  // the bit the final >> 1 drops
    assign x = s1_x_q[l*AccWidth +: AccWidth];
    assign m = coef[l*CW +: MBits];
    // stage 2: the product of a non-negative x; a negative x gives 0
    assign s2_p_d[l*PW +: PW] = x[AccWidth-1] ? '0 : PW'(x[AccWidth-2:0]) * PW'(m);
    // stage 3: ((p << 1) >> n) + 1 cannot overflow PW+1 bits (at most 2p + 1)
    assign shifted = {s2_p_q[l*PW +: PW], 1'b0} >> s2_n_q[l*NBits +: NBits];
    assign rounded = shifted + (PW+1)'(1);
    assign y       = rounded[PW:1];
    assign unused_half = rounded[0];
    // saturate at 2^ABits - 1 when a bit above the code is set
    if (PW > ABits) begin : gen_clamp
      assign s3_code_d[l*ABits +: ABits] = (|y[PW-1:ABits]) ? '1 : y[ABits-1:0];
    end else begin : gen_fits
      assign s3_code_d[l*ABits +: ABits] = ABits'(y);
    end
  end

  // Valid bits (reset) and payload registers (no reset: written with their beat).
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      s1_valid_q <= 1'b0;
      s2_valid_q <= 1'b0;
      s3_valid_q <= 1'b0;
    end else if (en) begin
      s1_valid_q <= accept;
      s2_valid_q <= s1_valid_q;
      s3_valid_q <= s2_valid_q;
    end
  end

  logic [Lanes*NBits-1:0] coef_n;
  for (genvar l = 0; l < Lanes; l++) begin : gen_coef_n
    assign coef_n[l*NBits +: NBits] = coef[l*CW + MBits +: NBits];
  end

  always_ff @(posedge clk_i) begin
    if (en) begin
      s1_x_q    <= in_data_i;
      s1_user_q <= in_user_i;
      s2_p_q    <= s2_p_d;
      s2_n_q    <= coef_n;
      s2_user_q <= s1_user_q;
      s3_code_q <= s3_code_d;
      s3_user_q <= s2_user_q;
    end
  end

  assign out_valid_o = s3_valid_q;
  assign out_data_o  = s3_code_q;
  assign out_user_o  = s3_user_q;

endmodule
