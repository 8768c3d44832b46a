// Copyright the nuq-rtl authors. SPDX-License-Identifier: Apache-2.0
//
// Elaboration-time parameter checks that both simulators honour.
//   if (!(Cond)) begin : gen_bad_something
//     `NUQ_ELAB_FATAL(("module: Param=%0d must ...", Param))
//   end
// The Verilator build evaluates $fatal in a generate block during elaboration (USERFATAL, build fails);
// Icarus 11 rejects elaboration system tasks there, so it runs $fatal at time 0 instead, before
// any clock edge.
`ifndef NUQ_ASSERT_SVH
`define NUQ_ASSERT_SVH
`ifdef VERILATOR
  `define NUQ_ELAB_FATAL(msg) $fatal msg;
`else
  `define NUQ_ELAB_FATAL(msg) initial $fatal msg;
`endif
`endif
