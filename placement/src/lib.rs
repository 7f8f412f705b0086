//! The Retz placement engine: topology model, CPU and NUMA node sets, requests, the cost
//! model, policies and the packer. Pure: no I/O, no async runtime, no system libraries.
