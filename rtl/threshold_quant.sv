// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Threshold (non-uniform) quantizer, QONNX/FINN MultiThreshold semantics:
//   y = #{k : x >= T[c][k]},  k = 1..2^ABits-1,  c = channel of the lane
// for Lanes signed accumulators per beat. Lane l of a beat with in_chan_i = g is channel
// g*Lanes + l; a lane whose channel is >= Channels (padding of the last group) gives code 0.
//
// Two implementations with bit-identical outputs for ascending thresholds per channel
// (T[c][1] <= ... <= T[c][L], the contract of golden.ops.check_thresholds):
//   BinarySearch = 0: 2^ABits-1 parallel comparators per lane and a population count (a
//                     balanced adder tree, depth ABits); one register stage (latency 1), two
//                     for a ROM with several channel groups (below).
//   BinarySearch = 1: pipelined binary search as in FINN's thresholding RTL: stage s decides
//                     code bit ABits-1-s with ONE comparator per lane against
//                     T[c][prefix | 2^(ABits-1-s)]; latency ABits (plus the output FIFO).
// Both accept one beat per cycle (II=1) and hold their output under back-pressure.
//
// Threshold table: Channels*(2^ABits-1) signed AccWidth-bit thresholds. InitFile preloads it with
// $readmemh: one threshold per line, hexadecimal two's complement at AccWidth bits (e.g.
// AccWidth=10: -3 is 3fd), channel-major then index (line c*(2^ABits-1) + k-1 is T[c][k]).
// Without InitFile a writable table starts (configuration time; rst_ni keeps the table) with
// every threshold at 2^(AccWidth-1)-1, the largest value: code 0 for every x except x = max.
//   Writable=0, BinarySearch=0: a ROM that only InitFile fills. With ChanGroups=1 every
//     address is an elaboration-time constant and synthesis folds it into constant compares
//     (latency 1). With ChanGroups > 1 the thresholds of the beat's group are read
//     synchronously (a registered read of the constant table, per comparator a ROM of
//     ChanGroups words) into a first register stage beside the beat, then compared (latency
//     2): no asynchronously read table in the compare path. The pipeline advances on one
//     global enable (in_ready_o = !out_valid_o || out_ready_i).
//   Writable=1, BinarySearch=0: the table in registers, write port cfg_* (one threshold per
//     cycle, applied at the clock edge ending its cycle); global enable as above.
//   BinarySearch=1 (docs/threshold_storage.md): one memory per search stage and lane:
//     stage s holds the 2^s thresholds it can compare against per channel (2^s*ChanGroups words,
//     or a full copy of the InitFile table when preloaded), read synchronously one stage early
//     (stage 0: ChanGroups words, read asynchronously), so that the memories map to LUT RAM or
//     block RAM (BlockWords forces block RAM). A ROM (Writable=0) is this form with the write
//     port ignored (memories filled from InitFile only). Threshold k belongs to the stage that
//     decides the lowest set bit of k. A write enters the pipeline like a beat and writes its
//     stage's memory on the way, so writes and beats reach every memory in the order they
//     entered; the pipeline never stalls: at most ABits+1 beats are inside (credits) and an
//     output FIFO of ABits+1 entries absorbs back-pressure, so in_ready_o does not depend on
//     out_ready_i. A cycle with cfg_we_i high (Writable=1), and the cycle after an accepted
//     write, accept no beat.
// Write rule (every Writable=1 form): a beat accepted in cycle n is quantized with the table
// holding every write presented before cycle n and none presented in cycle n or later, so a
// write while beats are inside is safe (no beat ever sees a mix of two rewrites). A write is
// applied by the edge ending its cycle (parallel) or up to ABits-1 cycles later (binary search);
// rst_ni drops the writes presented in the ABits-1 cycles before it that are not applied yet
// (each threshold is either written or not, never torn).
`include "nuq_assert.svh"

module threshold_quant #(
  /// Accumulator (input) and threshold width in bits, signed two's complement; 2..62.
  parameter int AccWidth     = 16,
  /// Output code width A in bits, unsigned; 1..16 (2^A-1 thresholds per channel).
  parameter int ABits        = 4,
  /// Number of channels (threshold sets); 1..65536.
  parameter int Channels     = 1,
  /// Values per beat (parallel lanes); 1..1024.
  parameter int Lanes        = 1,
  /// Width of the user side-band in bits (passed through unchanged, in order); 1..1024.
  parameter int UserWidth    = 1,
  /// Implementation: 0 = parallel comparators, 1 = pipelined binary search.
  parameter int BinarySearch = 0,
  /// 1 = run-time threshold write port; 0 = ROM filled only from InitFile.
  parameter int Writable     = 1,
  /// $readmemh image of the thresholds (layout above); "" = none (Writable=1 only).
  parameter     InitFile     = "",
  /// Writable binary search only: a stage memory of at least BlockWords words is marked
  /// ram_style "block" (iCE40 EBR, Xilinx block RAM); 0 = the synthesis tool chooses; 0..2^24.
  parameter int BlockWords   = 0,
  /// Channel groups per pass, ceil(Channels/Lanes) (derived; do not override).
  parameter int ChanGroups   = (Channels + Lanes - 1) / Lanes,
  /// Width of in_chan_i in bits, max(1, $clog2(ChanGroups)) (derived; do not override).
  parameter int GroupWidth   = (ChanGroups > 1) ? $clog2(ChanGroups) : 1,
  /// Width of cfg_chan_i in bits, max(1, $clog2(Channels)) (derived; do not override).
  parameter int CfgChanWidth = (Channels > 1) ? $clog2(Channels) : 1
) (
  /// Clock, rising edge.
  input  logic                      clk_i,
  /// Asynchronous active-low reset; empties the pipeline (the thresholds are kept).
  input  logic                      rst_ni,
  /// Threshold write enable (one write per cycle, write rule in the header; ignored when
  /// Writable=0).
  input  logic                      cfg_we_i,
  /// Channel of the threshold written, 0..Channels-1 (other values: write ignored).
  input  logic [CfgChanWidth-1:0]   cfg_chan_i,
  /// Threshold index k-1 written, 0..2^ABits-2 (2^ABits-1: write ignored).
  input  logic [ABits-1:0]          cfg_idx_i,
  /// Threshold value, signed AccWidth bits.
  input  logic [AccWidth-1:0]       cfg_thr_i,
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
  if (AccWidth < 2 || AccWidth > 62) begin : gen_check_acc
    `NUQ_ELAB_FATAL((1, "threshold_quant: AccWidth=%0d must lie in 2..62", AccWidth))
  end
  if (ABits < 1 || ABits > 16) begin : gen_check_abits
    `NUQ_ELAB_FATAL((1, "threshold_quant: ABits=%0d must lie in 1..16", ABits))
  end
  if (Channels < 1 || Channels > 65536) begin : gen_check_chan
    `NUQ_ELAB_FATAL((1, "threshold_quant: Channels=%0d must lie in 1..65536", Channels))
  end
  if (Channels * ((1 << ABits) - 1) > (1 << 24)) begin : gen_check_words
    `NUQ_ELAB_FATAL((1, "threshold_quant: Channels=%0d x (2^ABits-1) thresholds exceed 2^24",
                     Channels))
  end
  if (Lanes < 1 || Lanes > 1024) begin : gen_check_lanes
    `NUQ_ELAB_FATAL((1, "threshold_quant: Lanes=%0d must lie in 1..1024", Lanes))
  end
  if (UserWidth < 1 || UserWidth > 1024) begin : gen_check_user
    `NUQ_ELAB_FATAL((1, "threshold_quant: UserWidth=%0d must lie in 1..1024", UserWidth))
  end
  if (BinarySearch != 0 && BinarySearch != 1) begin : gen_check_bs
    `NUQ_ELAB_FATAL((1, "threshold_quant: BinarySearch=%0d must be 0 or 1", BinarySearch))
  end
  if (Writable != 0 && Writable != 1) begin : gen_check_wr
    `NUQ_ELAB_FATAL((1, "threshold_quant: Writable=%0d must be 0 or 1", Writable))
  end
  if (Writable == 0 && InitFile == "") begin : gen_check_rom
    `NUQ_ELAB_FATAL((1, "threshold_quant: Writable=0 needs an InitFile (a ROM with no image)"))
  end

  // x >= t for signed x, t, written as a bit-serial AND/OR chain (LSB first, sign bits
  // flipped) rather than as ">=". Used for the ROM (Writable=0): with t an elaboration-time
  // constant each step is one gate and synthesis packs several steps per LUT, where a ">=" is
  // mapped to a carry chain (iCE40: one logic cell per bit; see docs/synthesis.md).
  function automatic logic ge_chain(logic [AccWidth-1:0] x, logic [AccWidth-1:0] t);
    logic [AccWidth-1:0] a, b;
    logic                r;
    a = x ^ (AccWidth'(1) << (AccWidth - 1));
    b = t ^ (AccWidth'(1) << (AccWidth - 1));
    r = 1'b1;
    for (int i = 0; i < AccWidth; i++) begin
      r = (a[i] & ~b[i]) | (~(a[i] ^ b[i]) & r);
    end
    return r;
  endfunction

  localparam int NumThr    = (1 << ABits) - 1;
  localparam int Words     = Channels * NumThr;
  localparam int AddrWidth = (Words > 1) ? $clog2(Words) : 1;
  /// Content of a threshold word that was never written (no InitFile): the largest value.
  localparam logic [AccWidth-1:0] BlankThr = {1'b0, {(AccWidth - 1){1'b1}}};
  localparam logic [AccWidth-1:0] Msb      = {1'b1, {(AccWidth - 1){1'b0}}};
  /// The stage memories of the writable binary search store T ^ Enc: without InitFile
  /// T ^ BlankThr, so that a blank (all-zero) word is BlankThr; with one, T as the file has it.
  localparam logic [AccWidth-1:0] Enc      = (InitFile != "") ? '0 : BlankThr;

  // x >= T for a stored word w = T ^ Enc, as the unsigned (x ^ Msb) >= (T ^ Msb), where
  // ~(T ^ Msb) = T ^ BlankThr = w when Enc = BlankThr: the iCE40 carry chain (x + ~T + 1) then
  // needs no inverter, and Xilinx maps the compare with 3 bits per LUT (cmp2lcu).
  function automatic logic ge_word(logic [AccWidth-1:0] x, logic [AccWidth-1:0] w);
    return (x ^ Msb) >= ~(w ^ Enc ^ BlankThr);
  endfunction

  logic                 cfg_ok;
  assign cfg_ok = (32'(cfg_chan_i) < 32'(Channels)) && (32'(cfg_idx_i) < 32'(NumThr));

  if (BinarySearch == 1) begin : gen_staged
    // ---- binary search with per-stage threshold memories (see the header) ---------------------
    // Position p (0..ABits-1) is where stage p compares: the input ports for p = 0, pipeline
    // register p-1 otherwise. An operation at a position is a beat (pv) or a threshold write
    // (pw); a write carries its value in every lane's x field and k in the code field of its
    // lane (0 in the others), and writes memory s while it is at position s-1 (s >= 2: where
    // the beats issue their reads of memory s) or 1 (s < 2: one cycle after those reads, hence
    // no beat right behind a write). Writes and beats therefore reach every memory in the order
    // they entered, and the pipeline never stalls (credits and an output FIFO absorb
    // back-pressure), so the write port never has to wait.
    localparam int CodeW     = Lanes * ABits;
    localparam int EntryW    = CodeW + UserWidth;
    localparam int FifoDepth = ABits + 1;  // beats in flight at most (credits)
    localparam int CntWidth  = $clog2(FifoDepth + 1);
    localparam int HdWidth   = $clog2(FifoDepth);

    logic [ABits-1:0]                     pv, pw;
    logic [ABits-1:0][Lanes*AccWidth-1:0] px, pt;
    logic [ABits-1:0][CodeW-1:0]          pc, pc_d;
    logic [ABits-1:0][GroupWidth-1:0]     pg;
    logic [ABits-1:0][UserWidth-1:0]      pu;
    logic                                 full, acc;

    // ---- position 0: the ports ----
    logic [ABits-1:0]      wk;
    logic [GroupWidth-1:0] wg;
    logic [31:0]           wl;
    assign wk = cfg_idx_i + ABits'(1);
    assign wg = GroupWidth'(32'(cfg_chan_i) / 32'(Lanes));
    assign wl = 32'(cfg_chan_i) % 32'(Lanes);

    // A cycle with a write request, and the cycle after a write, accept no beat; otherwise a
    // beat is accepted while fewer than FifoDepth beats are inside (in_ready_o does not depend
    // on out_ready_i).
    logic gap;
    assign gap = (ABits > 1) ? pw[(ABits > 1) ? 1 : 0] : 1'b0;
    logic wr_req;  // a write request (none in a ROM: Writable=0 ignores the write port)
    assign wr_req     = (Writable == 1) & cfg_we_i;
    assign in_ready_o = ~wr_req & ~gap & ~full;
    assign acc        = in_valid_i & in_ready_o;
    assign pv[0]      = acc;
    assign pw[0]      = wr_req & cfg_ok;
    assign px[0]      = wr_req ? {Lanes{cfg_thr_i ^ Enc}} : in_data_i;
    assign pg[0]      = (ChanGroups == 1) ? '0 : (wr_req ? wg : in_chan_i);
    assign pu[0]      = in_user_i;
    for (genvar l = 0; l < Lanes; l++) begin : gen_wlane
      assign pc[0][l*ABits +: ABits] = (pw[0] && wl == 32'(l)) ? wk : '0;
    end

    // ---- pipeline registers (positions 1..ABits-1) ----
    if (ABits > 1) begin : gen_regs
      logic [ABits-2:0]                     v_q, w_q;
      logic [ABits-2:0][Lanes*AccWidth-1:0] x_q;
      logic [ABits-2:0][CodeW-1:0]          c_q;
      logic [ABits-2:0][GroupWidth-1:0]     g_q;
      logic [ABits-2:0][UserWidth-1:0]      u_q;
      always_ff @(posedge clk_i or negedge rst_ni) begin
        if (!rst_ni) begin
          v_q <= '0;
          w_q <= '0;
        end else begin
          v_q <= pv[ABits-2:0];
          w_q <= pw[ABits-2:0];
        end
      end
      always_ff @(posedge clk_i) begin
        x_q <= px[ABits-2:0];
        c_q <= pc_d[ABits-2:0];
        g_q <= pg[ABits-2:0];
        u_q <= pu[ABits-2:0];
      end
      for (genvar p = 1; p < ABits; p++) begin : gen_link
        assign pv[p] = v_q[p-1];
        assign pw[p] = w_q[p-1];
        assign px[p] = x_q[p-1];
        assign pc[p] = c_q[p-1];
        assign pg[p] = g_q[p-1];
        assign pu[p] = u_q[p-1];
      end
    end

    // ---- stage p compares at position p and decides code bit ABits-1-p ----
    for (genvar p = 0; p < ABits; p++) begin : gen_cmp
      for (genvar l = 0; l < Lanes; l++) begin : gen_lane
        logic [AccWidth-1:0] x;
        logic                ge;
        // Position 0 compares the input port itself (the x mux only feeds the register).
        assign x  = (p == 0) ? in_data_i[l*AccWidth +: AccWidth] : px[p][l*AccWidth +: AccWidth];
        assign ge = ge_word(x, pt[p][l*AccWidth +: AccWidth]);
        assign pc_d[p][l*ABits +: ABits] = pc[p][l*ABits +: ABits]
                                         | ((ge && !pw[p]) ? ABits'(1 << (ABits - 1 - p)) : '0);
      end
    end

    // ---- memory s: the thresholds stage s can compare against ----
    // Stage s compares T[c][k] with k = prefix*2^(B+1) + 2^B, B = ABits-1-s, prefix = the s
    // code bits above B: 2^s words per channel, word g*2^s + prefix (compact, no InitFile) or
    // a full copy of the InitFile table at word c*(2^ABits-1) + k-1 (preloaded). Read at
    // position R = max(s-1, 0) with the code decided there: synchronously into rd_q (s >= 1, the
    // read issued one stage early) or asynchronously (s = 0: ChanGroups words). Written by a
    // write operation at position W: R for s >= 2 (same address as the read); 1 for memories 0
    // and 1, so that their data come from the pipeline registers (0 when ABits = 1): the beat
    // right behind a write reads them at the edge the write lands, which is why no beat enters
    // in the cycle after a write.
    for (genvar s = 0; s < ABits; s++) begin : gen_mem
      localparam int B     = ABits - 1 - s;
      localparam int R     = (s > 0) ? s - 1 : 0;
      localparam int W     = (ABits == 1) ? 0 : (s < 2) ? 1 : s - 1;
      localparam int Depth = (InitFile != "") ? Words : (ChanGroups << s);
      localparam int AW    = (Depth > 1) ? $clog2(Depth) : 1;
      /* verilator lint_off UNUSEDPARAM */  // used by the ram_style attribute only
      localparam RamStyle  = (s > 0 && BlockWords > 0 && Depth >= BlockWords) ? "block" : "auto";
      /* verilator lint_on UNUSEDPARAM */
      for (genvar l = 0; l < Lanes; l++) begin : gen_lane
        logic [ABits-1:0]    code, kw;
        logic                we;
        logic [AW-1:0]       raddr, waddr;
        logic [AccWidth-1:0] wdata;
        logic [AccWidth-1:0] rdata;
        assign code  = (s > 0) ? pc_d[R][l*ABits +: ABits] : '0;
        assign kw    = pc[W][l*ABits +: ABits];
        // A write whose k has its lowest set bit at B belongs to this stage.
        assign we    = pw[W] && kw[B] && ((32'(kw) & ((32'd1 << B) - 32'd1)) == 32'd0);
        assign wdata = px[W][l*AccWidth +: AccWidth];
        if (InitFile != "") begin : gen_flat_addr
          assign raddr = AW'((32'(pg[R]) * 32'(Lanes) + 32'(l)) * 32'(NumThr)
                             + ((32'(code) >> (B + 1)) << (B + 1)) + (32'd1 << B) - 32'd1);
        end else begin : gen_compact_addr
          assign raddr = AW'(32'(pg[R]) * (32'd1 << s) + (32'(code) >> (B + 1)));
        end
        if (W == R && s > 0) begin : gen_shared_addr
          // A write leaves its code unchanged (pc_d = pc): one address for both ports, which
          // lets LUT RAM use its single-port form (more bits per LUT).
          assign waddr = raddr;
        end else if (InitFile != "") begin : gen_flat_waddr
          assign waddr = AW'((32'(pg[W]) * 32'(Lanes) + 32'(l)) * 32'(NumThr) + 32'(kw) - 32'd1);
        end else begin : gen_compact_waddr
          assign waddr = AW'(32'(pg[W]) * (32'd1 << s) + (32'(kw) >> (B + 1)));
        end
        (* no_rw_check, ram_style = RamStyle *) logic [AccWidth-1:0] mem [Depth];
        if (InitFile != "") begin : gen_load
          initial $readmemh(InitFile, mem);
        end else begin : gen_blank
          initial begin
            for (int j = 0; j < Depth; j++) mem[j] = '0;  // T = BlankThr
          end
        end
        always_ff @(posedge clk_i) begin
          if (we) mem[waddr] <= wdata;
        end
        if (s == 0) begin : gen_async
          // ChanGroups words read asynchronously at position 0 (one register when ChanGroups=1).
          assign rdata = mem[raddr];
        end else begin : gen_sync
          logic [AccWidth-1:0] rd_q;
          always_ff @(posedge clk_i) begin
            rd_q <= mem[raddr];
          end
          assign rdata = rd_q;
        end
        assign pt[s][l*AccWidth +: AccWidth] = rdata;
      end
    end

    // ---- output FIFO: FifoDepth entries, a shift register read at the head index ----
    logic [EntryW-1:0]                 fin;
    logic [FifoDepth-1:0][EntryW-1:0]  fifo_q;
    logic [HdWidth-1:0]                hd_q;
    logic                              ne_q, push, pop;
    logic [CntWidth-1:0]               cnt_q;
    for (genvar l = 0; l < Lanes; l++) begin : gen_pad
      // A lane of the padding of the last channel group gives code 0.
      logic chan_ok;
      assign chan_ok = (32'(pg[ABits-1]) * 32'(Lanes) + 32'(l)) < 32'(Channels);
      assign fin[l*ABits +: ABits] = chan_ok ? pc_d[ABits-1][l*ABits +: ABits] : '0;
    end
    assign fin[CodeW +: UserWidth] = pu[ABits-1];
    assign push = pv[ABits-1];
    assign pop  = ne_q & out_ready_i;
    always_ff @(posedge clk_i) begin
      if (push) fifo_q <= {fifo_q[FifoDepth-2:0], fin};
    end
    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        hd_q  <= '0;
        ne_q  <= 1'b0;
        cnt_q <= '0;
      end else begin
        cnt_q <= cnt_q + CntWidth'(acc) - CntWidth'(pop);
        if (push && !pop) begin
          hd_q <= hd_q + HdWidth'(ne_q);
          ne_q <= 1'b1;
        end else if (pop && !push) begin
          hd_q <= hd_q - HdWidth'(hd_q != '0);
          ne_q <= hd_q != '0;
        end
      end
    end
    assign full        = cnt_q == CntWidth'(FifoDepth);
    assign out_valid_o = ne_q;
    logic [EntryW-1:0] head;
    assign head        = fifo_q[hd_q];
    assign out_data_o  = head[CodeW-1:0];
    assign out_user_o  = head[CodeW +: UserWidth];

    // Fields that some positions never read (trimmed by synthesis).
    logic unused_staged;
    assign unused_staged = ^{pc_d[ABits-1], pg, pc, px, pt[0]};

  end else begin : gen_flat
    // ---- parallel comparators (BinarySearch = 0) ---------------------------------------------
    // Rd = 1 (a ROM with several channel groups): the thresholds of the beat's channel group
    // are read synchronously into a register stage (a registered read of a constant table:
    // LUTs or block RAM, never an asynchronous mux in the compare path); latency 2.
    localparam int Rd     = (Writable == 0 && ChanGroups > 1) ? 1 : 0;
    localparam int Leaves = 1 << ABits;  // popcount tree leaves: NumThr comparators and a 0

    // ---- threshold table ------------------------------------------------------------------------
    // Rd = 1: every comparator has its own registered read port on the constant table; marked
    // "logic" so that synthesis builds each port from LUTs + its register (Yosys 0.70's ECP5
    // memory mapping aborted on this 15-read-port ROM).
    /* verilator lint_off UNUSEDPARAM */  // used by the ram_style attribute only
    localparam ThrStyle = (Rd == 1) ? "logic" : "auto";
    /* verilator lint_on UNUSEDPARAM */
    (* ram_style = ThrStyle *) logic [AccWidth-1:0] thr_q [Words];

    if (InitFile != "") begin : gen_init
      initial $readmemh(InitFile, thr_q);
    end else begin : gen_blank
      initial begin
        for (int j = 0; j < Words; j++) thr_q[j] = BlankThr;
      end
    end

    if (Writable == 1) begin : gen_write
      logic [AddrWidth-1:0] cfg_addr;
      assign cfg_addr = AddrWidth'(32'(cfg_chan_i) * 32'(NumThr) + 32'(cfg_idx_i));
      always_ff @(posedge clk_i) begin
        if (cfg_we_i && cfg_ok) thr_q[cfg_addr] <= cfg_thr_i;
      end
    end else begin : gen_rom
      // The write port exists for a uniform interface; a ROM ignores it.
      logic unused_cfg;
      assign unused_cfg = ^{cfg_we_i, cfg_chan_i, cfg_idx_i, cfg_thr_i, cfg_ok};
    end

    // ---- pipeline -------------------------------------------------------------------------------
    // One global enable: every register advances when the output register is free or drained.
    logic                      enable;
    logic                      valid_q, c_valid;
    logic [UserWidth-1:0]      user_q, c_user;
    logic [Lanes*ABits-1:0]    code_d, code_q;
    logic [Lanes*AccWidth-1:0] c_x;
    logic [GroupWidth-1:0]     c_grp;

    assign enable      = ~valid_q | out_ready_i;
    assign in_ready_o  = enable;
    assign out_valid_o = valid_q;
    assign out_data_o  = code_q;
    assign out_user_o  = user_q;

    if (Rd == 1) begin : gen_rd_stage
      // Beat and group wait one cycle beside the thresholds read for them.
      logic                      r_valid_q;
      logic [UserWidth-1:0]      r_user_q;
      logic [Lanes*AccWidth-1:0] r_x_q;
      logic [GroupWidth-1:0]     r_grp_q;
      always_ff @(posedge clk_i or negedge rst_ni) begin
        if (!rst_ni) begin
          r_valid_q <= 1'b0;
        end else if (enable) begin
          r_valid_q <= in_valid_i;
        end
      end
      always_ff @(posedge clk_i) begin
        if (enable) begin
          r_user_q <= in_user_i;
          r_x_q    <= in_data_i;
          r_grp_q  <= in_chan_i;
        end
      end
      assign c_valid = r_valid_q;
      assign c_user  = r_user_q;
      assign c_x     = r_x_q;
      assign c_grp   = r_grp_q;
    end else begin : gen_no_rd_stage
      assign c_valid = in_valid_i;
      assign c_user  = in_user_i;
      assign c_x     = in_data_i;
      assign c_grp   = (ChanGroups > 1) ? in_chan_i : '0;
    end

    if (ChanGroups == 1) begin : gen_one_group
      // A single channel group: lane l is channel l, a constant; the group is not needed.
      logic unused_grp;
      assign unused_grp = ^{c_grp, in_chan_i};
    end

    for (genvar l = 0; l < Lanes; l++) begin : gen_lane
      logic [AccWidth-1:0] x;
      logic [31:0]         chan, rchan;
      logic                chan_ok;
      logic [NumThr-1:0]   ge;
      logic [ABits:0]      node [2*Leaves-1:1];  // popcount tree, heap order
      assign x = c_x[l*AccWidth +: AccWidth];
      // With one channel group the channel is a constant and so is every threshold address.
      if (ChanGroups == 1) begin : gen_const_chan
        assign chan  = 32'(l);
        assign rchan = 32'(l);
      end else begin : gen_dyn_chan
        assign chan  = 32'(c_grp) * 32'(Lanes) + 32'(l);
        assign rchan = 32'(in_chan_i) * 32'(Lanes) + 32'(l);  // the read stage's channel
      end
      assign chan_ok = chan < 32'(Channels);

      for (genvar k = 0; k < NumThr; k++) begin : gen_cmp
        if (Rd == 1) begin : gen_sync_rd
          // A ChanGroups-way select of words at elaboration-time addresses (no address
          // arithmetic: a computed rchan*NumThr+k was mapped to an ECP5 MULT18X18D and
          // started the build's critical path).
          logic [AccWidth-1:0] t_d, t_q;
          always_comb begin
            t_d = '0;
            for (int gg = 0; gg < ChanGroups; gg++) begin
              if (32'(in_chan_i) == gg && (gg * Lanes + l) < Channels) begin
                t_d = thr_q[(gg * Lanes + l) * NumThr + k];
              end
            end
          end
          always_ff @(posedge clk_i) begin
            if (enable) t_q <= t_d;
          end
          assign ge[k] = ge_word(x, t_q ^ Enc);
        end else begin : gen_async_rd
          logic [AddrWidth-1:0] addr;
          assign addr  = chan_ok ? AddrWidth'(chan * 32'(NumThr) + 32'(k)) : '0;
          assign ge[k] = (Writable == 0) ? ge_chain(x, thr_q[addr])
                                         : ($signed(x) >= $signed(thr_q[addr]));
        end
      end

      // Population count as a balanced adder tree (depth ABits), not a chain of NumThr adds.
      always_comb begin
        for (int i = 0; i < Leaves; i++) begin
          node[Leaves + i] = (i < NumThr) ? (ABits + 1)'(ge[i % NumThr]) : '0;
        end
        for (int i = Leaves - 1; i >= 1; i--) begin
          node[i] = node[2*i] + node[2*i+1];
        end
      end
      assign code_d[l*ABits +: ABits] = chan_ok ? node[1][ABits-1:0] : '0;
      logic unused_rchan;  // the read stage selects by group (gen_sync_rd)
      assign unused_rchan = ^rchan;
    end

    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        valid_q <= 1'b0;
        user_q  <= '0;
        code_q  <= '0;
      end else if (enable) begin
        valid_q <= c_valid;
        user_q  <= c_user;
        code_q  <= code_d;
      end
    end

  end

endmodule
